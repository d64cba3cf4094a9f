"""`python -m hub_estimator.tools.inspect_module` describes modules and reports bad ones."""

import os
import subprocess
import sys

import tensorflow as tf

import hub_estimator as hub
from hub_estimator.tools import inspect_module


def _module_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
  v = tf.compat.v1.get_variable("weights", [3, 2])
  hub.add_signature(inputs=x, outputs={"default": tf.matmul(x, v)})
  rate = tf.compat.v1.placeholder_with_default(0.25, [], name="rate")
  hub.add_signature(
      "scaled", inputs={"x": x, "rate": rate}, outputs=tf.matmul(x, v) * rate
  )


class InspectModuleTest(tf.test.TestCase):

  def test_describe_and_command_line(self):
    path = os.path.join(self.get_temp_dir(), "inspect_me")
    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(_module_fn))
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        module.export(path, session)
    text = inspect_module.describe(path)
    self.assertIn("graph variant tags=[]", text)
    self.assertIn("signature 'default'", text)
    self.assertRegex(text, r"input  default +float32 \(None, 3\)\n")
    self.assertRegex(
        text, r"input  rate +float32 \(\) \(optional, default 0.25\)"
    )
    self.assertRegex(text, r"variable weights +\[3, 2\]")
    self.assertIn("1 variables, 6 weights", text)
    missing = os.path.join(self.get_temp_dir(), "missing")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub_estimator.tools.inspect_module",
            path,
            missing,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    self.assertEqual(result.returncode, 1)
    self.assertIn("signature 'default'", result.stdout)
    self.assertIn("missing", result.stderr)


if __name__ == "__main__":
  tf.test.main()
