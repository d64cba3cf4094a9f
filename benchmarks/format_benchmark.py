"""Instantiation time and graph growth per call: hub_estimator vs tensorflow_hub 0.15.

Run: .venv/bin/python benchmarks/format_benchmark.py [--repeats 5]

Both libraries load the same module directories in one process. For each module it
prints the median time to instantiate the module and build its first call, the
graph nodes each extra call adds, and ours/theirs ratios. Targets (issue 2):
instantiation <= 0.8x, nodes per extra call <= 0.5x.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

import hub_estimator

try:
  import tensorflow_hub
except ImportError as e:  # pragma: no cover - the peer is a test dependency
  raise SystemExit(
      "tensorflow-hub==0.15.0 is needed: pip install -e '.[test]'"
  ) from e

MLP_SIZES = (2000, 4000, 4000, 4000)  # 8M + 16M + 16M = 40M weights
VOCAB_SIZE = 200_000
EMBEDDING_DIM = 128


def mlp_module_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, MLP_SIZES[0]], name="x")
  h = x
  for i, units in enumerate(MLP_SIZES[1:]):
    h = tf.compat.v1.layers.dense(
        h, units, activation=tf.nn.relu, name="dense_%d" % i
    )
  hub_estimator.add_signature(inputs=x, outputs=h)


def make_embedding_module_fn(vocab_path):
  def embedding_module_fn():
    words = tf.compat.v1.placeholder(tf.string, [None], name="words")
    table = tf.compat.v1.lookup.StaticVocabularyTable(
        tf.lookup.TextFileInitializer(
            vocab_path,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        num_oov_buckets=1,
    )
    embeddings = tf.compat.v1.get_variable(
        "embeddings",
        [VOCAB_SIZE + 1, EMBEDDING_DIM],
        initializer=tf.compat.v1.random_normal_initializer(stddev=0.1),
    )
    ids = table.lookup(words)
    hub_estimator.add_signature(
        inputs=words, outputs=tf.nn.embedding_lookup(embeddings, ids)
    )

  return embedding_module_fn


def export_module(module_fn, path):
  with tf.Graph().as_default():
    module = hub_estimator.Module(hub_estimator.create_module_spec(module_fn))
    with tf.compat.v1.Session() as session:
      session.run([
          tf.compat.v1.global_variables_initializer(),
          tf.compat.v1.tables_initializer(),
      ])
      module.export(path, session)


def measure(module_cls, path, make_input):
  """Returns (seconds to instantiate + first call, nodes added by the second call)."""
  with tf.Graph().as_default() as graph:
    start = time.perf_counter()
    module = module_cls(path)
    module(make_input())
    elapsed = time.perf_counter() - start
    before = len(graph.get_operations())
    module(make_input())
    return elapsed, len(graph.get_operations()) - before


def compare(name, path, make_input, repeats):
  results = {}
  for label, module_cls in (
      ("tensorflow_hub", tensorflow_hub.Module),
      ("hub_estimator", hub_estimator.Module),
  ):
    measure(module_cls, path, make_input)  # warm caches
  times = {"tensorflow_hub": [], "hub_estimator": []}
  nodes = {}
  for _ in range(repeats):
    for label, module_cls in (
        ("tensorflow_hub", tensorflow_hub.Module),
        ("hub_estimator", hub_estimator.Module),
    ):
      seconds, added = measure(module_cls, path, make_input)
      times[label].append(seconds)
      nodes[label] = added
  for label in times:
    results[label] = (statistics.median(times[label]), nodes[label])
  theirs, ours = results["tensorflow_hub"], results["hub_estimator"]
  print("%s:" % name)
  for label, (seconds, added) in results.items():
    print(
        "  %-15s instantiate+first call %.3f s   nodes per extra call %d"
        % (label, seconds, added)
    )
  time_ratio = ours[0] / theirs[0]
  node_ratio = ours[1] / theirs[1]
  print(
      "  ratio ours/theirs: instantiation %.2fx (target <= 0.80x: %s), nodes"
      " per call %.2fx (target <= 0.50x: %s)"
      % (
          time_ratio,
          "ok" if time_ratio <= 0.8 else "MISSED",
          node_ratio,
          "ok" if node_ratio <= 0.5 else "MISSED",
      )
  )
  return time_ratio, node_ratio


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  tf.compat.v1.disable_eager_execution()
  tf.get_logger().setLevel("ERROR")
  with tempfile.TemporaryDirectory() as root:
    mlp_path = os.path.join(root, "mlp")
    export_module(mlp_module_fn, mlp_path)
    vocab_path = os.path.join(root, "vocab.txt")
    with open(vocab_path, "w") as f:
      f.writelines("word%d\n" % i for i in range(VOCAB_SIZE))
    embedding_path = os.path.join(root, "embedding")
    export_module(make_embedding_module_fn(vocab_path), embedding_path)

    compare(
        "MLP %s (40M weights)" % "x".join(map(str, MLP_SIZES)),
        mlp_path,
        lambda: np.zeros([2, MLP_SIZES[0]], np.float32),
        args.repeats,
    )
    compare(
        "embedding %dk x %d with vocabulary table"
        % (VOCAB_SIZE // 1000, EMBEDDING_DIM),
        embedding_path,
        lambda: tf.constant(["word1", "word7", "unknown"]),
        args.repeats,
    )


if __name__ == "__main__":
  main()
