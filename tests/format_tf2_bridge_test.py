"""TF1 Hub module -> TF2 Reusable SavedModel (`export_tf2_saved_model`).

Each test runs its scenarios in one fresh TF2 (eager) child process (this
file run as a script with the scenario names); the child prints a JSON report
per scenario that the test checks. Scenarios share a child to keep the suite
fast (one TensorFlow start per test). The TF1 reference values come from `hub_estimator.Module` in a
`tf.Graph`, the TF2 ones from `tf.saved_model.load` and tensorflow_hub 0.15's
`hub.KerasLayer`.
"""

import itertools
import json
import logging
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


def _tf1_outputs(path, x, tags, signature=None):
  """Outputs, moving means after one update and regularization losses."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top

  with tf.Graph().as_default():
    module = hub.Module(path, trainable=True, tags=tags)
    out = module(x, signature=signature)
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
  hparams = {"x": x, "bn_momentum": np.float32(0.5), "dropout_rate": 0.0}
  tf1_hparams, mean_hparams, _ = _tf1_outputs(
      module, hparams, {"train"}, "with_hparams"
  )
  # The training calls move the moving statistics: from here on mean moves.
  tf2_hparams = obj.train_signatures["with_hparams"](
      **{k: tf.constant(v, tf.float32) for k, v in hparams.items()}
  )["default"]
  after_hparams = mean.numpy()
  mean.assign(before)
  tf2_train = obj(x, training=True).numpy()
  after_train = mean.numpy()
  return {
      "train_signatures": sorted(obj.train_signatures),
      "train_hparams_diff": float(np.abs(tf1_hparams - tf2_hparams).max()),
      "train_hparams_mean_diff": float(
          np.abs(after_hparams - mean_hparams).max()
      ),
      "hparams_momentum_used": float(np.abs(mean_hparams - mean_train).max()),
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
  # Converted under a finalized graph, as an exporter inside a training run
  # converts: the tables must not touch the caller's graph.
  finalized = tf.Graph()
  with finalized.as_default():
    finalized.finalize()
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


def scenario_partitioned(root):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as tfhub  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  def module_fn():
    ids = tf.compat.v1.placeholder(tf.int64, [None], name="ids")
    emb = tf.compat.v1.get_variable(
        "emb",
        [10, 4],
        partitioner=tf.compat.v1.fixed_size_partitioner(3),
        use_resource=True,
    )
    w = tf.compat.v1.get_variable("w", [4, 2], use_resource=True)
    # Used by partition (a "div" lookup) and as a whole (its concatenation).
    looked = tf.compat.v1.nn.embedding_lookup(
        emb, ids, partition_strategy="div"
    )
    whole = tf.reduce_sum(tf.square(tf.convert_to_tensor(emb)))
    hub.add_signature(inputs=ids, outputs=tf.matmul(looked, w) + whole)

  module = os.path.join(root, "partitioned")
  ids = np.array([0, 3, 4, 9, 7], dtype=np.int64)
  with tf.Graph().as_default():
    instance = hub.Module(hub.create_module_spec(module_fn))
    out = instance(ids)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      tf1 = session.run(out)
      instance.export(module, session)
  export = tf2_bridge.export_tf2_saved_model(module, os.path.join(root, "tf2"))
  obj = tf.saved_model.load(export)
  tf2 = obj(ids).numpy()
  layer = tfhub.KerasLayer(export, trainable=True)
  model = tf.keras.Sequential(
      [tf.keras.Input([], dtype=tf.int64), layer, tf.keras.layers.Dense(1)]
  )
  model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
  parts = sorted(
      (w for w in layer.trainable_weights if w.name.startswith("emb/")),
      key=lambda w: w.name,
  )
  before = [p.numpy() for p in parts]
  model.fit(ids, np.zeros([5, 1], np.float32), epochs=2, verbose=0)
  return {
      "diff": float(np.abs(tf1 - tf2).max()),
      "variables": sorted(
          "%s%s" % (v.name, v.shape.as_list()) for v in obj.variables
      ),
      "parts_changed": [
          float(np.abs(p.numpy() - b).max()) for p, b in zip(parts, before)
      ],
  }


def _checkpoint_contents(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  prefix = os.path.join(path, "variables", "variables")
  reader = tf.train.load_checkpoint(prefix)
  dtypes = reader.get_variable_to_dtype_map()
  return {
      key: (dtypes[key].name, reader.get_tensor(key))
      for key in reader.get_variable_to_shape_map()
  }, os.path.getsize(prefix + ".data-00000-of-00001")


def scenario_checkpoint_copy(root):
  """The copied checkpoint equals tf.saved_model.save's; fallbacks work."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_checkpoint  # pylint: disable=g-import-not-at-top

  copy_plan = tf2_checkpoint.CopyPlan.for_module
  copy_keys = tf2_checkpoint._copy_keys  # pylint: disable=protected-access
  planned = []

  def recording(prefix, sources):
    planned.append(copy_plan(prefix, sources) is not None)
    return copy_plan(prefix, sources)

  def convert(module, name, plan=recording, keys=copy_keys):
    tf2_checkpoint.CopyPlan.for_module = plan
    tf2_checkpoint._copy_keys = keys  # pylint: disable=protected-access
    try:
      return tf2_bridge.export_tf2_saved_model(module, os.path.join(root, name))
    finally:
      tf2_checkpoint.CopyPlan.for_module = copy_plan
      tf2_checkpoint._copy_keys = copy_keys  # pylint: disable=protected-access

  def compare(reference, other):
    (expected, expected_size), (actual, actual_size) = (
        _checkpoint_contents(reference),
        _checkpoint_contents(other),
    )
    assert sorted(expected) == sorted(actual), (expected, actual)
    return expected_size == actual_size and all(
        expected[k][0] == actual[k][0]
        and np.array_equal(expected[k][1], actual[k][1])
        for k in expected
    )

  def outputs(path, x):
    obj = tf.saved_model.load(path)
    return np.concatenate(
        [obj(x).numpy().ravel(), obj(x, training=True).numpy().ravel()]
    )

  module = _mlp_module(os.path.join(root, "mlp"))
  x = np.random.RandomState(0).rand(3, 4).astype(np.float32)
  saved = convert(module, "saved", plan=lambda prefix, sources: None)
  copied = convert(module, "copied")
  # The copy's object graph turns out not to be the variables' alone: the
  # values are read and TF's checkpoint is written.
  restored = convert(module, "restored", keys=lambda *args: None)
  # A tensor no variable reads: the data file is not copied (it would carry
  # it along), TF's checkpoint is written.
  prefix = os.path.join(module, "variables", "variables")
  reader = tf.train.load_checkpoint(prefix)
  names = sorted(reader.get_variable_to_shape_map())
  tf.raw_ops.SaveV2(
      prefix=prefix,
      tensor_names=names + ["zz_unused"],
      shape_and_slices=[""] * (len(names) + 1),
      tensors=[reader.get_tensor(n) for n in names] + [tf.zeros([3])],
  )
  extra = convert(module, "extra")
  reference = outputs(saved, x)
  return {
      "planned": planned,
      "copied_same": compare(saved, copied),
      "restored_same": compare(saved, restored),
      "extra_same": compare(saved, extra),
      "diffs": [
          float(np.abs(outputs(p, x) - reference).max())
          for p in (copied, restored, extra)
      ],
      "variable_names_same": (
          sorted(v.name for v in tf.saved_model.load(copied).variables)
          == sorted(v.name for v in tf.saved_model.load(saved).variables)
      ),
  }


def scenario_sparse(root):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  vocab = os.path.join(root, "vocab.txt")
  with open(vocab, "w") as f:
    f.write("the\ncat\nsat\n")

  def module_fn(is_training=False):
    # A sparse batch of tokens, as sparse_text_embedding_column feeds it.
    tokens = tf.compat.v1.sparse_placeholder(
        tf.string, [None, None], name="tokens"
    )
    table = tf.compat.v1.lookup.StaticVocabularyTable(
        tf.compat.v1.lookup.TextFileInitializer(
            vocab,
            tf.string,
            tf.compat.v1.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.compat.v1.lookup.TextFileIndex.LINE_NUMBER,
        ),
        2,
    )
    ids = tf.SparseTensor(
        tokens.indices, table.lookup(tokens.values), tokens.dense_shape
    )
    emb = tf.compat.v1.get_variable("emb", [5, 3], use_resource=True)
    embedded = tf.nn.safe_embedding_lookup_sparse(emb, ids, combiner="sqrtn")
    if is_training:
      embedded *= 2.0
    hub.add_signature(inputs=tokens, outputs=embedded)
    hub.add_signature("ids", inputs={"tokens": tokens}, outputs={"ids": ids})
    scores = tf.compat.v1.ragged.placeholder(tf.float32, 1, [], name="scores")
    hub.add_signature(
        "ragged",
        inputs={"scores": scores},
        outputs={"sums": tf.reduce_sum(scores, axis=1), "doubled": scores * 2},
    )

  module = os.path.join(root, "sparse")
  tokens = tf.compat.v1.SparseTensorValue(
      indices=[[0, 0], [0, 1], [1, 0], [3, 0]],
      values=[b"the", b"dog", b"sat", b"cat"],
      dense_shape=[4, 2],
  )
  spec = hub.create_module_spec(
      module_fn,
      tags_and_args=[({"train"}, {"is_training": True}), (set(), {})],
  )
  with tf.Graph().as_default():
    instance = hub.Module(spec)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      instance.export(module, session)
  tf1 = {}
  for tags in (None, {"train"}):
    with tf.Graph().as_default():
      instance = hub.Module(module, tags=tags)
      sparse = tf.SparseTensor(*tokens)
      out = instance(sparse)
      ids = instance(sparse, signature="ids", as_dict=True)["ids"]
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(tf.compat.v1.tables_initializer())
        tf1[str(tags)] = session.run([out, ids])
  export = tf2_bridge.export_tf2_saved_model(module, os.path.join(root, "tf2"))
  obj = tf.saved_model.load(export)
  sparse = tf.SparseTensor(
      tokens.indices, tf.constant(tokens.values), tokens.dense_shape
  )
  emb = [v for v in obj.trainable_variables if v.name == "emb:0"][0]
  with tf.GradientTape() as tape:
    tf2_train = obj(sparse, training=True)
    loss = tf.reduce_sum(tf.square(tf2_train))
  gradient = tape.gradient(loss, emb)
  tf2_ids = obj.signatures["ids"](
      tokens=sparse.indices, tokens_1=sparse.values, tokens_2=sparse.dense_shape
  )["ids"]
  tf2_train_ids = obj.train_signatures["ids"](
      tokens=sparse.indices, tokens_1=sparse.values, tokens_2=sparse.dense_shape
  )["ids"]
  tf1_ids = tf1["None"][1]
  scores = [[1.0, 2.0], [], [3.0]]
  with tf.Graph().as_default():
    instance = hub.Module(module)
    ragged = instance(
        tf.ragged.constant(scores), signature="ragged", as_dict=True
    )
    with tf.compat.v1.Session() as session:
      tf1_ragged = session.run(ragged)
  ragged = tf.ragged.constant(scores)
  tf2_ragged = obj.train_signatures["ragged"](
      scores=ragged.flat_values, scores_1=ragged.row_splits
  )
  return {
      "diff": float(np.abs(obj(sparse).numpy() - tf1["None"][0]).max()),
      "dict_diff": float(
          np.abs(obj({"default": sparse}).numpy() - tf1["None"][0]).max()
      ),
      "train_diff": float(
          np.abs(tf2_train.numpy() - tf1["{'train'}"][0]).max()
      ),
      "gradient_norm": float(tf.norm(tf.convert_to_tensor(gradient))),
      "ids_equal": [
          tf2_ids.indices.numpy().tolist() == tf1_ids.indices.tolist(),
          tf2_ids.values.numpy().tolist() == tf1_ids.values.tolist(),
          tf2_train_ids.values.numpy().tolist() == tf1_ids.values.tolist(),
      ],
      "dense_error": _error(lambda: obj(tf.constant([["the"]]))),
      "ragged_sums": [
          tf2_ragged["sums"].numpy().tolist(),
          tf1_ragged["sums"].tolist(),
      ],
      "ragged_doubled": [
          tf2_ragged["doubled"].to_list(),
          tf1_ragged["doubled"].to_list(),
      ],
  }


def _functions_module_fn(sign=1.0, is_training=False):
  """A module_fn with v2 tf.cond / tf.while_loop, tf.function, Defun, map_fn."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.framework import function  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top

  v1 = tf.compat.v1
  x = v1.placeholder(tf.float32, [None, 4], name="x")
  w = v1.get_variable("w", [4, 3], use_resource=True)
  b = v1.get_variable(
      "b", [3], use_resource=True, initializer=v1.constant_initializer(0.1)
  )
  v1.add_to_collection(
      v1.GraphKeys.REGULARIZATION_LOSSES, 0.01 * tf.reduce_sum(tf.square(w))
  )

  # Fixed name: two modules with different bodies clash by name.
  @function.Defun(tf.float32, func_name="module_scale")
  def scale(t):
    return t * sign

  y = scale(tf.matmul(x, w))
  y.set_shape([None, 3])
  y = tf.cond(tf.reduce_sum(x) > 0, lambda: y + b, lambda: tf.nn.relu(y) - b)

  def body(i, v):
    factor = 0.5 if is_training else 0.75
    return i + 1, tf.tanh(v) * factor + b

  _, y = tf.while_loop(lambda i, v: i < 3, body, [tf.constant(0), y])

  @tf.function
  def head(t):
    # A nested cond inside the function body, and a map_fn (a while loop).
    t = tf.cond(tf.reduce_max(t) > 10.0, lambda: t / 10.0, lambda: t)
    return tf.map_fn(lambda row: row * w[0], t) + b

  hub.add_signature(inputs=x, outputs=head(y))


def _tf1_call(path, x, tags):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top

  with tf.Graph().as_default():
    out = hub.Module(path, tags=tags)(x)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      return session.run(out)


def scenario_functions(root):
  """Graph functions convert, here in the process that built the modules."""
  import functools  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as tfhub  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  rng = np.random.RandomState(3)
  # Rows of both signs of sum: both branches of the tf.cond run.
  x = rng.randn(6, 4).astype(np.float32)
  report = {}
  loaded = {}
  for name, sign in (("plus", 1.0), ("minus", -2.0)):
    spec = hub.create_module_spec(
        functools.partial(_functions_module_fn, sign),
        tags_and_args=[({"train"}, {"is_training": True}), (set(), {})],
    )
    module = os.path.join(root, name)
    with tf.Graph().as_default():
      instance = hub.Module(spec)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        instance.export(module, session)
    # Both modules call a Defun named "module_scale", with other bodies.
    export = tf2_bridge.export_tf2_saved_model(
        module, os.path.join(root, name + "_tf2")
    )
    loaded[name] = tf.saved_model.load(export)
    for training, tags in ((False, None), (True, {"train"})):
      # One batch per branch of the tf.cond (on the sum of the batch).
      for batch in (x, -x):
        tf1 = _tf1_call(module, batch, tags)
        tf2 = loaded[name](batch, training=training).numpy()
        report.setdefault("diff", []).append(float(np.abs(tf1 - tf2).max()))

  # tf.custom_gradient: converted in the process that registered it, the
  # gradient is saved with the model.
  @tf.custom_gradient
  def triple_gradient(t):
    return tf.identity(t), lambda dy: dy * 3.0

  def custom_module_fn():
    x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
    w = tf.compat.v1.get_variable("w", [4, 3], use_resource=True)
    hub.add_signature(inputs=x, outputs=triple_gradient(tf.matmul(x, w)))

  module = os.path.join(root, "custom")
  with tf.Graph().as_default():
    instance = hub.Module(hub.create_module_spec(custom_module_fn))
    gradient = tf.gradients(tf.reduce_sum(instance(x)), instance.variables)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      tf1_gradient = session.run(gradient)[0]
      instance.export(module, session)
  custom = tf.saved_model.load(
      tf2_bridge.export_tf2_saved_model(module, module + "_tf2")
  )
  with tf.GradientTape() as tape:
    total = tf.reduce_sum(custom(x))
  tf2_gradient = tape.gradient(total, custom.trainable_variables[0]).numpy()
  report["custom_gradient_diff"] = float(
      np.abs(tf1_gradient - tf2_gradient).max()
  )
  report["custom_gradient_tripled"] = float(
      np.abs(tf1_gradient - 3 * np.tile(x.sum(0)[:, None], [1, 3])).max()
  )
  # Loaded together, each runs its own functions.
  report["modules_differ"] = float(
      np.abs(loaded["plus"](x).numpy() - loaded["minus"](x).numpy()).max()
  )
  report["variants_differ"] = float(
      np.abs(
          loaded["plus"](x).numpy() - loaded["plus"](x, training=True).numpy()
      ).max()
  )
  layer = tfhub.KerasLayer(os.path.join(root, "plus_tf2"), trainable=True)
  model = tf.keras.Sequential(
      [tf.keras.Input([4]), layer, tf.keras.layers.Dense(1)]
  )
  model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
  before = {w.name: w.numpy() for w in layer.trainable_weights}
  model.fit(x, rng.randn(6, 1), batch_size=3, epochs=2, verbose=0)
  report["weight_changes"] = {
      w.name: float(np.abs(w.numpy() - before[w.name]).max())
      for w in layer.trainable_weights
  }
  report["model_losses"] = [float(l) for l in model.losses]
  kernel = [w for w in layer.trainable_weights if w.name == "w:0"][0]
  report["expected_losses"] = [0.01 * float(tf.reduce_sum(tf.square(kernel)))]
  return report


def _error(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return "%s: %s" % (type(e).__name__, e)
  return None


def scenario_optional(root):
  """obj(inputs) takes any subset of the optional inputs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  v1 = tf.compat.v1

  def module_fn(optional=2):
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    w = v1.get_variable("w", [2, 2], use_resource=True)
    inputs, out = {"x": x}, tf.matmul(x, w)
    for k in range(optional):
      name = "hparam_%d" % k
      inputs[name] = v1.placeholder_with_default(float(k + 2), [], name=name)
      out = out * inputs[name] + float(k)
    hub.add_signature(inputs=inputs, outputs=out)

  x = np.random.RandomState(4).rand(3, 2).astype(np.float32)
  report = {}
  for optional in (2, 5):
    module = os.path.join(root, "optional_%d" % optional)
    spec = hub.create_module_spec(
        module_fn, tags_and_args=[(set(), {"optional": optional})]
    )
    with tf.Graph().as_default():
      instance = hub.Module(spec)
      with v1.Session() as session:
        session.run(v1.global_variables_initializer())
        instance.export(module, session)
    obj = tf.saved_model.load(
        tf2_bridge.export_tf2_saved_model(module, module + "_tf2")
    )
    combinations = [
        given
        for count in range(optional + 1)
        for given in itertools.combinations(range(optional), count)
    ]
    for given in combinations:
      inputs = {"x": x}
      inputs.update({"hparam_%d" % k: np.float32(k + 7) for k in given})
      with tf.Graph().as_default():
        out = hub.Module(module)(inputs)
        with v1.Session() as session:
          session.run(v1.global_variables_initializer())
          tf1 = session.run(out)
      key = "%d:%s" % (optional, ",".join(map(str, given)))
      error = _error(lambda: obj(inputs))  # pylint: disable=cell-var-from-loop
      report[key] = (
          error
          if error
          else float(np.abs(obj(inputs, training=True).numpy() - tf1).max())
      )
  return report


def scenario_default_updates(root):
  """Without a {"train"} variant, training=True runs the default UPDATE_OPS."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  v1 = tf.compat.v1

  def module_fn():
    x = v1.placeholder(tf.float32, [None, 3], name="x")
    # Batch norm switched by an input: v2 tf.cond updates in UPDATE_OPS.
    training = v1.placeholder_with_default(False, [], name="training")
    y = v1.layers.batch_normalization(x, training=training, momentum=0.5)
    hub.add_signature(inputs={"x": x, "training": training}, outputs=y)

  module = os.path.join(root, "bn")
  with tf.Graph().as_default():
    instance = hub.Module(hub.create_module_spec(module_fn))
    with v1.Session() as session:
      session.run(v1.global_variables_initializer())
      instance.export(module, session)
  x = np.random.RandomState(5).rand(4, 3).astype(np.float32) * 5
  inputs = {"x": x, "training": True}
  with tf.Graph().as_default():
    instance = hub.Module(module, trainable=True)
    out = instance(inputs)
    updates = v1.get_collection(v1.GraphKeys.UPDATE_OPS)
    mean = [v for v in instance.variables if "moving_mean" in v.op.name][0]
    with v1.Session() as session:
      session.run(v1.global_variables_initializer())
      tf1 = session.run(out)
      session.run(updates)
      tf1_mean = session.run(mean)
  obj = tf.saved_model.load(
      tf2_bridge.export_tf2_saved_model(module, module + "_tf2")
  )
  mean = [v for v in obj.variables if "moving_mean" in v.name][0]
  before = mean.numpy()
  inference = obj(inputs).numpy()
  after_inference = mean.numpy()
  tf2 = obj(inputs, training=True).numpy()
  return {
      "inference_diff": float(np.abs(inference - tf1).max()),
      "train_diff": float(np.abs(tf2 - tf1).max()),
      "inference_keeps_mean": float(np.abs(after_inference - before).max()),
      "mean_diff": float(np.abs(mean.numpy() - tf1_mean).max()),
      "mean_moved": float(np.abs(tf1_mean - before).max()),
  }


def scenario_train_losses(root):
  """Regularization losses come from the {"train"} variant, which trains."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as tfhub  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  v1 = tf.compat.v1

  def module_fn(is_training=False):
    x = v1.placeholder(tf.float32, [None, 3], name="x")
    # A weight penalty of another scale in training, and one only there.
    scale = 0.1 if is_training else 0.5
    y = v1.layers.dense(
        x, 2, kernel_regularizer=tf.keras.regularizers.l2(scale)
    )
    if is_training:
      y = v1.layers.dense(
          y, 2, kernel_regularizer=tf.keras.regularizers.l1(0.01)
      )
    else:
      y = v1.layers.dense(y, 2)
    # Frozen for fine-tuning (trainable only in inference), and the reverse.
    frozen = v1.get_variable(
        "frozen", [2], use_resource=True, trainable=not is_training
    )
    tuned = v1.get_variable(
        "tuned", [2], use_resource=True, trainable=is_training
    )
    hub.add_signature(inputs=x, outputs=y * frozen + tuned)

  module = os.path.join(root, "losses")
  spec = hub.create_module_spec(
      module_fn,
      tags_and_args=[({"train"}, {"is_training": True}), (set(), {})],
  )
  with tf.Graph().as_default():
    instance = hub.Module(spec)
    with v1.Session() as session:
      session.run(v1.global_variables_initializer())
      instance.export(module, session)
  tf1 = {}
  for name, tags in (("default", None), ("train", {"train"})):
    with tf.Graph().as_default():
      instance = hub.Module(module, trainable=True, tags=tags)
      instance(np.zeros([1, 3], np.float32))
      losses = v1.get_collection(v1.GraphKeys.REGULARIZATION_LOSSES)
      tf1[name + "_trainable"] = sorted(
          v.op.name[len("module/") :] for v in v1.trainable_variables()
      )
      with v1.Session() as session:
        session.run(v1.global_variables_initializer())
        tf1[name] = sorted(float(v) for v in session.run(losses))
  export = tf2_bridge.export_tf2_saved_model(module, module + "_tf2")
  obj = tf.saved_model.load(export)
  layer = tfhub.KerasLayer(export, trainable=True)
  model = tf.keras.Sequential([tf.keras.Input([3]), layer])
  return {
      "tf1": tf1,
      "tf2": sorted(float(l()) for l in obj.regularization_losses),
      "keras": sorted(float(l) for l in model.losses),
      "trainable": sorted(v.name[:-2] for v in obj.trainable_variables),
      "keras_trainable": sorted(w.name[:-2] for w in layer.trainable_weights),
  }


def scenario_train_defaults(root):
  """Left-out inputs take the defaults of the variant that runs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  v1 = tf.compat.v1

  def module_fn(is_training=False):
    x = v1.placeholder(tf.float32, [None, 3], name="x")
    # Another default in training; `shift` has a default only there.
    scale = v1.placeholder_with_default(
        2.0 if is_training else 1.0, [], name="scale"
    )
    if is_training:
      shift = v1.placeholder_with_default(0.5, [], name="shift")
    else:
      shift = v1.placeholder(tf.float32, [], name="shift")
    w = v1.get_variable("w", [3, 2], use_resource=True)
    hub.add_signature(
        inputs={"x": x, "scale": scale, "shift": shift},
        outputs=tf.matmul(x, w) * scale + shift,
    )

  module = os.path.join(root, "defaults")
  spec = hub.create_module_spec(
      module_fn,
      tags_and_args=[({"train"}, {"is_training": True}), (set(), {})],
  )
  with tf.Graph().as_default():
    instance = hub.Module(spec)
    with v1.Session() as session:
      session.run(v1.global_variables_initializer())
      instance.export(module, session)
  x = np.random.RandomState(7).rand(4, 3).astype(np.float32)
  inputs = {"x": x, "shift": np.float32(0.25)}
  tf1 = {}
  for training, tags in ((False, None), (True, {"train"})):
    with tf.Graph().as_default():
      out = hub.Module(module, tags=tags)(inputs)
      with v1.Session() as session:
        session.run(v1.global_variables_initializer())
        tf1[training] = session.run(out)
  obj = tf.saved_model.load(
      tf2_bridge.export_tf2_saved_model(module, module + "_tf2")
  )
  report = {
      "diff_%s"
      % training: float(
          np.abs(obj(inputs, training=training).numpy() - tf1[training]).max()
      )
      for training in (False, True)
  }
  report["variants_differ"] = float(np.abs(tf1[True] - tf1[False]).max())
  # A default in one variant only: the input is required.
  report["without_shift"] = _error(lambda: obj({"x": x}, training=True))
  return report


def scenario_errors(root):
  """Modules the converter refuses: each error, and nothing written."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top
  from tensorflow.python.framework import function  # pylint: disable=g-import-not-at-top
  from hub_estimator.format import tf2_bridge  # pylint: disable=g-import-not-at-top

  v1 = tf.compat.v1

  def dense(x, use_resource=True):
    w = v1.get_variable("w", [2, 2], use_resource=use_resource)
    return tf.matmul(x, w)

  def ref_variables():
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    hub.add_signature(inputs=x, outputs=dense(x, use_resource=False))

  def activity_loss():
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    y = dense(x)
    v1.add_to_collection(
        v1.GraphKeys.REGULARIZATION_LOSSES,
        tf.reduce_mean(tf.square(y), name="activity"),
    )
    hub.add_signature(inputs=x, outputs=y)

  def key_value_table():
    words = v1.placeholder(tf.string, [None], name="words")
    table = v1.lookup.StaticHashTable(
        v1.lookup.KeyValueTensorInitializer(["a", "b"], [0, 1], tf.string),
        -1,
    )
    hub.add_signature(inputs=words, outputs=table.lookup(words))

  def mutable_table():
    words = v1.placeholder(tf.string, [None], name="words")
    table = v1.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1)
    hub.add_signature(inputs=words, outputs=table.lookup(words))

  def defun_gradient():
    x = v1.placeholder(tf.float32, [None, 2], name="x")

    @function.Defun(tf.float32, tf.float32, func_name="triple_grad")
    def triple_grad(unused_t, dy):
      return dy * 3.0

    @function.Defun(tf.float32, grad_func=triple_grad, func_name="ident")
    def ident(t):
      return t

    hub.add_signature(inputs=x, outputs=ident(dense(x)))

  def gradient_override():
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    # A gradient registered nowhere in this process (as a tf.custom_gradient
    # of the process that built a module is, in any other process).
    graph = v1.get_default_graph()
    with graph.gradient_override_map({"Identity": "BuilderOnlyGradient"}):
      y = tf.identity(dense(x))
    hub.add_signature(inputs=x, outputs=y)

  def function_with_state():
    x = v1.placeholder(tf.float32, [None, 2], name="x")

    @tf.function
    def shift(t):
      # A variable made (by shared name) inside the function body: TF2 has
      # no variable for the converter to map it onto.
      handle = tf.raw_ops.VarHandleOp(
          dtype=tf.float32, shape=[], shared_name="shift"
      )
      return t + tf.raw_ops.ReadVariableOp(resource=handle, dtype=tf.float32)

    hub.add_signature(inputs=x, outputs=shift(dense(x)))

  def unfed_placeholder():
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    scale = v1.placeholder(tf.float32, [], name="scale")
    hub.add_signature(inputs=x, outputs=dense(x) * scale)

  def other_signature_only():
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    hub.add_signature("other", inputs=x, outputs=dense(x))

  def train_takes_other_inputs(is_training=False):
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    inputs = {"x": x}
    if is_training:
      inputs["rate"] = v1.placeholder(tf.float32, [], name="rate")
    hub.add_signature(inputs=inputs, outputs=dense(x))

  def v1_while_loop():
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    _, y = tf.while_loop(
        lambda i, t: i < 3, lambda i, t: (i + 1, tf.tanh(t)), [0, dense(x)]
    )
    hub.add_signature(inputs=x, outputs=y)

  def v1_cond_reads_variable():
    x = v1.placeholder(tf.float32, [None, 2], name="x")
    training = v1.placeholder_with_default(False, [], name="training")
    # Reads the moving statistics inside v1 tf.cond branches.
    y = v1.layers.batch_normalization(dense(x), training=training)
    hub.add_signature(inputs={"x": x, "training": training}, outputs=y)

  def component_names_taken():
    x = v1.sparse_placeholder(tf.float32, [None, 2], name="x")
    x_1 = v1.placeholder(tf.float32, [None, 2], name="x_1")
    y = tf.sparse.sparse_dense_matmul(x, v1.ones([2, 2])) + dense(x_1)
    hub.add_signature(inputs={"x": x, "x_1": x_1}, outputs=y)

  def export(name, module_fn, tags_and_args=None):
    path = os.path.join(root, name)
    control_flow_v1 = name.startswith("v1_")
    if control_flow_v1:  # as TF1 code (disable_v2_behavior) builds
      v1.disable_control_flow_v2()
    try:
      spec = hub.create_module_spec(
          module_fn,
          tags_and_args=tags_and_args,
          drop_collections=["saveable_objects"],  # of the MutableHashTable
      )
    finally:
      if control_flow_v1:
        v1.enable_control_flow_v2()
    with tf.Graph().as_default():
      instance = hub.Module(spec)
      with v1.Session() as session:
        session.run(v1.global_variables_initializer())
        session.run(v1.tables_initializer())
        instance.export(path, session)
    return path

  def convert(module, export_path=None, allowed_ops=None):
    export_path = export_path or module + "_tf2"
    try:
      tf2_bridge.export_tf2_saved_model(module, export_path, allowed_ops)
    except Exception as e:  # pylint: disable=broad-except
      return {
          "type": type(e).__name__,
          "error": str(e),
          "written": (
              os.path.exists(export_path)
              or any(
                  n.startswith(os.path.basename(export_path) + ".temp")
                  for n in os.listdir(os.path.dirname(export_path))
              )
          ),
      }
    return {"type": None}

  train_variants = [({"train"}, {"is_training": True}), (set(), {})]
  report = {
      name: convert(export(name, fn, tags_and_args))
      for name, fn, tags_and_args in [
          ("ref_variables", ref_variables, None),
          ("activity_loss", activity_loss, None),
          ("key_value_table", key_value_table, None),
          ("mutable_table", mutable_table, None),
          ("defun_gradient", defun_gradient, None),
          ("gradient_override", gradient_override, None),
          ("unfed_placeholder", unfed_placeholder, None),
          ("other_signature_only", other_signature_only, None),
          ("component_names_taken", component_names_taken, None),
          ("v1_while_loop", v1_while_loop, None),
          ("v1_cond_reads_variable", v1_cond_reads_variable, None),
          (
              "train_takes_other_inputs",
              train_takes_other_inputs,
              train_variants,
          ),
      ]
  }
  # The op policy refuses a shared_name inside a function (it could reach
  # the loading process's state); trusted, the converter still cannot map it.
  report["function_with_state"] = convert(
      export("function_with_state", function_with_state),
      allowed_ops=["VarHandleOp"],
  )
  report["missing_module"] = convert(os.path.join(root, "nope"))
  existing = os.path.join(root, "existing")
  os.mkdir(existing)
  report["export_path_exists"] = convert(
      os.path.join(root, "ref_variables"), existing
  )
  return report


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
  missing = subprocess.run(
      tool + ["--module=" + os.path.join(root, "nope"), "--export_path=x"],
      capture_output=True,
      text=True,
      check=False,
  )
  obj = tf.saved_model.load(export)
  return {
      "ok": [ok.returncode, ok.stdout],
      "missing": [
          missing.returncode,
          missing.stderr.strip().splitlines()[-1],
          "Traceback" in missing.stderr,
      ],
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

  class Collect(logging.Handler):

    def __init__(self):
      super().__init__(logging.INFO)
      self.messages = []

    def emit(self, record):
      self.messages.append(record.getMessage())

  # Everything TF and absl log in the run, INFO included.
  collect = Collect()
  for name in ("absl", "tensorflow"):
    logging.getLogger(name).addHandler(collect)
    logging.getLogger(name).setLevel(logging.INFO)
  mlp = module_fns.mlp(input_dim=4, units=(3,), batch_norm=True, l2=0.01)
  model_dir = os.path.join(root, "run")
  run(
      model_dir,
      make_model_fn(mlp, [({"train"}, {"is_training": True}), (set(), {})]),
      hub.LatestModuleExporter(
          "latest", serving_input_fn, tf2_saved_model=True
      ),
  )
  renamed_inputs = [m for m in collect.messages if "unsupported char" in m]
  # (the run logged at INFO: a check that the handler saw anything)
  saw_info = any("Saving checkpoints" in m for m in collect.messages)
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
      "renamed_inputs": renamed_inputs,
      "saw_info": saw_info,
      "failing_error": error,
      "failing_left": (
          sorted(os.listdir(failing_base))
          if os.path.isdir(failing_base)
          else []
      ),
  }


def _run(*scenarios):
  """Runs scenarios in one fresh process; returns {scenario: report}."""
  root = tempfile.mkdtemp(prefix="tf2_bridge_")
  try:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), ",".join(scenarios), root],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    lines = [l for l in result.stdout.splitlines() if l.startswith(_REPORT)]
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    return json.loads(lines[-1][len(_REPORT) :])
  finally:
    shutil.rmtree(root, ignore_errors=True)


def _check_outputs(report):
  """Outputs equal the tf1 module in both variants."""
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
  # Every signature has a training version: the {"train"} variant's, with
  # its UPDATE_OPS (here with bn_momentum fed as 0.5, not the default 0.9).
  assert report["train_signatures"] == ["default", "hparams", "with_hparams"]
  assert report["train_hparams_diff"] <= 1e-6
  assert report["hparams_momentum_used"] > 1e-3
  assert report["train_hparams_mean_diff"] <= 1e-6
  assert np.allclose(report["losses_tf2"], report["losses_tf1"], atol=1e-7)
  assert len(report["losses_tf2"]) == 2
  assert len(report["variables"]) == 12  # one shared set for both variants
  assert report["trainable"] == sorted(
      v for v in report["variables"] if "moving" not in v
  )


def _check_keras(report):
  """Keras layer fine tunes the converted module."""
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


def _check_vocabulary(report):
  """Vocabulary module works after deleting the original export."""
  assert report["oov_nonzero"] > 0
  assert report["diff"] <= 1e-6
  assert report["resaved_diff"] <= 1e-6


def _check_partitioned(report):
  """Partitioned variables convert one variable per partition."""
  assert report["diff"] <= 1e-5
  assert report["variables"] == [
      "emb/part_0:0[4, 4]",
      "emb/part_1:0[3, 4]",
      "emb/part_2:0[3, 4]",
      "w:0[4, 2]",
  ]
  # Fine-tuning reaches every partition (the whole-tensor use touches all).
  assert all(change > 1e-6 for change in report["parts_changed"]), report


def _check_functions(report):
  """Graph functions convert; clashing names of two modules do not mix."""
  assert len(report["diff"]) == 8, report
  assert max(report["diff"]) <= 1e-6, report
  assert report["modules_differ"] > 1e-3, report
  assert report["custom_gradient_tripled"] <= 1e-5, report
  assert report["custom_gradient_diff"] <= 1e-5, report
  assert report["variants_differ"] > 1e-3, report
  assert sorted(report["weight_changes"]) == ["b:0", "w:0"], report
  assert min(report["weight_changes"].values()) > 1e-5, report
  assert np.allclose(
      report["model_losses"], report["expected_losses"], rtol=1e-5
  ), report


def _check_sparse(report):
  """Sparse inputs and outputs convert."""
  assert report["diff"] <= 1e-6
  assert report["dict_diff"] <= 1e-6
  assert report["train_diff"] <= 1e-6
  assert report["gradient_norm"] > 0
  assert report["ids_equal"] == [True, True, True]
  # A dense value where the module takes a SparseTensor: TF's loaded
  # function names the SparseTensorSpec it expects.
  assert "SparseTensorSpec" in report["dense_error"], report
  # RaggedTensor inputs and outputs too.
  assert report["ragged_sums"] == [[3.0, 0.0, 3.0]] * 2, report
  assert report["ragged_doubled"] == [[[2.0, 4.0], [], [6.0]]] * 2, report


def test_modules_that_cannot_convert_get_one_clear_error_each():
  report = _run("errors")["errors"]
  for name, result in report.items():
    assert result["type"] is not None, name
    assert name == "export_path_exists" or not result["written"], name
  conversion_errors = {
      # what the message says about the module
      "ref_variables": [
          "node 'w'",
          "is a reference variable (VariableV2)",
          "enable_resource_variables",
      ],
      "activity_loss": [
          (
              "regularization losses activity:0 (input 'default' of signature"
              " 'default')"
          ),
          "depend on signature inputs",
          "silently train without them",
      ],
      "key_value_table": [
          "is not initialized from a vocabulary file",
      ],
      "mutable_table": ["is a MutableHashTableV2"],
      "defun_gradient": [
          "graph function 'ident' of its graph variant default (no tags)",
          "has a gradient function 'triple_grad'",
          "would silently use other gradients",
      ],
      "gradient_override": [
          (
              "node 'Identity' of its graph variant default (no tags) has the"
              " gradient 'BuilderOnlyGradient'"
          ),
          "registered only in the Python process that built the module",
      ],
      "function_with_state": [
          "graph function '__inference_shift_",
          "creates state itself (node 'VarHandleOp' is a VarHandleOp)",
          "outside tf.function / Defun bodies",
      ],
      "unfed_placeholder": [
          "signature 'default'",
          "needs placeholders ['scale'] that are not among its inputs",
      ],
      "other_signature_only": ["has no 'default' signature", "['other']"],
      "component_names_taken": [
          (
              "the inputs ['x', 'x_1'] of signature 'default' need the argument"
              " names ['x_1'] twice"
          ),
          "Rename the inputs",
      ],
      "v1_while_loop": [
          (
              "signature 'default' in its graph variant default (no tags)"
              " runs a v1 tf.while_loop (node 'while/Enter', op Enter)"
          ),
          "could not be fine-tuned",
          "control flow v2",
      ],
      "v1_cond_reads_variable": [
          "runs a v1 tf.cond that reads a variable in a branch (node",
          "op Switch)",
          "control flow v2",
      ],
      "train_takes_other_inputs": [
          "needs the default signature in the {'train'} graph variant",
          "'rate'",
      ],
  }
  for name, fragments in conversion_errors.items():
    result = report[name]
    assert result["type"] == "ConversionError", (name, result)
    assert "Cannot convert module" in result["error"], (name, result)
    for fragment in fragments:
      assert fragment in result["error"], (name, fragment, result["error"])
  assert report["missing_module"]["type"] in (
      "ModuleFormatError",
      "FileNotFoundError",
      "NotFoundError",
  ), report["missing_module"]
  assert "nope" in report["missing_module"]["error"]
  assert report["export_path_exists"]["type"] == "FileExistsError"
  assert "already exists" in report["export_path_exists"]["error"]


def _check_cli(report):
  """Command line tool converts and reports errors."""
  assert report["ok"][0] == 0, report
  assert "Wrote TF2 Reusable SavedModel" in report["ok"][1]
  assert report["loaded_variables"] == 12
  # An error is one line (no traceback) and exit status 1.
  assert report["missing"][0] == 1
  assert report["missing"][1].startswith("convert_to_tf2: Module directory")
  assert "does not exist" in report["missing"][1]
  assert not report["missing"][2], report


def test_exporter_publishes_tf2_saved_model_with_the_module():
  report = _run("exporter")["exporter"]
  assert len(report["versions"]) == 1
  assert "body" in report["version_files"]
  assert "tf2" in report["version_files"]
  assert report["tf2_files"] == ["body"]
  assert report["diff"] <= 1e-6
  assert report["policy"]["tf2_saved_model"] is True
  # The converter names the functions' inputs validly: no INFO line per
  # export about inputs tf.saved_model.save renames.
  assert report["saw_info"], report
  assert report["renamed_inputs"] == [], report
  # A module that cannot convert fails the whole version: nothing published.
  assert "reference variable" in report["failing_error"], report
  assert report["failing_left"] == []


def test_mlp_module_outputs_keras_fine_tuning_and_command_line():
  reports = _run("outputs", "keras", "cli")
  _check_outputs(reports["outputs"])
  _check_keras(reports["keras"])
  _check_cli(reports["cli"])


def test_tables_sparse_inputs_and_partitioned_variables():
  reports = _run("vocabulary", "sparse", "partitioned")
  _check_vocabulary(reports["vocabulary"])
  _check_sparse(reports["sparse"])
  _check_partitioned(reports["partitioned"])


def test_checkpoint_copied_from_the_module_equals_tf_saved_model_save():
  report = _run("checkpoint_copy")["checkpoint_copy"]
  # Copied for the plain module; not with a tensor no variable reads.
  assert report["planned"] == [True, True, False], report
  assert report["copied_same"], report
  assert report["restored_same"], report
  assert report["extra_same"], report
  assert report["diffs"] == [0.0, 0.0, 0.0], report
  assert report["variable_names_same"], report


def test_graph_functions_convert_in_the_building_process_without_clashes():
  _check_functions(_run("functions")["functions"])


def test_any_subset_of_optional_inputs_runs_up_to_four_of_them():
  report = _run("optional")["optional"]
  for key, diff in report.items():
    count, given = key.split(":")
    given = given.split(",") if given else []
    if count == "2" or len(given) in (0, 1, 5):
      assert isinstance(diff, float) and diff <= 1e-6, (key, diff)
    else:
      # More than four optional inputs: all, none or one alone only; TF's
      # own error names the accepted structures.
      assert "Could not find matching concrete function" in diff, (key, diff)
  assert len(report) == 4 + 32


def test_default_variant_update_ops_run_in_training_without_train_variant():
  report = _run("default_updates")["default_updates"]
  assert report["inference_diff"] <= 1e-6, report
  assert report["train_diff"] <= 1e-6, report
  assert report["inference_keeps_mean"] == 0.0, report
  assert report["mean_moved"] > 1e-3, report
  assert report["mean_diff"] <= 1e-6, report


def test_train_variant_regularization_losses_and_input_defaults():
  reports = _run("train_losses", "train_defaults")
  report = reports["train_defaults"]
  assert report["variants_differ"] > 0.1, report
  assert report["diff_False"] <= 1e-6, report
  # training=True fills in the {"train"} variant's default (2.0, not 1.0).
  assert report["diff_True"] <= 1e-6, report
  assert "Could not find matching concrete function" in (
      report["without_shift"] or ""
  ), report
  report = reports["train_losses"]
  # The variants differ (an l2 of other scale, an l1 only in training) ...
  assert len(report["tf1"]["train"]) == 2, report
  assert len(report["tf1"]["default"]) == 1, report
  # ... and Keras trains with those of the {"train"} variant.
  assert np.allclose(report["tf2"], report["tf1"]["train"], atol=1e-7), report
  assert np.allclose(report["keras"], report["tf1"]["train"], atol=1e-7)
  # Trainable as in the {"train"} variant (what TF1 fine-tuning trains).
  assert "frozen" not in report["tf1"]["train_trainable"], report
  assert "tuned" in report["tf1"]["train_trainable"], report
  assert report["trainable"] == report["tf1"]["train_trainable"], report
  assert report["keras_trainable"] == report["trainable"], report


if __name__ == "__main__":
  _results = {}
  for _name in sys.argv[1].split(","):
    _root = os.path.join(sys.argv[2], _name)
    os.mkdir(_root)
    _results[_name] = globals()["scenario_" + _name](_root)
  print(_REPORT + json.dumps(_results))
