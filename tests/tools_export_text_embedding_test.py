"""`python -m hub_estimator.tools.export_text_embedding`: word vectors to a text-embedding module."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_hub as tfhub

import hub_estimator as hub
from hub_estimator.tools import export_text_embedding


class ExportTextEmbeddingTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp(dir=self.get_temp_dir())

  def _write(self, name, text):
    path = os.path.join(self.root, name)
    with open(path, "w") as f:
      f.write(text)
    return path

  def test_module_embeds_sentences_in_both_libraries(self):
    vectors = self._write("vectors.txt", "3 2\ncat 1 0\ndog 0 2\nbird 3 4\n")
    path = export_text_embedding.export_text_embedding(
        vectors, os.path.join(self.root, "words"), num_oov_buckets=2
    )
    self.assertEqual(os.listdir(os.path.join(path, "assets")), ["tokens.txt"])
    expected = [[3.0, 4.0], [1.0 / np.sqrt(2), 2.0 / np.sqrt(2)], [0.0, 0.0]]
    sentences = ["bird", "cat dog", "unknown"]
    with hub.eval_function_for_module(path) as embed:
      self.assertAllClose(embed(sentences), expected)
    with tf.Graph().as_default():
      out = tfhub.Module(path)(tf.constant(sentences))
      with tf.compat.v1.Session() as session:
        session.run([
            tf.compat.v1.global_variables_initializer(),
            tf.compat.v1.tables_initializer(),
        ])
        self.assertAllClose(session.run(out), expected)
    column = hub.text_embedding_column("text", path)
    self.assertEqual(column.variable_shape.as_list(), [2])

  def test_bad_files_name_the_line_and_leave_nothing(self):
    target = os.path.join(self.root, "never")
    cases = {
        "ragged.txt": (
            "a 1 2\nb 3\n",
            r"ragged.txt:2: token 'b' has 1 values, expected 2",
        ),
        "dup.txt": (
            "a 1\nb 2\na 3\n",
            r"dup.txt:3: token 'a' already appeared on line 1",
        ),
        "nan.txt": (
            "a 1 x\n",
            r"nan.txt:1: the vector of token 'a' is not all numbers",
        ),
        "empty.txt": ("\n", "holds no vectors"),
    }
    for name, (text, message) in cases.items():
      with self.subTest(name):
        with self.assertRaisesRegex(ValueError, message):
          export_text_embedding.export_text_embedding(
              self._write(name, text), target
          )
    with self.assertRaisesRegex(ValueError, "does not exist"):
      export_text_embedding.export_text_embedding(
          os.path.join(self.root, "no.txt"), target
      )
    self.assertFalse(os.path.exists(target))
    self.assertEqual(
        [n for n in os.listdir(self.root) if n.startswith(".staging")], []
    )

  def test_command_line_refuses_an_existing_path(self):
    vectors = self._write("v.txt", "a 1 2\n")
    existing = os.path.join(self.root, "existing")
    os.makedirs(existing)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub_estimator.tools.export_text_embedding",
            "--embedding_file=" + vectors,
            "--export_path=" + existing,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("already exists", result.stderr)


if __name__ == "__main__":
  tf.test.main()
