"""The whole TF1 flow under `tf.compat.v1.disable_v2_behavior()`, as TF1 programs run.

`disable_v2_behavior` is process-wide, so the flow runs in a child process
(this file run as a script) and the test checks what it reports.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf


def _child(root):
  """Creates, trains, exports and reloads a module with both libraries."""
  tf.compat.v1.disable_v2_behavior()
  import tensorflow_hub as tfhub  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top

  vocab = os.path.join(root, "vocab.txt")
  with open(vocab, "w") as f:
    f.write("a\nb\nc\n")

  def module_fn(training):
    words = tf.compat.v1.placeholder(tf.string, [None], name="words")
    dense = tf.compat.v1.placeholder(tf.float32, [None, 2], name="dense")
    sparse = tf.compat.v1.sparse_placeholder(
        tf.float32, [None, 4], name="sparse"
    )
    table = tf.compat.v1.lookup.StaticVocabularyTable(
        tf.lookup.TextFileInitializer(
            vocab,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        1,
    )
    emb = tf.compat.v1.get_variable(
        "emb", [4, 2], regularizer=tf.keras.regularizers.l2(0.1)
    )
    hidden = tf.nn.embedding_lookup(emb, table.lookup(words)) + dense
    hidden = tf.compat.v1.layers.batch_normalization(hidden, training=training)
    hidden = tf.cond(tf.reduce_sum(hidden) > 0, lambda: hidden, lambda: -hidden)
    hub.add_signature(inputs={"words": words, "dense": dense}, outputs=hidden)
    hub.add_signature(
        "sparse", inputs=sparse, outputs=tf.sparse.reduce_sum(sparse, axis=1)
    )

  spec = hub.create_module_spec(
      module_fn, [({"train"}, {"training": True}), (set(), {"training": False})]
  )
  path = os.path.join(root, "module")
  report = {}
  with tf.Graph().as_default():
    module = hub.Module(spec, trainable=True, tags={"train"})
    out = module({"words": ["a", "z"], "dense": np.ones([2, 2], np.float32)})
    summed = module(
        tf.SparseTensor([[0, 1]], [2.0], [1, 4]), signature="sparse"
    )
    report["update_ops"] = len(
        tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    )
    report["regularization_losses"] = len(
        tf.compat.v1.losses.get_regularization_losses()
    )
    loss = tf.reduce_sum(out) + tf.add_n(
        tf.compat.v1.losses.get_regularization_losses()
    )
    with tf.control_dependencies(
        tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    ):
      train = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss)
    with tf.compat.v1.Session() as session:
      session.run([
          tf.compat.v1.global_variables_initializer(),
          tf.compat.v1.tables_initializer(),
      ])
      session.run(train)
      report["sparse"] = session.run(summed).tolist()
      module.export(path, session)
  inputs = {"words": ["b", "zz"], "dense": [[0.0, 1.0], [1.0, 0.0]]}
  for name, library in (("ours", hub), ("theirs", tfhub)):
    with tf.Graph().as_default():
      outputs = library.Module(path)(inputs)
      with tf.compat.v1.Session() as session:
        session.run([
            tf.compat.v1.global_variables_initializer(),
            tf.compat.v1.tables_initializer(),
        ])
        report[name] = session.run(outputs).tolist()
  return report


class TF1BehaviorTest(tf.test.TestCase):

  def test_full_flow_in_tf1_mode_matches_tensorflow_hub(self):
    root = tempfile.mkdtemp(dir=self.get_temp_dir())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), root],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    report = json.loads(result.stdout.strip().splitlines()[-1])
    self.assertEqual(report["update_ops"], 2)  # the "sparse" call adds none
    self.assertEqual(report["regularization_losses"], 1)
    self.assertAllClose(report["sparse"], [2.0])
    self.assertAllClose(report["ours"], report["theirs"])


if __name__ == "__main__":
  if len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
    print(json.dumps(_child(sys.argv[1])))
  else:
    tf.test.main()
