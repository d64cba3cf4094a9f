"""Cost of the TF2 converter, and the speed of what it writes.

Run: .venv/bin/python benchmarks/tf2_bridge_benchmark.py [--sizes 2000,4000,4000,4000]

On an MLP module with batch norm and a `{"train"}` variant (default sizes:
8M + 16M + 16M = 40M weights) it prints the median and the best (least
disturbed by other load) over `--repeats` rounds of:

* convert: `export_tf2_saved_model(module, path)` (wall seconds) and the size
  of what it writes (bytes), against
* plain: the module's checkpoint read into `tf.Variable`s (one RestoreV2)
  and `tf.saved_model.save` of a `tf.Module` holding them (the least
  TensorFlow's own saving of these weights costs); the ratio convert / plain
  (target: <= 1.5x, issue 14). Both write the same variables (same keys,
  dtypes, values and checkpoint size). The conversion does all of its graph
  work (imports, traces, serving signatures) but copies the checkpoint's
  bytes instead of reading and re-encoding them (`format/tf2_checkpoint`);
* convert (no copy): the conversion with that copy switched off (values
  read with RestoreV2, written by `tf.saved_model.save`), for comparison;
* tf2: one call of the converted model (`obj(x)`, eager) on a batch of
  `--batch` rows, against
* tf1: the same batch through `hub_estimator.Module` in graph mode
  (`session.run`), and through tensorflow_hub 0.15's `hub.Module`;

with the ratios tf2 / tf1. All measured in this process, interleaved round by
round, after one uncounted warm-up round of the conversions; each timed call
starts after a (not timed) `gc.collect()`.

The same conversion figures follow for a module of the same weights whose
layers run inside graph functions (a tf.function of the dense layers, a v2
`tf.cond` and `tf.while_loop` around it, both graph variants), whose function
library the converter renames apart.
"""

import argparse
import gc
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

import hub_estimator
from hub_estimator.format import tf2_bridge
from hub_estimator.format import tf2_checkpoint
from hub_estimator.models import module_fns

try:
  import tensorflow_hub
except ImportError as e:  # pragma: no cover - the peer is a test dependency
  raise SystemExit(
      "tensorflow-hub==0.15.0 is needed: pip install -e '.[test]'"
  ) from e


def _export(path, module_fn):
  """Exports a module_fn with a {"train"} variant and a default one."""
  spec = hub_estimator.create_module_spec(
      module_fn,
      tags_and_args=[({"train"}, {"is_training": True}), (set(), {})],
  )
  with tf.Graph().as_default():
    module = hub_estimator.Module(spec)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      module.export(path, session)


def _export_module(path, sizes):
  _export(
      path,
      module_fns.mlp(
          input_dim=sizes[0], units=sizes[1:], batch_norm=True, l2=1e-4
      ),
  )


def _export_functions_module(path, sizes):
  """The MLP's weights, used inside graph functions (v2 control flow)."""
  v1 = tf.compat.v1

  def module_fn(is_training=False):
    x = v1.placeholder(tf.float32, [None, sizes[0]], name="x")
    kernels = [
        v1.get_variable("dense_%d/kernel" % k, [a, b], use_resource=True)
        for k, (a, b) in enumerate(zip(sizes, sizes[1:]))
    ]

    @tf.function
    def forward(h):
      for kernel in kernels:
        h = tf.nn.relu(tf.matmul(h, kernel))
      return h

    y = forward(x)
    y = tf.cond(tf.reduce_sum(y) > 0, lambda: y, lambda: -y)
    rate = 0.5 if is_training else 1.0
    _, y = tf.while_loop(
        lambda i, v: i < 2, lambda i, v: (i + 1, v * rate), [0, y]
    )
    hub_estimator.add_signature(inputs=x, outputs=y)

  _export(path, module_fn)


def _size(path):
  return sum(
      os.path.getsize(os.path.join(d, f))
      for d, _, files in os.walk(path)
      for f in files
  )


def _timed(fn):
  """Wall seconds of fn(), started on a collected heap.

  The collection (not timed) keeps one side from paying for the garbage the
  other left: a conversion leaves graphs whose cycles a later full collection
  frees, in whichever call it happens to start.
  """
  gc.collect()
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def _convert_without_copy(module_path, path):
  """The conversion reading the values and saving with tf.saved_model.save."""
  copy_plan = tf2_checkpoint.CopyPlan.for_module
  tf2_checkpoint.CopyPlan.for_module = lambda prefix, sources: None
  try:
    tf2_bridge.export_tf2_saved_model(module_path, path)
  finally:
    tf2_checkpoint.CopyPlan.for_module = copy_plan


def _plain_save(module_path, path):
  """Reads the module's checkpoint into tf.Variables and saves them.

  Reads as the converter without its checkpoint copy does (one RestoreV2, no
  numpy copies).
  """
  prefix = os.path.join(module_path, "variables", "variables")
  reader = tf.train.load_checkpoint(prefix)
  names = sorted(reader.get_variable_to_shape_map())
  dtypes = reader.get_variable_to_dtype_map()
  values = tf.raw_ops.RestoreV2(
      prefix=prefix,
      tensor_names=names,
      shape_and_slices=[""] * len(names),
      dtypes=[dtypes[n] for n in names],
  )
  holder = tf.Module()
  holder.variables_list = [
      tf.Variable(value, name=name) for name, value in zip(names, values)
  ]
  tf.saved_model.save(holder, path)


class _GraphCall:
  """One module applied in its own graph and session (graph mode)."""

  def __init__(self, module_cls, module_path, x):
    self._graph = tf.Graph()
    with self._graph.as_default():
      module = module_cls(module_path)
      self._out = module(x)
      self._session = tf.compat.v1.Session(graph=self._graph)
      self._session.run(tf.compat.v1.global_variables_initializer())
    self()

  def __call__(self):
    return self._session.run(self._out)

  def close(self):
    self._session.close()


def _summary(times):
  return statistics.median(times), min(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="2000,4000,4000,4000")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--batch", type=int, default=64)
  args = parser.parse_args()
  sizes = [int(s) for s in args.sizes.split(",")]
  root = tempfile.mkdtemp(prefix="tf2_bridge_benchmark_")
  try:
    module = os.path.join(root, "module")
    _export_module(module, sizes)
    functions_module = os.path.join(root, "functions_module")
    _export_functions_module(functions_module, sizes)
    converted = os.path.join(root, "tf2")
    saved = os.path.join(root, "plain")
    convert, no_copy, plain, sizes_written = {}, {}, {}, {}
    # Round 0 warms both up (first traces, imports) and is not counted.
    for i in range(args.repeats + 1):
      for source in (module, functions_module):
        for path in (converted, saved):
          shutil.rmtree(path, ignore_errors=True)
        took = _timed(
            lambda: tf2_bridge.export_tf2_saved_model(source, converted)
        )
        if i:
          convert.setdefault(source, []).append(took)
        took = _timed(lambda: _plain_save(source, saved))
        if i:
          plain.setdefault(source, []).append(took)
        sizes_written[source] = (_size(converted), _size(saved))
        shutil.rmtree(converted)
        took = _timed(lambda: _convert_without_copy(source, converted))
        if i:
          no_copy.setdefault(source, []).append(took)
    shutil.rmtree(converted)
    tf2_bridge.export_tf2_saved_model(module, converted)
    x = np.random.RandomState(0).rand(args.batch, sizes[0]).astype(np.float32)
    obj = tf.saved_model.load(converted)
    obj(x)
    ours = _GraphCall(hub_estimator.Module, module, x)
    peer = _GraphCall(tensorflow_hub.Module, module, x)
    latency = {"tf2": [], "ours": [], "peer": []}
    for _ in range(args.repeats * 5):
      latency["tf2"].append(_timed(lambda: obj(x).numpy()))
      latency["ours"].append(_timed(ours))
      latency["peer"].append(_timed(peer))
    ours.close()
    peer.close()
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    print(
        "MLP %s (%.1fM weights), batch %d, %d rounds; median (best)"
        % (sizes, weights / 1e6, args.batch, args.repeats)
    )
    for source, label in (
        (module, "plain graph"),
        (functions_module, "graph functions"),
    ):
      (c_med, c_min), (p_med, p_min), (n_med, n_min) = (
          _summary(convert[source]),
          _summary(plain[source]),
          _summary(no_copy[source]),
      )
      convert_size, plain_size = sizes_written[source]
      print(
          "%s: convert %.2f s (%.2f s), %d bytes; plain tf.saved_model.save"
          " %.2f s (%.2f s), %d bytes; time ratio %.2fx (%.2fx), size ratio"
          " %.3fx"
          % (
              label,
              c_med,
              c_min,
              convert_size,
              p_med,
              p_min,
              plain_size,
              c_med / p_med,
              c_min / p_min,
              convert_size / plain_size,
          )
      )
      print(
          "%s: convert without the checkpoint copy %.2f s (%.2f s), ratio to"
          " plain %.2fx (%.2fx)"
          % (label, n_med, n_min, n_med / p_med, n_min / p_min)
      )
    (t_med, t_min), (o_med, o_min), (e_med, e_min) = (
        _summary(latency[k]) for k in ("tf2", "ours", "peer")
    )
    print(
        "inference: tf2 %.2f ms (%.2f), hub_estimator.Module %.2f ms (%.2f),"
        " tensorflow_hub Module %.2f ms (%.2f); tf2/ours %.2fx (%.2fx),"
        " tf2/peer %.2fx (%.2fx)"
        % (
            t_med * 1e3,
            t_min * 1e3,
            o_med * 1e3,
            o_min * 1e3,
            e_med * 1e3,
            e_min * 1e3,
            t_med / o_med,
            t_min / o_min,
            t_med / e_med,
            t_min / e_min,
        )
    )
  finally:
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  main()
