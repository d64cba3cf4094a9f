"""End-to-end tests of the exporters: real estimators, modules, processes.

Also runnable as a script (`python export_e2e_test.py child <command> ...`):
the restart and SIGKILL tests run their second process that way.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from absl import logging as absl_logging
import gin
import numpy as np
import tensorflow as tf
import tensorflow_hub as tfhub

import hub_estimator as hub
from hub_estimator import export
from hub_estimator.export import core
from google.protobuf import wrappers_pb2

_MODULE_FILES = ["assets", "saved_model.pb", "tfhub_module.pb", "variables"]


def _module_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 4])
  hidden = tf.compat.v1.layers.dense(x, 3, name="dense")
  hub.add_signature(inputs=x, outputs=hidden)


def _make_model_fn(learning_rate=0.5):
  """A classifier over a registered dense module (the module is the model)."""
  spec = hub.create_module_spec(_module_fn)

  def model_fn(features, labels, mode):
    module = hub.Module(spec, trainable=True)
    logits = module(features["x"])
    export.register_module_for_export(module, "dense")
    if mode == tf.estimator.ModeKeys.PREDICT:
      return tf.estimator.EstimatorSpec(mode, predictions=logits)
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
    train_op = tf.compat.v1.train.GradientDescentOptimizer(
        learning_rate
    ).minimize(loss, tf.compat.v1.train.get_global_step())
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

  return model_fn


def _input_fn(flip_labels=False):
  def input_fn():
    x = np.random.RandomState(0).randn(16, 4).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)
    if flip_labels:
      y = 2 - y
    return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).repeat().batch(16)

  return input_fn


def _serving_input_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 4])
  return tf.estimator.export.ServingInputReceiver({"x": x}, x)


def _estimator(model_dir, **kwargs):
  config = tf.estimator.RunConfig(
      save_checkpoints_steps=2,
      tf_random_seed=0,
      keep_checkpoint_max=None,
      log_step_count_steps=1000,
  )
  return tf.estimator.Estimator(
      _make_model_fn(**kwargs), model_dir, config=config
  )


def _train_and_evaluate(model_dir, max_steps, exporters, flip_labels=False):
  estimator = _estimator(model_dir)
  train_spec = tf.estimator.TrainSpec(_input_fn(), max_steps=max_steps)
  eval_spec = tf.estimator.EvalSpec(
      _input_fn(flip_labels),
      steps=1,
      exporters=exporters,
      start_delay_secs=0,
      throttle_secs=0,
  )
  tf.estimator.train_and_evaluate(estimator, train_spec, eval_spec)
  return estimator


def _versions(base):
  if not tf.io.gfile.isdir(base):
    return []
  return sorted(
      os.path.join(base, n)
      for n in tf.io.gfile.listdir(base)
      if len(n) == 10 and n.isdigit()
  )


def _metadata(version_dir):
  with open(os.path.join(version_dir, export.METADATA_FILENAME)) as f:
    return json.load(f)


def _module_values(module_cls, path):
  """Loads a module in a fresh graph; returns {module key: value}."""
  with tf.Graph().as_default():
    module = module_cls(path)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      return session.run(dict(module.variable_map))


def _run_child(*args, wait=True):
  command = [sys.executable, os.path.abspath(__file__), "child"] + list(args)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
  if wait:
    return subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
  return subprocess.Popen(
      command,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
  )


class ExportEndToEndTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    gin.clear_config()
    self.model_dir = tempfile.mkdtemp(dir=self.get_temp_dir())

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def assert_module_matches_checkpoint(self, module_dir, checkpoint_path):
    self.assertEqual(sorted(os.listdir(module_dir)), _MODULE_FILES)
    expected = {
        key: tf.train.load_variable(checkpoint_path, "module/" + key)
        for key in ("dense/kernel", "dense/bias")
    }
    for module_cls in (hub.Module, tfhub.Module):
      values = _module_values(module_cls, module_dir)
      self.assertEqual(sorted(values), sorted(expected))
      for key, value in expected.items():
        self.assertAllEqual(values[key], value, msg=key)

  def test_train_and_evaluate_with_all_three_exporters(self):
    gin.parse_config("PeriodicModuleExporter.every_n_steps = 4")
    exporters = [
        export.LatestModuleExporter(
            "latest", _serving_input_fn, exports_to_keep=2
        ),
        export.BestModuleExporter("best", _serving_input_fn, exports_to_keep=2),
        export.PeriodicModuleExporter("periodic", _serving_input_fn),
    ]
    _train_and_evaluate(self.model_dir, 6, exporters)
    export_dir = os.path.join(self.model_dir, "export")
    self.assertEqual(
        sorted(os.listdir(export_dir)), ["best", "latest", "periodic"]
    )

    latest = _versions(os.path.join(export_dir, "latest"))
    self.assertEqual([_metadata(v)["global_step"] for v in latest], [4, 6])
    periodic = _versions(os.path.join(export_dir, "periodic"))
    self.assertEqual([_metadata(v)["global_step"] for v in periodic], [4, 6])
    self.assertTrue(_metadata(periodic[-1])["is_the_final_export"])
    best = _versions(os.path.join(export_dir, "best"))
    losses = [_metadata(v)["metrics"]["loss"] for v in best]
    self.assertNotEmpty(best)
    self.assertEqual(losses, sorted(losses, reverse=True))  # Improvements.

    for version in latest + periodic + best:
      metadata = _metadata(version)
      self.assertEqual(os.listdir(version).count("operative_config.gin"), 1)
      self.assertEqual(metadata["modules"], ["dense"])
      self.assertIn("loss", metadata["metrics"])
      self.assertEqual(
          metadata["checkpoint_path"],
          os.path.join(
              self.model_dir, "model.ckpt-%d" % metadata["global_step"]
          ),
      )
      self.assert_module_matches_checkpoint(
          os.path.join(version, "dense"), metadata["checkpoint_path"]
      )

    # The operative gin config travels with the module, in both libraries.
    module_dir = os.path.join(periodic[-1], "dense")
    for module_cls in (hub.Module, tfhub.Module):
      with tf.Graph().as_default():
        text = (
            module_cls(module_dir)
            .get_attached_message(
                export.GIN_CONFIG_ATTACHMENT_KEY, wrappers_pb2.StringValue
            )
            .value
        )
      self.assertIn("PeriodicModuleExporter.every_n_steps = 4", text)

  def test_restart_in_new_process_never_publishes_worse_best(self):
    first = _train_and_evaluate(
        self.model_dir,
        4,
        [export.BestModuleExporter("best", _serving_input_fn)],
    )
    best_dir = os.path.join(self.model_dir, "export", "best")
    before = _versions(best_dir)
    self.assertLen(before, 1)
    best_loss = _metadata(before[0])["metrics"]["loss"]
    self.assertGreater(
        first.evaluate(_input_fn(flip_labels=True), steps=1)["loss"], best_loss
    )

    # A new process continues the run; its evaluations (flipped labels) are
    # all worse than the best published before the restart.
    child = _run_child("restart", self.model_dir)
    self.assertEqual(child.returncode, 0, msg=child.stderr[-3000:])
    after_latest = _versions(os.path.join(self.model_dir, "export", "latest"))
    self.assertNotEmpty(after_latest)  # It did evaluate and export.
    for version in after_latest:
      self.assertGreater(_metadata(version)["metrics"]["loss"], best_loss)
    self.assertEqual(_versions(best_dir), before)
    self.assertIn("does not beat the best so far", child.stderr)

  def test_sigkill_mid_export_leaves_no_partial_version(self):
    estimator = _estimator(self.model_dir)
    estimator.train(_input_fn(), max_steps=2)
    base = os.path.join(self.model_dir, "export", "latest")
    child = _run_child("kill_mid_export", self.model_dir, wait=False)
    try:
      line = ""
      deadline = time.time() + 90
      while "VARIABLES_WRITTEN" not in line and time.time() < deadline:
        line = child.stdout.readline()
        if not line and child.poll() is not None:
          break
      self.assertIn(
          "VARIABLES_WRITTEN",
          line,
          msg=child.stderr.read()[-3000:] if child.poll() is not None else "",
      )
      child.send_signal(signal.SIGKILL)
      child.wait(timeout=30)
    finally:
      if child.poll() is None:
        child.kill()
      child.stdout.close()
      child.stderr.close()
    self.assertEqual(child.returncode, -signal.SIGKILL)
    names = os.listdir(base)
    self.assertEqual(_versions(base), [])
    self.assertLen(names, 1)
    self.assertTrue(names[0].startswith("temp-"))
    self.assertTrue(
        os.path.exists(
            os.path.join(
                base, names[0], "dense", "variables", "variables.index"
            )
        )
    )

    # The next run cleans up and goes on.
    path = export.LatestModuleExporter("latest", _serving_input_fn).export(
        estimator, base
    )
    self.assertEqual(os.listdir(base), [os.path.basename(path.decode())])
    self.assert_module_matches_checkpoint(
        os.path.join(path.decode(), "dense"), estimator.latest_checkpoint()
    )

  def test_failing_final_export_stops_the_run_after_training(self):
    exporter = export.LatestModuleExporter("latest", _serving_input_fn)
    base = os.path.join(self.model_dir, "export", "latest")
    # A file where the export folder should be: every export fails.
    os.makedirs(os.path.dirname(base))
    with open(base, "w") as f:
      f.write("in the way")
    # Training completes; the final export, which nothing would retry,
    # raises with its cause (earlier ones only log: export_policies_test).
    with self.assertRaises(export.ExportError) as raised:
      _train_and_evaluate(self.model_dir, 4, [exporter])
    self.assertIn("nothing was published", str(raised.exception))
    self.assertIn("is not a directory", str(raised.exception))
    self.assertIn("final evaluation", str(raised.exception))
    self.assertTrue(tf.train.latest_checkpoint(self.model_dir).endswith("-4"))
    raising = export.LatestModuleExporter(
        "latest", _serving_input_fn, raise_on_failure=True
    )
    with self.assertRaises(export.ExportError):
      raising.export(_estimator(self.model_dir), base)

  def test_general_path_for_custom_saver_matches_fast_path(self):
    estimator = _estimator(self.model_dir)
    estimator.train(_input_fn(), max_steps=2)
    fast = export.LatestModuleExporter("fast", _serving_input_fn).export(
        estimator, os.path.join(self.model_dir, "export", "fast")
    )

    base_fn = _make_model_fn()

    def model_fn_with_saver(features, labels, mode):
      spec = base_fn(features, labels, mode)
      return spec._replace(
          scaffold=tf.compat.v1.train.Scaffold(
              saver=tf.compat.v1.train.Saver(sharded=True)
          )
      )

    custom = tf.estimator.Estimator(model_fn_with_saver, self.model_dir)
    slow = export.LatestModuleExporter("slow", _serving_input_fn).export(
        custom, os.path.join(self.model_dir, "export", "slow")
    )
    checkpoint = estimator.latest_checkpoint()
    for path in (fast, slow):
      self.assert_module_matches_checkpoint(
          os.path.join(path.decode(), "dense"), checkpoint
      )

  def test_exports_modules_registered_with_tensorflow_hub(self):
    ours = _estimator(self.model_dir)
    ours.train(_input_fn(), max_steps=2)
    spec = tfhub.create_module_spec(_tfhub_module_fn)

    def tfhub_model_fn(features, labels, mode):
      del labels
      module = tfhub.Module(spec, trainable=True)
      logits = module(features["x"])
      tfhub.register_module_for_export(module, "dense")
      return tf.estimator.EstimatorSpec(mode, predictions=logits)

    # Same checkpoint, model_fn written against tensorflow_hub: its modules
    # go through the general (session) path.
    theirs = tf.estimator.Estimator(tfhub_model_fn, self.model_dir)
    path = export.LatestModuleExporter("ours", _serving_input_fn).export(
        theirs, os.path.join(self.model_dir, "export", "ours")
    )
    self.assert_module_matches_checkpoint(
        os.path.join(path.decode(), "dense"), ours.latest_checkpoint()
    )

  def test_tensorflow_hub_exporter_exports_our_modules(self):
    estimator = _estimator(self.model_dir)
    estimator.train(_input_fn(), max_steps=2)
    path = tfhub.LatestModuleExporter("theirs", _serving_input_fn).export(
        estimator,
        os.path.join(self.model_dir, "export", "theirs").encode("utf-8"),
    )
    self.assert_module_matches_checkpoint(
        os.path.join(path.decode(), "dense"), estimator.latest_checkpoint()
    )

  def test_partitioned_variables_take_the_fast_path(self):
    def module_fn():
      ids = tf.compat.v1.placeholder(tf.int64, [None])
      table = tf.compat.v1.get_variable(
          "table", [6, 3], partitioner=tf.compat.v1.fixed_size_partitioner(2)
      )
      hub.add_signature(inputs=ids, outputs=tf.nn.embedding_lookup(table, ids))

    spec = hub.create_module_spec(module_fn)
    predict_calls = []

    def model_fn(features, labels, mode):
      module = hub.Module(spec, trainable=True)
      export.register_module_for_export(module, "table")
      logits = module(features["id"])
      if mode == tf.estimator.ModeKeys.PREDICT:
        predict_calls.append(1)
        return tf.estimator.EstimatorSpec(mode, predictions=logits)
      loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
      train_op = tf.compat.v1.train.GradientDescentOptimizer(1.0).minimize(
          loss, tf.compat.v1.train.get_global_step()
      )
      return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    def input_fn():
      return tf.data.Dataset.from_tensor_slices((
          {"id": np.arange(6, dtype=np.int64)},
          np.arange(6, dtype=np.int32) % 3,
      )).batch(6)

    def serving_input_fn():
      ids = tf.compat.v1.placeholder(tf.int64, [None])
      return tf.estimator.export.ServingInputReceiver({"id": ids}, ids)

    estimator = tf.estimator.Estimator(model_fn, self.model_dir)
    estimator.train(input_fn, steps=2)
    checkpoint = estimator.latest_checkpoint()
    paths = [
        exporter_cls(name, serving_input_fn, **kwargs).export(
            estimator,
            os.path.join(self.model_dir, "export", name),
            checkpoint,
            {"loss": 1.0, "global_step": 2},
            True,
        )
        for exporter_cls, name, kwargs in [
            (export.LatestModuleExporter, "latest", {}),
            (export.BestModuleExporter, "best", {}),
            (export.PeriodicModuleExporter, "periodic", {"every_n_steps": 1}),
        ]
    ]
    # One PREDICT graph for the three exporters, and a plan on the fast path.
    self.assertLen(predict_calls, 1)
    plan = core.PLANS.get(estimator, serving_input_fn)
    self.assertTrue(plan.modules[0].uses_fast_path)
    self.assertEqual(
        [e.slice_spec for e in plan.modules[0].copy.entries],
        ["6 3 0,3:0,3", "6 3 3,3:0,3"],
    )
    expected = tf.train.load_variable(checkpoint, "module/table")
    reader = tf.train.load_checkpoint(
        os.path.join(paths[0].decode(), "table", "variables", "variables")
    )
    self.assertAllEqual(reader.get_tensor("table"), expected)
    for path in paths:
      module_dir = os.path.join(path.decode(), "table")
      for module_cls in (hub.Module, tfhub.Module):
        with tf.Graph().as_default():
          module = module_cls(module_dir)
          lookup = module(tf.constant(np.arange(6, dtype=np.int64)))
          with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            self.assertAllEqual(session.run(lookup), expected)


def _tfhub_module_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 4])
  hidden = tf.compat.v1.layers.dense(x, 3, name="dense")
  tfhub.add_signature(inputs=x, outputs=hidden)


def _child_main(command, model_dir):
  """The second process of the restart and SIGKILL tests."""
  absl_logging.set_verbosity(absl_logging.INFO)
  if command == "restart":
    _train_and_evaluate(
        model_dir,
        8,
        [
            export.BestModuleExporter("best", _serving_input_fn),
            export.LatestModuleExporter("latest", _serving_input_fn),
        ],
        flip_labels=True,
    )
  elif command == "kill_mid_export":
    from hub_estimator.format import writer  # pylint: disable=g-import-not-at-top

    copy = writer.CheckpointCopy.write

    def copy_then_hang(self, checkpoint_path, prefix):
      copy(self, checkpoint_path, prefix)
      print("VARIABLES_WRITTEN", flush=True)
      time.sleep(600)

    writer.CheckpointCopy.write = copy_then_hang
    export.LatestModuleExporter("latest", _serving_input_fn).export(
        _estimator(model_dir), os.path.join(model_dir, "export", "latest")
    )
  else:
    raise ValueError("unknown child command %r" % command)


if __name__ == "__main__":
  if len(sys.argv) > 1 and sys.argv[1] == "child":
    _child_main(sys.argv[2], sys.argv[3])
  else:
    tf.test.main()
