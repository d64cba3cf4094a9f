"""Cost of the op policy at load: vetting vs `Module(path)` + first call.

Run: .venv/bin/python benchmarks/op_policy_benchmark.py [--repeats 5]

For each module (an MLP with 40M weights, a 5,000-node graph, an embedding
with a vocabulary table asset) it prints the median of:

* vet: `op_policy.vet` on the module's already-read SavedModel proto, i.e.
  exactly what `load_module_spec` adds;
* ours: `hub_estimator.Module(path)` + the first call run in a session
  (variables restored from the module, tables initialized), default policy;
* trusted: the same with `allowed_ops=TRUST_ALL_OPS` (no vetting);
* peer: `tensorflow_hub.Module(path)` + first call, tensorflow_hub 0.15.0;

and the share vet / ours (target: <= 5%, issue 10), with ours / peer for
context. All are measured in this process, interleaved.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

import hub_estimator
from hub_estimator.format import op_policy
from hub_estimator.format import saved_model_io

try:
  import tensorflow_hub
except ImportError as e:  # pragma: no cover - the peer is a test dependency
  raise SystemExit(
      "tensorflow-hub==0.15.0 is needed: pip install -e '.[test]'"
  ) from e

# The 40M-weight MLP and the embedding module of the instantiation benchmark.
import format_benchmark  # pylint: disable=g-import-not-at-top,wrong-import-order

CHAIN_STEPS = 715  # 7 nodes a step: 5,005 graph nodes in all


def chain_module_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
  scale = tf.compat.v1.get_variable("scale", [8])
  h = x
  for i in range(CHAIN_STEPS):
    h = tf.nn.relu(h * (1.0 + 1e-4 * i) + 0.01) * 0.999
  hub_estimator.add_signature(inputs=x, outputs=h * scale)


def load_and_call(make_module, make_input):
  """Seconds to instantiate a module, build its first call and run it once."""
  with tf.Graph().as_default():
    start = time.perf_counter()
    module = make_module()
    output = module(make_input())
    with tf.compat.v1.Session() as session:
      session.run([
          tf.compat.v1.global_variables_initializer(),
          tf.compat.v1.tables_initializer(),
      ])
      session.run(output)
    return time.perf_counter() - start


def vet_seconds(saved_model, path):
  start = time.perf_counter()
  report = op_policy.vet(saved_model, path)
  elapsed = time.perf_counter() - start
  assert not report.findings, report.findings
  return elapsed


def compare(name, path, make_input, repeats):
  saved_model = saved_model_io.read_saved_model(path)
  nodes = sum(len(m.graph_def.node) for m in saved_model.meta_graphs)
  runs = {
      "ours": lambda: hub_estimator.Module(path),
      "trusted": lambda: hub_estimator.Module(
          path, allowed_ops=hub_estimator.TRUST_ALL_OPS
      ),
      "peer": lambda: tensorflow_hub.Module(path),
  }
  for make_module in runs.values():
    load_and_call(make_module, make_input)  # warm caches
  times = {label: [] for label in list(runs) + ["vet"]}
  for _ in range(repeats):
    times["vet"].append(vet_seconds(saved_model, path))
    for label, make_module in runs.items():
      times[label].append(load_and_call(make_module, make_input))
  median = {label: statistics.median(t) for label, t in times.items()}
  share = median["vet"] / median["ours"]
  print("%s (%d graph nodes):" % (name, nodes))
  print(
      "  vet                                  %8.2f ms" % (1e3 * median["vet"])
  )
  for label in runs:
    print(
        "  %-36s %8.2f ms"
        % (label + ": Module(path) + first call", 1e3 * median[label])
    )
  print(
      "  vet / ours %.2f%% (target <= 5%%: %s); ours - trusted %+.2f ms;"
      " ours / peer %.2fx"
      % (
          100 * share,
          "ok" if share <= 0.05 else "MISSED",
          1e3 * (median["ours"] - median["trusted"]),
          median["ours"] / median["peer"],
      )
  )
  return share


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  tf.compat.v1.disable_eager_execution()
  tf.get_logger().setLevel("ERROR")
  sizes = format_benchmark.MLP_SIZES
  with tempfile.TemporaryDirectory() as root:
    mlp_path = os.path.join(root, "mlp")
    format_benchmark.export_module(format_benchmark.mlp_module_fn, mlp_path)
    chain_path = os.path.join(root, "chain")
    format_benchmark.export_module(chain_module_fn, chain_path)
    vocab_path = os.path.join(root, "vocab.txt")
    with open(vocab_path, "w") as f:
      f.writelines("word%d\n" % i for i in range(format_benchmark.VOCAB_SIZE))
    embedding_path = os.path.join(root, "embedding")
    format_benchmark.export_module(
        format_benchmark.make_embedding_module_fn(vocab_path), embedding_path
    )
    compare(
        "MLP %s (40M weights)" % "x".join(map(str, sizes)),
        mlp_path,
        lambda: np.zeros([2, sizes[0]], np.float32),
        args.repeats,
    )
    compare(
        "chain of %d steps" % CHAIN_STEPS,
        chain_path,
        lambda: np.ones([2, 8], np.float32),
        args.repeats,
    )
    compare(
        "embedding %dk x %d with a vocabulary table asset"
        % (format_benchmark.VOCAB_SIZE // 1000, format_benchmark.EMBEDDING_DIM),
        embedding_path,
        lambda: tf.constant(["word1", "word7", "unknown"]),
        args.repeats,
    )


if __name__ == "__main__":
  main()
