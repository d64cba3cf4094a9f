"""`python -m hub_estimator.tools.inspect_module` describes modules and reports bad ones."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from google.protobuf import wrappers_pb2

import hub_estimator as hub
from hub_estimator.tools import inspect_module


def _module_fn(training=False):
  x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
  rate = tf.compat.v1.placeholder_with_default(0.25, [], name="rate")
  v = tf.compat.v1.get_variable("weights", [3, 2])
  step = tf.compat.v1.get_variable(
      "step", [], tf.int64, trainable=False, use_resource=True
  )
  tf.compat.v1.add_to_collection(
      tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES,
      tf.nn.l2_loss(v, name="l2"),
  )
  if training:
    tf.compat.v1.add_to_collection(
        tf.compat.v1.GraphKeys.UPDATE_OPS, step.assign_add(1, name="count")
    )
  tokens = tf.compat.v1.sparse_placeholder(tf.string, [None, None], "tokens")
  hub.add_signature(
      inputs={"x": x, "rate": rate},
      outputs={"default": tf.matmul(x, v) * rate},
  )
  hub.add_signature(
      "sparse", inputs=tokens, outputs=tf.sparse.to_dense(tokens, "")
  )
  info = hub.ImageModuleInfo()
  info.default_image_size.height = 7
  info.default_image_size.width = 5
  hub.attach_message("image_module_info", info)
  hub.attach_message(
      "gin_operative_config", wrappers_pb2.StringValue(value="a = 1\nb = 2\n")
  )


def _run_tool(*args):
  # Without TF_CPP_MIN_LOG_LEVEL, as a person would run it.
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run(
      [sys.executable, "-m", "hub_estimator.tools.inspect_module"] + list(args),
      capture_output=True,
      text=True,
      check=False,
      env=env,
  )


# A line of TensorFlow's C++ log, e.g. "2026-01-01 10:00:00.000000: E
# external/local_xla/...] Unable to register cuDNN factory ...".
_CPP_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+: [IWEF] ", re.MULTILINE)


class InspectModuleTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="inspect_")
    cls.path = os.path.join(cls.root, "inspect_me")
    spec = hub.create_module_spec(
        _module_fn, [({"train"}, {"training": True}), (set(), {})]
    )
    with tf.Graph().as_default():
      module = hub.Module(spec)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        module.export(cls.path, session)
    with open(os.path.join(cls.root, "export_metadata.json"), "w") as f:
      json.dump({"global_step": 42, "exporter": "best"}, f)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_json_document_shows_everything(self):
    document = inspect_module.inspect(self.path)
    self.assertEqual(document["schema_version"], 1)
    self.assertTrue(document["loadable"])
    self.assertIsNone(document["error"])
    self.assertEqual(
        document["format"], {"module_def_format": 3, "required_features": []}
    )
    self.assertEqual(
        document["op_policy"], {"verdict": "allowed", "refused": []}
    )
    default, train = document["graph_variants"]
    self.assertEqual((default["tags"], train["tags"]), ([], ["train"]))
    inputs = train["signatures"]["default"]["inputs"]
    self.assertEqual(
        inputs["x"],
        {
            "kind": "dense",
            "dtype": "float32",
            "shape": [None, 3],
            "has_default": False,
        },
    )
    self.assertEqual(
        inputs["rate"],
        {
            "kind": "dense",
            "dtype": "float32",
            "shape": [],
            "has_default": True,
            "default": 0.25,
        },
    )
    self.assertEqual(
        train["signatures"]["sparse"]["inputs"]["default"]["kind"], "sparse"
    )
    self.assertEqual(train["regularization_losses"], ["l2:0"])
    self.assertEqual(train["update_ops"], ["count"])
    self.assertEqual(default["update_ops"], [])
    self.assertEqual(
        train["attached_messages"]["image_module_info"]["value"],
        {"default_image_size": {"height": 7, "width": 5}},
    )
    self.assertEqual(
        train["attached_messages"]["gin_operative_config"]["value"],
        "a = 1\nb = 2\n",
    )
    self.assertEqual(train["op_histogram"]["MatMul"], 1)
    self.assertEqual(
        document["variables"],
        [
            {
                "name": "step",
                "shape": [],
                "dtype": "int64",
                "bytes": 8,
                "trainable": False,
            },
            {
                "name": "weights",
                "shape": [3, 2],
                "dtype": "float32",
                "bytes": 24,
                "trainable": True,
            },
        ],
    )
    self.assertEqual(document["assets"], [])
    self.assertEqual(
        document["provenance"], {"global_step": 42, "exporter": "best"}
    )

  def test_command_line_text_and_json(self):
    result = _run_tool(self.path)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertNotRegex(result.stderr, _CPP_LOG_LINE)  # No start-up noise.
    text = result.stdout
    self.assertIn("graph variant tags=['train']", text)
    self.assertIn("signature 'default'", text)
    self.assertRegex(text, r"input  x +float32 \[None, 3\]")
    self.assertRegex(
        text, r"input  rate +float32 \[\] \(optional, default 0.25\)"
    )
    self.assertIn("update_ops: count", text)
    self.assertIn("variable weights", text)
    self.assertIn("op policy: allowed", text)
    result = _run_tool("--json", self.path)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEqual(
        json.loads(result.stdout), inspect_module.inspect(self.path)
    )

  def test_text_names_the_module_source_and_its_chain(self):
    version = os.path.join(self.root, "consumer_version")
    shutil.copytree(self.path, os.path.join(version, "tuned"))
    first = {
        "source": "ModuleFnSource",
        "module_fn": "mlp.<locals>.module_fn",
        "export_name": "body",
    }
    source = {
        "source": "RunExportSource",
        "export_name": "tuned",
        "path": "/runs/pub/export/best/17/body",
        "run": "/runs/pub",
        "exporter": "best",
        "version": "17",
        "metric": "accuracy",
        "fine_tuning": {"frozen_steps": 200, "learning_rate_multiplier": 0.1},
        "upstream": first,
    }
    other = dict(source, export_name="other", run="/runs/elsewhere")
    with open(os.path.join(version, "export_metadata.json"), "w") as f:
      json.dump({"global_step": 7, "module_sources": [other, source]}, f)
    text = inspect_module.describe(os.path.join(version, "tuned"))
    self.assertIn(
        "\n  module source: source=RunExportSource,"
        " path=/runs/pub/export/best/17/body, run=/runs/pub, exporter=best,"
        " version=17, metric=accuracy\n"
        "    fine_tuning: frozen_steps=200, learning_rate_multiplier=0.1\n"
        "    upstream: source=ModuleFnSource,"
        " module_fn=mlp.<locals>.module_fn\n",
        text,
    )
    self.assertNotIn("/runs/elsewhere", text)

  def test_refused_module_exits_nonzero_and_lists_the_ops(self):
    path = os.path.join(self.root, "hostile")
    shutil.copytree(self.path, path)
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
      saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    node = saved_model.meta_graphs[1].graph_def.node.add(
        name="leak", op="ReadFile"
    )
    node.input.append("x")
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(saved_model.SerializeToString())
    result = _run_tool("--json", path)
    self.assertEqual(result.returncode, 1)
    document = json.loads(result.stdout)
    self.assertFalse(document["loadable"])
    self.assertEqual(document["op_policy"]["verdict"], "refused")
    self.assertEqual(
        document["op_policy"]["refused"],
        [{
            "tags": sorted(saved_model.meta_graphs[1].meta_info_def.tags),
            "function": None,
            "node": "leak",
            "op": "ReadFile",
            "kind": "file read",
            "why": "reads a file that is not one of the module's assets",
        }],
    )
    self.assertIn("is refused by the op policy", document["error"])
    # The text form names it too; a missing module is an error as well.
    result = _run_tool(path, os.path.join(self.root, "missing"))
    self.assertEqual(result.returncode, 1)
    self.assertIn("op policy: REFUSED", result.stdout)
    self.assertIn("op ReadFile (node 'leak')", result.stdout)
    self.assertIn("missing", result.stderr)

  def test_usage_errors(self):
    self.assertEqual(_run_tool().returncode, 2)
    self.assertEqual(_run_tool("--json", self.path, self.path).returncode, 2)


if __name__ == "__main__":
  tf.test.main()
