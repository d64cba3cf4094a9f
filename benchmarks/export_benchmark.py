"""Times hub_estimator's module exporters against tensorflow_hub 0.15's.

For each module size, one estimator checkpoint is written; then, in the same
process and on the same checkpoint, this times:

  ours:   hub_estimator.export.LatestModuleExporter.export (first call, which
          builds and caches the export plan, and the steady state after it);
  theirs: tensorflow_hub.LatestModuleExporter.export (rebuilds the PREDICT
          graph and restores a session every call);
  floor:  TensorFlow's own RestoreV2 -> SaveV2 of the module's tensors (one
          session.run of a prebuilt graph), the least an export can cost.

Each repetition exports into a fresh folder (tensorflow_hub sleeps a second
when a version name is taken) and the order of ours/theirs alternates.

    .venv/bin/python benchmarks/export_benchmark.py [--sizes small,large]
        [--repeats 5]

Targets (issue 3): small (~300k weights) ours <= 0.5x theirs; large (40M
weights, 160 MB) ours <= 1.0x theirs and <= 1.3x the floor.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

import hub_estimator.export as export_lib
from hub_estimator.format import module as module_lib
from hub_estimator.format import spec as spec_lib

# pylint: enable=g-import-not-at-top,wrong-import-position

# name -> (vocabulary rows, embedding width, hidden units)
SIZES = {
    # 2000 * 128 + 128 * 320 + 320 = 297,280 weights.
    "small": (2000, 128, 320),
    # 39,000 * 1024 + 1024 * 32 + 32 = 39,968,800 weights (160 MB float32).
    "large": (39000, 1024, 32),
}

# size -> (denominator, ratio name, maximum of ours / denominator).
TARGETS = {
    "small": [("theirs", "ours/theirs", 0.5)],
    "large": [("theirs", "ours/theirs", 1.0), ("floor", "ours/floor", 1.3)],
}


def make_module_fn(rows, width, hidden):
  """Returns a module_fn: embedding lookup + mean + dense layer."""

  def module_fn():
    ids = tf.compat.v1.placeholder(tf.int64, [None, None], name="ids")
    table = tf.compat.v1.get_variable(
        "embeddings",
        [rows, width],
        initializer=tf.compat.v1.random_uniform_initializer(-0.1, 0.1),
    )
    pooled = tf.reduce_mean(tf.nn.embedding_lookup(table, ids), axis=1)
    outputs = tf.compat.v1.layers.dense(pooled, hidden, activation=tf.nn.relu)
    add_signature(inputs={"ids": ids}, outputs=outputs)

  add_signature = None

  def ours():
    nonlocal add_signature
    add_signature = spec_lib.add_signature
    return spec_lib.create_module_spec(module_fn)

  def theirs():
    nonlocal add_signature
    add_signature = hub.add_signature
    return hub.create_module_spec(module_fn)

  return ours, theirs


def make_model_fn(spec, module_cls, register_fn):
  """Returns a model_fn applying the module and a 2-class head."""

  def model_fn(features, labels, mode):
    module = module_cls(spec, trainable=True)
    logits = tf.compat.v1.layers.dense(module({"ids": features["ids"]}), 2)
    register_fn(module, "embedding")
    if mode == tf.estimator.ModeKeys.PREDICT:
      return tf.estimator.EstimatorSpec(mode, predictions=logits)
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
    train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(
        loss, tf.compat.v1.train.get_global_step()
    )
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

  return model_fn


def serving_input_fn():
  ids = tf.compat.v1.placeholder(tf.int64, [None, None])
  return tf.estimator.export.ServingInputReceiver({"ids": ids}, {"ids": ids})


def train_input_fn():
  ids = np.arange(32, dtype=np.int64).reshape(8, 4)
  labels = np.arange(8, dtype=np.int32) % 2
  return (
      tf.data.Dataset.from_tensor_slices(({"ids": ids}, labels))
      .repeat()
      .batch(8)
  )


def floor_fn(checkpoint_path, keys, dtypes):
  """Returns a function timing one RestoreV2 -> SaveV2 of `keys`."""
  graph = tf.Graph()
  with graph.as_default():
    dst = tf.compat.v1.placeholder(tf.string, [])
    tensors = tf.raw_ops.RestoreV2(
        prefix=checkpoint_path,
        tensor_names=keys,
        shape_and_slices=[""] * len(keys),
        dtypes=dtypes,
    )
    save = tf.raw_ops.SaveV2(
        prefix=dst,
        tensor_names=keys,
        shape_and_slices=[""] * len(keys),
        tensors=tensors,
    )
  session = tf.compat.v1.Session(graph=graph)

  def run(out_dir):
    start = time.perf_counter()
    session.run(save, feed_dict={dst: os.path.join(out_dir, "variables")})
    return time.perf_counter() - start

  return run


def timed_export(exporter, estimator, base):
  start = time.perf_counter()
  path = exporter.export(estimator, base, estimator.latest_checkpoint())
  elapsed = time.perf_counter() - start
  if path is None:
    raise RuntimeError("%s exported nothing" % type(exporter).__module__)
  return elapsed


def bench(size, repeats, workdir):
  """Runs one size; returns a dict of timings (seconds)."""
  rows, width, hidden = SIZES[size]
  ours_spec_fn, theirs_spec_fn = make_module_fn(rows, width, hidden)
  model_dir = os.path.join(workdir, size, "model")
  ours_est = tf.estimator.Estimator(
      make_model_fn(
          ours_spec_fn(),
          module_lib.Module,
          export_lib.register_module_for_export,
      ),
      model_dir,
  )
  theirs_est = tf.estimator.Estimator(
      make_model_fn(
          theirs_spec_fn(), hub.Module, hub.register_module_for_export
      ),
      model_dir,
  )
  ours_est.train(train_input_fn, steps=1)
  checkpoint = ours_est.latest_checkpoint()
  reader = tf.train.load_checkpoint(checkpoint)
  module_keys = sorted(
      k for k in reader.get_variable_to_shape_map() if k.startswith("module/")
  )
  weights = sum(
      int(np.prod(reader.get_variable_to_shape_map()[k])) for k in module_keys
  )
  floor = floor_fn(
      checkpoint,
      module_keys,
      [reader.get_variable_to_dtype_map()[k] for k in module_keys],
  )

  ours = export_lib.LatestModuleExporter(
      "ours", serving_input_fn, exports_to_keep=None
  )
  theirs = hub.LatestModuleExporter(
      "theirs", serving_input_fn, exports_to_keep=None
  )
  out = os.path.join(workdir, size, "out")
  times = {"ours": [], "theirs": [], "floor": []}
  os.makedirs(os.path.join(out, "floor-first"))
  first_floor = floor(os.path.join(out, "floor-first"))
  first_ours = timed_export(ours, ours_est, os.path.join(out, "ours-first"))
  first_theirs = timed_export(
      theirs, theirs_est, os.path.join(out, "theirs-first")
  )
  for i in range(repeats):
    order = ["ours", "theirs"] if i % 2 == 0 else ["theirs", "ours"]
    for who in order:
      base = os.path.join(out, "%s-%d" % (who, i))
      if who == "ours":
        times["ours"].append(timed_export(ours, ours_est, base))
      else:
        times["theirs"].append(timed_export(theirs, theirs_est, base))
    floor_dir = os.path.join(out, "floor-%d" % i)
    os.makedirs(floor_dir)
    times["floor"].append(floor(floor_dir))
    shutil.rmtree(out)  # Keep the page cache and the disk usage small.
    os.makedirs(out)
  result = {who: statistics.median(ts) for who, ts in times.items()}
  result["ours_first"] = first_ours
  result["theirs_first"] = first_theirs
  result["floor_first"] = first_floor
  result["weights"] = weights
  return result


def main(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="small,large")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument(
      "--check",
      action="store_true",
      help="exit with status 1 if a target is missed",
  )
  args = parser.parse_args(argv)
  missed = []
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
  workdir = tempfile.mkdtemp(prefix="export_benchmark_")
  try:
    print(
        "Steady state: median of %d exports into fresh folders. First call: "
        "ours builds its export plan (once per process)."
        % args.repeats
    )
    print(
        "%-6s %10s | %8s %8s %8s | %8s %8s %8s | %11s %10s"
        % (
            "size",
            "weights",
            "floor_s",
            "ours_s",
            "theirs_s",
            "floor_1st",
            "ours_1st",
            "their_1st",
            "ours/theirs",
            "ours/floor",
        )
    )
    for size in args.sizes.split(","):
      r = bench(size, args.repeats, workdir)
      print(
          "%-6s %10d | %8.4f %8.4f %8.4f | %8.4f %8.4f %8.4f | %11.2f %10.2f"
          % (
              size,
              r["weights"],
              r["floor"],
              r["ours"],
              r["theirs"],
              r["floor_first"],
              r["ours_first"],
              r["theirs_first"],
              r["ours"] / r["theirs"],
              r["ours"] / r["floor"],
          ),
          flush=True,
      )
      for what, _, target in TARGETS.get(size, ()):
        value = r["ours"] / r[what]
        ok = value <= target
        print(
            "  target %s: ours/%s = %.2f <= %.2f  %s"
            % (size, what, value, target, "PASS" if ok else "MISS")
        )
        if not ok:
          missed.append((size, what))
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  if args.check and missed:
    sys.exit(1)


if __name__ == "__main__":
  main(sys.argv[1:])
