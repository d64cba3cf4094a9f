"""TF1 Hub module -> TF2 Reusable SavedModel (`export_tf2_saved_model`).

Each scenario runs in a fresh TF2 (eager) child process (this file run as a
script with the scenario name); the child prints a JSON report that the test
checks. The TF1 reference values come from `hub_estimator.Module` in a
`tf.Graph`, the TF2 ones from `tf.saved_model.load` and tensorflow_hub 0.15's
`hub.KerasLayer`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

_REPORT = "REPORT:"


def _mlp_module(path, dropout_rate=0.0):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.models import module_fns  # pylint: disable=g-import-not-at-top

  module_fn = module_fns.mlp(
      input_dim=4,
      units=(5, 3),
      batch_norm=True,
      bn_momentum=0.9,
      dropout_rate=dropout_rate,
      l2=0.01,
  )
  spec = hub.create_module_spec(
      module_fn,
      tags_and_args=[({"train"}, {"is_training": True}), (set(), {})],
  )
  with tf.Graph().as_default():
    module = hub.Module(spec)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      # Moving statistics away from their initial 0 / 1, so that inference
      # really uses them.
      for variable in module.variables:
        if "moving" in variable.op.name:
          session.run(variable.assign(variable + 0.25))
      module.export(path, session)
  return path


def _tf1_outputs(path, x, tags):
  """Outputs, moving means after one update and regularization losses."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top

  with tf.Graph().as_default():
    module = hub.Module(path, trainable=True, tags=tags)
    out = module(x)
    updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    losses = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES
    )
    mean = [
        v for v in module.variables if v.op.name.endswith("bn_0/moving_mean")
    ]
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      value = session.run(out)
      session.run(updates)
      return value, session.run(mean[0]), session.run(losses)


def _variable(obj, name):
  return [v for v in obj.variables if v.name == name + ":0"][0]


def scenario_outputs(root):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  module = _mlp_module(os.path.join(root, "mlp"))
  x = np.random.RandomState(0).rand(6, 4).astype(np.float32)
  tf1_default, mean_default, losses = _tf1_outputs(module, x, None)
  tf1_train, mean_train, _ = _tf1_outputs(module, x, {"train"})
  tf2_bridge.export_tf2_saved_model(module, os.path.join(root, "tf2"))
  obj = tf.saved_model.load(os.path.join(root, "tf2"))
  mean = _variable(obj, "bn_0/moving_mean")
  before = mean.numpy()
  tf2_default = obj(x).numpy()
  after_inference = mean.numpy()
  tf2_dict = obj({"x": x}, training=False).numpy()
  signature = obj.signatures["default"](x=tf.constant(x))["default"].numpy()
  with_hparams = obj.signatures["with_hparams"](
      x=tf.constant(x),
      bn_momentum=tf.constant(0.9),
      dropout_rate=tf.constant(0.0),
  )["default"].numpy()
  # Last: the training call moves the moving statistics.
  tf2_train = obj(x, training=True).numpy()
  after_train = mean.numpy()
  return {
      "default_diff": float(np.abs(tf1_default - tf2_default).max()),
      "dict_diff": float(np.abs(tf1_default - tf2_dict).max()),
      "train_diff": float(np.abs(tf1_train - tf2_train).max()),
      "variants_differ": float(np.abs(tf1_train - tf1_default).max()),
      "signature_diff": float(np.abs(tf1_default - signature).max()),
      "with_hparams_diff": float(np.abs(tf1_default - with_hparams).max()),
      "inference_keeps_mean": float(np.abs(after_inference - before).max()),
      "train_mean_diff": float(np.abs(after_train - mean_train).max()),
      "train_mean_moved": float(np.abs(after_train - before).max()),
      "tf1_default_keeps_mean": float(np.abs(mean_default - before).max()),
      "losses_tf1": sorted(float(v) for v in losses),
      "losses_tf2": sorted(float(l()) for l in obj.regularization_losses),
      "variables": sorted(v.name for v in obj.variables),
      "trainable": sorted(v.name for v in obj.trainable_variables),
  }


def scenario_keras(root):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as tfhub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  module = _mlp_module(os.path.join(root, "mlp"), dropout_rate=0.2)
  export = tf2_bridge.export_tf2_saved_model(module, os.path.join(root, "tf2"))
  layer = tfhub.KerasLayer(export, trainable=True)
  model = tf.keras.Sequential(
      [tf.keras.Input([4]), layer, tf.keras.layers.Dense(2)]
  )
  model.compile(
      optimizer=tf.keras.optimizers.SGD(0.1),
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
  )
  rng = np.random.RandomState(1)
  x = rng.rand(32, 4).astype(np.float32)
  y = rng.randint(0, 2, size=32)
  names = sorted(w.name for w in layer.trainable_weights)
  kernel = [w for w in layer.trainable_weights if "dense_0/kernel" in w.name][0]
  mean = [
      w for w in layer.non_trainable_weights if "bn_0/moving_mean" in w.name
  ]
  kernel_before = kernel.numpy()
  mean_before = mean[0].numpy()
  model_losses = sorted(float(l) for l in model.losses)
  history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
  expected = sorted(
      0.01 * float(tf.reduce_sum(tf.square(w)))
      for w in [
          w for w in layer.trainable_weights if w.name.endswith("kernel:0")
      ]
  )
  return {
      "trainable_weights": names,
      "non_trainable": sorted(w.name for w in layer.non_trainable_weights),
      "kernel_change": float(np.abs(kernel.numpy() - kernel_before).max()),
      "mean_change": float(np.abs(mean[0].numpy() - mean_before).max()),
      "model_losses_before_fit": model_losses,
      "model_losses": sorted(float(l) for l in model.losses),
      "expected_losses": expected,
      "loss_finite": bool(np.isfinite(history.history["loss"]).all()),
  }


def scenario_vocabulary(root):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top
  from hub_estimator.models import module_fns  # pylint: disable=g-import-not-at-top

  vocab = os.path.join(root, "vocab.txt")
  with open(vocab, "w") as f:
    f.write("the\ncat\nsat\non\nmat\n")
  spec = hub.create_module_spec(
      module_fns.text_embedding(vocab_file=vocab, embedding_dim=4),
      tags_and_args=[({"train"}, {"is_training": True}), (set(), {})],
  )
  module = os.path.join(root, "text")
  sentences = np.array(["the cat sat", "on the MAT", "", "dog"], dtype=object)
  with tf.Graph().as_default():
    instance = hub.Module(spec)
    out = instance(sentences)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      session.run(tf.compat.v1.tables_initializer())
      tf1 = session.run(out)
      instance.export(module, session)
  export = os.path.join(root, "tf2")
  tf2_bridge.export_tf2_saved_model(module, export)
  shutil.rmtree(module)
  os.remove(vocab)
  obj = tf.saved_model.load(export)
  tf2 = obj(tf.constant(sentences.astype(bytes))).numpy()
  # Re-saving the loaded object keeps the table and its vocabulary asset.
  resaved = os.path.join(root, "resaved")
  tf.saved_model.save(obj, resaved)
  shutil.rmtree(export)
  again = tf.saved_model.load(resaved)
  tf2_again = again(tf.constant(sentences.astype(bytes))).numpy()
  return {
      "diff": float(np.abs(tf1 - tf2).max()),
      "resaved_diff": float(np.abs(tf1 - tf2_again).max()),
      "oov_nonzero": float(np.abs(tf1[3]).max()),
  }


def scenario_ref_variables(root):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  def module_fn():
    x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
    w = tf.compat.v1.get_variable("w", [2, 2], use_resource=False)
    hub.add_signature(inputs=x, outputs=tf.matmul(x, w))

  module = os.path.join(root, "ref")
  with tf.Graph().as_default():
    instance = hub.Module(hub.create_module_spec(module_fn))
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      instance.export(module, session)
  export = os.path.join(root, "tf2")
  try:
    tf2_bridge.export_tf2_saved_model(module, export)
  except tf2_bridge.ConversionError as e:
    return {"error": str(e), "written": os.path.exists(export)}
  return {"error": None}


def scenario_cli(root):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  module = _mlp_module(os.path.join(root, "mlp"))
  export = os.path.join(root, "tf2")
  tool = [sys.executable, "-m", "hub_estimator.tools.convert_to_tf2"]
  ok = subprocess.run(
      tool + ["--module=" + module, "--export_path=" + export],
      capture_output=True,
      text=True,
      check=False,
  )
  again = subprocess.run(
      tool + ["--module=" + module, "--export_path=" + export],
      capture_output=True,
      text=True,
      check=False,
  )
  missing = subprocess.run(
      tool + ["--module=" + os.path.join(root, "nope"), "--export_path=x"],
      capture_output=True,
      text=True,
      check=False,
  )
  obj = tf.saved_model.load(export)
  return {
      "ok": [ok.returncode, ok.stdout],
      "again": [again.returncode, again.stderr.strip().splitlines()[-1]],
      "missing": [missing.returncode, missing.stderr.strip().splitlines()[-1]],
      "loaded_variables": len(obj.variables),
  }


def scenario_exporter(root):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.models import module_fns  # pylint: disable=g-import-not-at-top

  def ref_module_fn():
    x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
    w = tf.compat.v1.get_variable("w", [4, 3], use_resource=False)
    hub.add_signature(inputs=x, outputs=tf.matmul(x, w))

  def make_model_fn(module_fn, tags_and_args):
    spec = hub.create_module_spec(module_fn, tags_and_args=tags_and_args)

    def model_fn(features, labels, mode):
      train = mode == tf.estimator.ModeKeys.TRAIN
      module = hub.Module(
          spec,
          trainable=True,
          tags={"train"} if train and tags_and_args else None,
      )
      logits = module(features["x"])
      hub.register_module_for_export(module, "body")
      if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions=logits)
      loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
      train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(
          loss, tf.compat.v1.train.get_global_step()
      )
      return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    return model_fn

  def input_fn():
    x = np.random.RandomState(0).randn(16, 4).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).repeat().batch(16)

  def serving_input_fn():
    x = tf.compat.v1.placeholder(tf.float32, [None, 4])
    return tf.estimator.export.ServingInputReceiver({"x": x}, x)

  def run(model_dir, model_fn, exporter):
    estimator = tf.estimator.Estimator(
        model_fn,
        model_dir,
        config=tf.estimator.RunConfig(save_checkpoints_steps=3),
    )
    tf.estimator.train_and_evaluate(
        estimator,
        tf.estimator.TrainSpec(input_fn, max_steps=3),
        tf.estimator.EvalSpec(
            input_fn, steps=1, exporters=[exporter], throttle_secs=0
        ),
    )

  mlp = module_fns.mlp(input_dim=4, units=(3,), batch_norm=True, l2=0.01)
  model_dir = os.path.join(root, "run")
  run(
      model_dir,
      make_model_fn(mlp, [({"train"}, {"is_training": True}), (set(), {})]),
      hub.LatestModuleExporter(
          "latest", serving_input_fn, tf2_saved_model=True
      ),
  )
  base = os.path.join(model_dir, "export", "latest")
  versions = sorted(os.listdir(base))
  version = os.path.join(base, versions[-1])
  with open(os.path.join(version, "export_metadata.json")) as f:
    metadata = json.load(f)
  x = np.random.RandomState(2).rand(5, 4).astype(np.float32)
  tf1 = _tf1_outputs(os.path.join(version, "body"), x, None)[0]
  obj = tf.saved_model.load(os.path.join(version, "tf2", "body"))
  tf2 = obj(x).numpy()

  failing_dir = os.path.join(root, "failing")
  error = None
  try:
    run(
        failing_dir,
        make_model_fn(ref_module_fn, None),
        hub.LatestModuleExporter(
            "latest",
            serving_input_fn,
            tf2_saved_model=True,
            raise_on_failure=True,
        ),
    )
  except Exception as e:  # pylint: disable=broad-except
    error = "%s: %s" % (type(e).__name__, e)
  failing_base = os.path.join(failing_dir, "export", "latest")
  return {
      "versions": versions,
      "version_files": sorted(os.listdir(version)),
      "tf2_files": sorted(os.listdir(os.path.join(version, "tf2"))),
      "policy": (
          metadata["exporter"]["policy"]
          if "exporter" in metadata
          else metadata.get("policy")
      ),
      "diff": float(np.abs(tf1 - tf2).max()),
      "failing_error": error,
      "failing_left": (
          sorted(os.listdir(failing_base))
          if os.path.isdir(failing_base)
          else []
      ),
  }


def _run(scenario):
  root = tempfile.mkdtemp(prefix="tf2_bridge_")
  try:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), scenario, root],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    lines = [l for l in result.stdout.splitlines() if l.startswith(_REPORT)]
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    return json.loads(lines[-1][len(_REPORT) :])
  finally:
    shutil.rmtree(root, ignore_errors=True)


def test_outputs_equal_the_tf1_module_in_both_variants():
  report = _run("outputs")
  assert report["variants_differ"] > 1e-3  # batch vs moving statistics
  assert report["default_diff"] <= 1e-6
  assert report["dict_diff"] <= 1e-6
  assert report["train_diff"] <= 1e-6
  assert report["signature_diff"] <= 1e-6
  assert report["with_hparams_diff"] <= 1e-6
  # UPDATE_OPS run with training=True only, like the TF1 {"train"} variant.
  assert report["inference_keeps_mean"] == 0.0
  assert report["train_mean_moved"] > 1e-3
  assert report["train_mean_diff"] <= 1e-6
  assert np.allclose(report["losses_tf2"], report["losses_tf1"], atol=1e-7)
  assert len(report["losses_tf2"]) == 2
  assert len(report["variables"]) == 12  # one shared set for both variants
  assert report["trainable"] == sorted(
      v for v in report["variables"] if "moving" not in v
  )


def test_keras_layer_fine_tunes_the_converted_module():
  report = _run("keras")
  assert len(report["trainable_weights"]) == 8
  assert sorted(report["non_trainable"]) == [
      "bn_0/moving_mean:0",
      "bn_0/moving_variance:0",
      "bn_1/moving_mean:0",
      "bn_1/moving_variance:0",
  ]
  assert report["kernel_change"] > 1e-4
  assert report["mean_change"] > 1e-4
  assert report["loss_finite"]
  assert len(report["model_losses"]) == 2
  assert np.allclose(
      report["model_losses"], report["expected_losses"], rtol=1e-5
  )


def test_vocabulary_module_works_after_deleting_the_original_export():
  report = _run("vocabulary")
  assert report["oov_nonzero"] > 0
  assert report["diff"] <= 1e-6
  assert report["resaved_diff"] <= 1e-6


def test_reference_variables_get_one_clear_error():
  report = _run("ref_variables")
  assert report["error"] is not None
  assert "reference variable" in report["error"]
  assert "'w'" in report["error"]
  assert not report["written"]


def test_command_line_tool_converts_and_reports_errors():
  report = _run("cli")
  assert report["ok"][0] == 0, report
  assert "Wrote TF2 Reusable SavedModel" in report["ok"][1]
  assert report["loaded_variables"] == 12
  assert report["again"][0] == 1
  assert "already exists" in report["again"][1]
  assert report["missing"][0] == 1
  assert "does not exist" in report["missing"][1]


def test_exporter_publishes_tf2_saved_model_with_the_module():
  report = _run("exporter")
  assert len(report["versions"]) == 1
  assert "body" in report["version_files"]
  assert "tf2" in report["version_files"]
  assert report["tf2_files"] == ["body"]
  assert report["diff"] <= 1e-6
  assert report["policy"]["tf2_saved_model"] is True
  # A module that cannot convert fails the whole version: nothing published.
  assert "reference variable" in report["failing_error"], report
  assert report["failing_left"] == []


if __name__ == "__main__":
  _result = globals()["scenario_" + sys.argv[1]](sys.argv[2])
  print(_REPORT + json.dumps(_result))
