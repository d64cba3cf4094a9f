"""Feature columns over TF1 Hub modules: text, sparse text and image embeddings.

Every column is exercised through the v1 API (`tf.compat.v1.feature_column.input_layer`)
and the v2 API (`tf.keras.layers.DenseFeatures`), a canned estimator trains on a
text column, and the embeddings are cross-checked against tensorflow_hub 0.15's
columns on the same module directories. Graph-mode parts run under
`with tf.Graph().as_default():`; eager stays on for the rest of the process.
"""

import atexit
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_hub as tfhub

import hub_estimator as hub
from hub_estimator.consume import feature_columns as fc

_VOCAB = ["the", "cat", "dog", "sat", "ran"]
_OOV_BUCKETS = 2
_DIM = 4
_IMAGE_SHAPE = (6, 5, 3)
_IMAGE_DIM = 2
_TEXTS = np.array([b"the cat sat", b"dog ran", b"unknown words", b"", b"cat"])
_TEXT_EMBEDDINGS = "embeddings"

_module_dirs = {}


def _write_vocab(folder):
  path = os.path.join(folder, "vocab.txt")
  with open(path, "w") as f:
    f.write("".join(word + "\n" for word in _VOCAB))
  return path


def _text_module_fn(vocab_path):
  """Whitespace tokens -> vocabulary ids (hashed OOV buckets) -> sqrtn of embeddings."""

  def module_fn():
    texts = tf.compat.v1.placeholder(tf.string, [None], name="texts")
    tokens = tf.compat.v1.string_split(texts)
    table = tf.compat.v1.lookup.StaticVocabularyTable(
        tf.lookup.TextFileInitializer(
            vocab_path,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        num_oov_buckets=_OOV_BUCKETS,
    )
    ids = tf.SparseTensor(
        tokens.indices, table.lookup(tokens.values), tokens.dense_shape
    )
    embeddings = tf.compat.v1.get_variable(
        _TEXT_EMBEDDINGS,
        [len(_VOCAB) + _OOV_BUCKETS, _DIM],
        initializer=tf.compat.v1.random_normal_initializer(seed=1),
    )
    combined = tf.nn.safe_embedding_lookup_sparse(
        embeddings, ids, None, combiner="sqrtn"
    )
    hub.add_signature(inputs=texts, outputs=combined)

  return module_fn


def _image_module_fn(height, width, info_size=None):
  """Mean colour -> dense layer; optionally attaches an ImageModuleInfo."""

  def module_fn():
    images = tf.compat.v1.placeholder(
        tf.float32, [None, height, width, 3], name="images"
    )
    kernel = tf.compat.v1.get_variable(
        "kernel",
        [3, _IMAGE_DIM],
        initializer=tf.compat.v1.random_normal_initializer(seed=2),
    )
    hub.add_signature(
        inputs={"images": images},
        outputs=tf.matmul(tf.reduce_mean(images, axis=[1, 2]), kernel),
    )
    if info_size:
      info = hub.ImageModuleInfo()
      info.default_image_size.height, info.default_image_size.width = info_size
      hub.attach_message("image_module_info", info)

  return module_fn


def _export(spec, path):
  with tf.Graph().as_default():
    module = hub.Module(spec)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      module.export(path, session)
  return path


def _module_dir(name):
  """Module directories, exported once per test process."""
  if name not in _module_dirs:
    folder = tempfile.mkdtemp(prefix="feature_columns_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    if name == "text":
      module_fn = _text_module_fn(_write_vocab(folder))
    elif name == "image":
      module_fn = _image_module_fn(*_IMAGE_SHAPE[:2])
    else:  # "image_info": unknown spatial size, given by the attached message.
      module_fn = _image_module_fn(None, None, info_size=_IMAGE_SHAPE[:2])
    _module_dirs[name] = _export(
        hub.create_module_spec(module_fn), os.path.join(folder, name)
    )
  return _module_dirs[name]


def _initialize_and_run(fetches, feed_dict=None):
  with tf.compat.v1.Session() as session:
    session.run([
        tf.compat.v1.global_variables_initializer(),
        tf.compat.v1.tables_initializer(),
    ])
    return session.run(fetches, feed_dict=feed_dict)


def _direct_text_embeddings(texts):
  """What the text module itself returns for `texts`."""
  with tf.Graph().as_default():
    module = hub.Module(_module_dir("text"))
    return _initialize_and_run(module(tf.constant(texts)))


def _images(batch=3):
  rng = np.random.RandomState(0)
  return rng.uniform(size=(batch,) + _IMAGE_SHAPE).astype(np.float32)


def _global_variables(suffix):
  return [
      v for v in tf.compat.v1.global_variables() if v.op.name.endswith(suffix)
  ]


def _trainable_variables(suffix):
  return [
      v
      for v in tf.compat.v1.trainable_variables()
      if v.op.name.endswith(suffix)
  ]


class TextEmbeddingColumnTest(tf.test.TestCase):

  def test_column_properties_and_parse_specs(self):
    column = fc.text_embedding_column("text", _module_dir("text"))
    self.assertEqual(column.name, "text_hub_module_embedding")
    self.assertEqual(column.parents, ["text"])
    self.assertEqual(column.variable_shape, tf.TensorShape([_DIM]))
    self.assertEqual(column.dtype, tf.float32)
    self.assertFalse(column.trainable)
    expected = {"text": tf.io.FixedLenFeature([1], tf.string)}
    self.assertEqual(
        tf.compat.v1.feature_column.make_parse_example_spec([column]), expected
    )
    self.assertEqual(
        tf.compat.v2.feature_column.make_parse_example_spec([column]), expected
    )

  def test_input_layer_matches_module(self):
    column = fc.text_embedding_column("text", _module_dir("text"))
    with tf.Graph().as_default():
      # One text per example, as parsed with FixedLenFeature([1], tf.string).
      features = {"text": tf.constant(_TEXTS.reshape([-1, 1]))}
      output = tf.compat.v1.feature_column.input_layer(features, [column])
      self.assertEqual(output.shape.as_list(), [len(_TEXTS), _DIM])
      value = _initialize_and_run(output)
    self.assertAllClose(value, _direct_text_embeddings(_TEXTS))
    self.assertAllClose(value[3], np.zeros(_DIM))  # The empty text.

  def test_dense_features_shares_one_module_across_calls(self):
    column = fc.text_embedding_column("text", _module_dir("text"))
    with tf.Graph().as_default():
      layer = tf.keras.layers.DenseFeatures([column])
      texts = tf.compat.v1.placeholder(tf.string, [None])
      first = layer({"text": texts})
      second = layer({"text": tf.constant(_TEXTS[:2])})
      self.assertLen(_global_variables(_TEXT_EMBEDDINGS), 1)
      self.assertEqual(first.shape.as_list(), [None, _DIM])
      got_first, got_second = _initialize_and_run(
          [first, second], {texts: _TEXTS}
      )
    direct = _direct_text_embeddings(_TEXTS)
    self.assertAllClose(got_first, direct)
    self.assertAllClose(got_second, direct[:2])

  def test_input_layer_calls_in_one_graph_share_one_module(self):
    column = fc.text_embedding_column(
        "text", _module_dir("text"), trainable=True
    )
    with tf.Graph().as_default():
      features = {"text": tf.constant(_TEXTS)}
      first = tf.compat.v1.feature_column.input_layer(features, [column])
      with tf.name_scope("elsewhere"):
        second = tf.compat.v1.feature_column.input_layer(features, [column])
      self.assertLen(_global_variables(_TEXT_EMBEDDINGS), 1)
      a, b = _initialize_and_run([first, second])
    self.assertAllClose(a, b)

  def test_trainable_needs_column_and_caller(self):
    path = _module_dir("text")
    for column_trainable, caller_trainable, expected in [
        (True, True, 1),
        (True, False, 0),
        (False, True, 0),
    ]:
      column = fc.text_embedding_column(
          "text", path, trainable=column_trainable
      )
      with tf.Graph().as_default():
        tf.compat.v1.feature_column.input_layer(
            {"text": tf.constant(_TEXTS)}, [column], trainable=caller_trainable
        )
        self.assertLen(_trainable_variables(_TEXT_EMBEDDINGS), expected)
      with tf.Graph().as_default():
        layer = tf.keras.layers.DenseFeatures(
            [column], trainable=caller_trainable
        )
        layer({"text": tf.constant(_TEXTS)})
        self.assertLen(_trainable_variables(_TEXT_EMBEDDINGS), expected)
        # What tf.estimator's v2 canned estimators optimize.
        self.assertLen(
            [
                v
                for v in layer.trainable_weights
                if v.op.name.endswith(_TEXT_EMBEDDINGS)
            ],
            expected,
        )

  def test_module_spec_object_and_config_round_trip(self):
    path = _module_dir("text")
    column = fc.text_embedding_column("text", path, trainable=True)
    config = column.get_config()
    self.assertEqual(
        config,
        {
            "key": "text",
            "module_spec_path": path,
            "trainable": True,
            "allowed_ops": None,
        },
    )
    self.assertEqual(type(column).from_config(config), column)
    by_spec = fc.text_embedding_column("text", hub.load_module_spec(path))
    with self.assertRaisesRegex(NotImplementedError, "module directory path"):
      by_spec.get_config()
    with tf.Graph().as_default():
      output = tf.compat.v1.feature_column.input_layer(
          {"text": tf.constant(_TEXTS)}, [by_spec]
      )
      value = _initialize_and_run(output)
    self.assertAllClose(value, _direct_text_embeddings(_TEXTS))

  def test_sparse_feature_is_rejected_with_a_hint(self):
    column = fc.text_embedding_column("text", _module_dir("text"))
    with tf.Graph().as_default():
      tokens = tf.SparseTensor([[0, 0]], ["cat"], [1, 1])
      with self.assertRaisesRegex(ValueError, "sparse_text_embedding_column"):
        tf.compat.v1.feature_column.input_layer({"text": tokens}, [column])


class SparseTextEmbeddingColumnTest(tf.test.TestCase):

  def _tokens(self):
    # Row 1 has no tokens; the last row is empty too, which must not drop it.
    return tf.SparseTensor(
        indices=[[0, 0], [0, 1], [0, 2], [2, 0], [2, 1]],
        values=["the", "cat", "sat", "dog", "zebra"],
        dense_shape=[4, 3],
    )

  def test_combiners_in_input_layer_and_dense_features(self):
    path = _module_dir("text")
    token_vectors = dict(
        zip(
            ["the", "cat", "sat", "dog", "zebra", "ran"],
            _direct_text_embeddings(
                np.array([b"the", b"cat", b"sat", b"dog", b"zebra", b"ran"])
            ),
        )
    )
    rows = [["the", "cat", "sat"], [], ["dog", "zebra"], []]
    reducers = {
        "sum": lambda v: np.sum(v, 0),
        "mean": lambda v: np.mean(v, 0),
        "sqrtn": lambda v: np.sum(v, 0) / np.sqrt(len(v)),
    }
    for combiner, reduce_fn in reducers.items():
      column = fc.sparse_text_embedding_column("tokens", path, combiner, None)
      self.assertEqual(
          column.parse_example_spec, {"tokens": tf.io.VarLenFeature(tf.string)}
      )
      with tf.Graph().as_default():
        features = {"tokens": self._tokens()}
        v1 = tf.compat.v1.feature_column.input_layer(features, [column])
        v2 = tf.keras.layers.DenseFeatures([column])(features)
        got_v1, got_v2 = _initialize_and_run([v1, v2])
      expected = np.array([
          reduce_fn([token_vectors[t] for t in row]) if row else np.zeros(_DIM)
          for row in rows
      ])
      self.assertAllClose(got_v1, expected, msg=combiner)
      self.assertAllClose(got_v2, expected, msg=combiner)

  def test_default_value_fills_empty_rows_and_state_is_shared(self):
    column = fc.sparse_text_embedding_column(
        "tokens",
        _module_dir("text"),
        "mean",
        default_value="ran",
        trainable=True,
    )
    with tf.Graph().as_default():
      layer = tf.keras.layers.DenseFeatures([column])
      first = layer({"tokens": self._tokens()})
      second = layer({"tokens": self._tokens()})
      self.assertLen(_global_variables(_TEXT_EMBEDDINGS), 1)
      self.assertLen(_trainable_variables(_TEXT_EMBEDDINGS), 1)
      got_first, got_second = _initialize_and_run([first, second])
    ran = _direct_text_embeddings(np.array([b"ran"]))[0]
    self.assertAllClose(got_first[1], ran)
    self.assertAllClose(got_first[3], ran)
    self.assertAllClose(got_first, got_second)

  def test_bad_combiner_and_dense_input(self):
    path = _module_dir("text")
    with self.assertRaisesRegex(ValueError, "combiner must be one of"):
      fc.sparse_text_embedding_column("tokens", path, "max", None)
    column = fc.sparse_text_embedding_column("tokens", path, "sum", None)
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          ValueError, "expects a SparseTensor.*'tokens'"
      ):
        tf.compat.v1.feature_column.input_layer(
            {"tokens": tf.constant(_TEXTS)}, [column]
        )


class ImageEmbeddingColumnTest(tf.test.TestCase):

  def test_input_layer_and_dense_features(self):
    path = _module_dir("image")
    column = fc.image_embedding_column("image", path)
    self.assertEqual(column.variable_shape, tf.TensorShape([_IMAGE_DIM]))
    self.assertEqual(
        column.parse_example_spec,
        {"image": tf.io.FixedLenFeature(list(_IMAGE_SHAPE), tf.float32)},
    )
    images = _images()
    with tf.Graph().as_default():
      features = {"image": tf.constant(images)}
      v1 = tf.compat.v1.feature_column.input_layer(features, [column])
      layer = tf.keras.layers.DenseFeatures([column])
      v2, v2_again = layer(features), layer(features)
      self.assertLen(
          _global_variables("kernel"), 2
      )  # input_layer's + the layer's.
      self.assertEmpty(tf.compat.v1.trainable_variables())
      got = _initialize_and_run([v1, v2, v2_again])
    with tf.Graph().as_default():
      expected = _initialize_and_run(hub.Module(path)({"images": images}))
    for value in got:
      self.assertAllClose(value, expected)

  def test_image_size_from_attached_info_or_argument(self):
    path = _module_dir("image_info")
    column = fc.image_embedding_column("image", path)
    self.assertEqual(
        column.parse_example_spec["image"].shape, list(_IMAGE_SHAPE)
    )
    sized = fc.image_embedding_column("image", path, image_size=[9, 7])
    self.assertEqual(sized.image_size, (9, 7))
    self.assertEqual(sized.parse_example_spec["image"].shape, [9, 7, 3])
    with tf.Graph().as_default():
      output = tf.compat.v1.feature_column.input_layer(
          {"image": tf.constant(np.ones([2, 9, 7, 3], np.float32))}, [sized]
      )
      self.assertEqual(_initialize_and_run(output).shape, (2, _IMAGE_DIM))

  def test_get_expected_image_size(self):
    image_path, info_path = _module_dir("image"), _module_dir("image_info")
    for module_or_spec in [
        image_path,
        hub.load_module_spec(image_path),
        hub.load_module_spec(info_path),
    ]:
      self.assertEqual(fc.get_expected_image_size(module_or_spec), [6, 5])
    with tf.Graph().as_default():
      self.assertEqual(
          fc.get_expected_image_size(hub.Module(info_path)), [6, 5]
      )

    # A zero size in the attached info falls back to the (here unknown) shape.
    spec = hub.create_module_spec(
        _image_module_fn(None, None, info_size=(0, 4))
    )
    with self.assertRaisesRegex(
        ValueError, r"\[None, None, None, 3\].*known height"
    ):
      fc.get_expected_image_size(spec)
    with self.assertRaisesRegex(ValueError, "missing input 'pixels'"):
      fc.get_expected_image_size(spec, input_name="pixels")
    with self.assertRaisesRegex(ValueError, "get_expected_image_size"):
      fc.image_embedding_column("image", spec)
    self.assertEqual(
        fc.image_embedding_column("image", spec, (4, 4)).image_size, (4, 4)
    )

  def test_bad_image_size(self):
    for image_size in [(0, 4), (4,), (4.0, 4), "44"]:
      with self.assertRaisesRegex(ValueError, "image_size must be"):
        fc.image_embedding_column("image", _module_dir("image"), image_size)
    with self.assertRaisesRegex(
        ValueError,
        r"image_size \[9, 5\] does not fit input "
        r"'images' of shape \[None, 6, 5, 3\]",
    ):
      fc.image_embedding_column("image", _module_dir("image"), (9, 5))
    self.assertEqual(
        fc.image_embedding_column("image", _module_dir("image"), (6, 5))
        .parse_example_spec["image"]
        .shape,
        list(_IMAGE_SHAPE),
    )

  def test_key_may_be_a_numeric_column(self):
    images = tf.feature_column.numeric_column("pixels", shape=_IMAGE_SHAPE)
    column = fc.image_embedding_column(images, _module_dir("image"))
    self.assertEqual(column.name, "pixels_hub_module_embedding")
    self.assertEqual(column.parents, [images])
    self.assertEqual(column.parse_example_spec, images.parse_example_spec)
    with tf.Graph().as_default():
      features = {"pixels": tf.constant(_images(2))}
      v1 = tf.compat.v1.feature_column.input_layer(features, [column])
      v2 = tf.keras.layers.DenseFeatures([column])(features)
      got_v1, got_v2 = _initialize_and_run([v1, v2])
    self.assertEqual(got_v1.shape, (2, _IMAGE_DIM))
    self.assertAllClose(got_v1, got_v2)


def _bad_text_module_fn():
  ids = tf.compat.v1.placeholder(tf.int64, [None, 2], name="ids")
  extra = tf.compat.v1.placeholder(tf.string, [None], name="extra")
  hub.add_signature(
      inputs={"ids": ids, "extra": extra},
      outputs={"embedding": tf.cast(ids, tf.float32)},
  )


def _bad_output_module_fn():
  texts = tf.compat.v1.placeholder(tf.string, [3], name="texts")
  hub.add_signature(
      inputs=texts, outputs=tf.zeros([tf.shape(texts)[0], 2, 2], tf.float64)
  )


class ModuleValidationTest(tf.test.TestCase):

  def test_text_module_problems_are_listed_in_one_error(self):
    spec = hub.create_module_spec(_bad_text_module_fn)
    for make in [
        lambda: fc.text_embedding_column("text", spec),
        lambda: fc.sparse_text_embedding_column("text", spec, "sum", None),
    ]:
      with self.assertRaises(ValueError) as raised:
        make()
      message = str(raised.exception)
      self.assertIn(
          "Module is not a text-embedding: module_fn _bad_text_module_fn",
          message,
      )
      self.assertIn(
          "must require only one input, but it has 2: ['extra', 'ids']", message
      )
      self.assertIn("output named 'default' (it has ['embedding'])", message)

    spec = hub.create_module_spec(_bad_output_module_fn)
    with self.assertRaises(ValueError) as raised:
      fc.text_embedding_column("text", spec)
    message = str(raised.exception)
    self.assertIn(
        "input 'default' must be Tensor(string, [None]), but it is "
        "Tensor(string, [3])",
        message,
    )
    self.assertIn(
        "output 'default' must be Tensor(float32, [None, K]) with a known "
        "K > 0, but it is Tensor(float64, [3, 2, 2])",
        message,
    )

  def test_image_module_problems_are_listed_in_one_error(self):
    with self.assertRaises(ValueError) as raised:
      fc.image_embedding_column("image", _module_dir("text"))
    message = str(raised.exception)
    self.assertIn(
        "Module is not usable as an image embedding: " + _module_dir("text"),
        message,
    )
    self.assertIn(
        "single input named 'images', but it has ['default']", message
    )
    # The text module's output is a fine embedding: no complaint about it.
    self.assertNotIn("output 'default'", message)

    def pixels_fn():
      images = tf.compat.v1.placeholder(tf.uint8, [None, 4, 4], name="images")
      hub.add_signature(inputs={"images": images}, outputs={"logits": images})

    with self.assertRaises(ValueError) as raised:
      fc.image_embedding_column(
          "image", hub.create_module_spec(pixels_fn), (4, 4)
      )
    message = str(raised.exception)
    self.assertIn(
        "input 'images' must be Tensor(float32, [batch, height, width, "
        "channels]), but it is Tensor(uint8, [None, 4, 4])",
        message,
    )
    self.assertIn("output named 'default' (it has ['logits'])", message)

  def test_missing_default_signature_or_variant(self):
    def named_only_fn(training=False):
      del training
      texts = tf.compat.v1.placeholder(tf.string, [None])
      hub.add_signature(
          "embed", inputs=texts, outputs=tf.zeros([tf.shape(texts)[0], 2])
      )

    spec = hub.create_module_spec(named_only_fn)
    with self.assertRaisesRegex(
        ValueError, "no usable 'default' signature.*embed"
    ):
      fc.text_embedding_column("text", spec)
    spec = hub.create_module_spec(
        named_only_fn, [({"train"}, {"training": True})]
    )
    with self.assertRaisesRegex(
        ValueError, "no usable 'default' signature.*train"
    ):
      fc.text_embedding_column("text", spec)

  def test_v1_tensor_shape_behaviour(self):
    # TF1 programs often run with Dimension objects in shapes (disable_v2_behavior).
    tf.compat.v1.disable_v2_tensorshape()
    try:
      self.assertEqual(fc.get_expected_image_size(_module_dir("image")), [6, 5])
      with self.assertRaisesRegex(
          ValueError, r"Tensor\(float64, \[3, 2, 2\]\)"
      ):
        fc.text_embedding_column(
            "text", hub.create_module_spec(_bad_output_module_fn)
        )
      column = fc.text_embedding_column("text", _module_dir("text"))
      with tf.Graph().as_default():
        output = tf.compat.v1.feature_column.input_layer(
            {"text": tf.constant(_TEXTS.reshape([-1, 1]))}, [column]
        )
        value = _initialize_and_run(output)
    finally:
      tf.compat.v1.enable_v2_tensorshape()
    self.assertAllClose(value, _direct_text_embeddings(_TEXTS))

  def test_bad_module_spec_argument(self):
    with self.assertRaisesRegex(ValueError, "Unknown module spec type"):
      fc.text_embedding_column("text", 42)
    with self.assertRaises(tf.errors.NotFoundError):
      fc.text_embedding_column(
          "text", os.path.join(self.get_temp_dir(), "nowhere")
      )


def _text_input_fn():
  texts = np.array(
      [b"the cat sat", b"dog ran", b"cat", b"dog", b"the dog sat", b"ran"]
  )
  labels = np.array([1, 0, 1, 0, 0, 0], np.int64)
  return (
      tf.data.Dataset.from_tensor_slices(({"text": texts}, labels))
      .repeat()
      .batch(3)
  )


class EstimatorTest(tf.test.TestCase):

  def _train(self, estimator_class, trainable, **kwargs):
    path = _module_dir("text")
    column = fc.text_embedding_column("text", path, trainable=trainable)
    model_dir = os.path.join(
        self.get_temp_dir(), estimator_class.__name__ + str(trainable)
    )
    config = tf.estimator.RunConfig(
        model_dir=model_dir,
        save_summary_steps=None,
        save_checkpoints_steps=100,
        log_step_count_steps=None,
    )
    estimator = estimator_class(
        feature_columns=[column], config=config, **kwargs
    )
    estimator.train(_text_input_fn, steps=4)
    self.assertEqual(estimator.get_variable_value("global_step"), 4)
    trained = [
        name
        for name in estimator.get_variable_names()
        if name.endswith("/" + _TEXT_EMBEDDINGS)
    ]
    self.assertLen(trained, 1)
    original = tf.train.load_variable(
        os.path.join(path, "variables", "variables"), _TEXT_EMBEDDINGS
    )
    return original, estimator.get_variable_value(trained[0]), estimator

  def test_dnn_classifier_fine_tunes_a_trainable_module(self):
    original, trained, estimator = self._train(
        tf.estimator.DNNClassifier,
        trainable=True,
        hidden_units=[3],
        optimizer=lambda: tf.keras.optimizers.legacy.Adagrad(learning_rate=0.5),
    )
    self.assertNotAllClose(original, trained)
    # Out-of-vocabulary hash buckets never seen in training stay as loaded.
    self.assertAllClose(original[len(_VOCAB) :], trained[len(_VOCAB) :])
    predictions = next(estimator.predict(lambda: _text_input_fn().take(1)))
    self.assertEqual(predictions["probabilities"].shape, (2,))

  def test_linear_classifier_keeps_a_frozen_module(self):
    original, trained, _ = self._train(
        tf.compat.v1.estimator.LinearClassifier, trainable=False
    )
    self.assertAllClose(original, trained)


class TensorflowHubCrossCheckTest(tf.test.TestCase):
  """Our columns and tensorflow_hub 0.15's give the same embeddings on one module."""

  def _embed(self, make_column, features):
    with tf.Graph().as_default():
      tensors = {key: fn() for key, fn in features.items()}
      output = tf.compat.v1.feature_column.input_layer(tensors, [make_column()])
      return _initialize_and_run(output)

  def test_text_sparse_text_and_image_columns(self):
    text_path, image_path = _module_dir("text"), _module_dir("image")
    tokens = lambda: tf.SparseTensor(
        [[0, 0], [0, 1], [2, 0]], ["dog", "zebra", "cat"], [3, 2]
    )
    images = _images()
    cases = [
        (
            "text_embedding_column",
            ("text", text_path),
            {"text": lambda: tf.constant(_TEXTS)},
        ),
        (
            "sparse_text_embedding_column",
            ("tokens", text_path, "sqrtn", "the"),
            {"tokens": tokens},
        ),
        (
            "image_embedding_column",
            ("image", image_path),
            {"image": lambda: tf.constant(images)},
        ),
    ]
    for name, args, features in cases:
      ours = self._embed(lambda: getattr(fc, name)(*args), features)
      theirs = self._embed(lambda: getattr(tfhub, name)(*args), features)
      self.assertAllClose(ours, theirs, msg=name)
      ours_column = getattr(fc, name)(*args)
      theirs_column = getattr(tfhub, name)(*args)
      self.assertEqual(ours_column.name, theirs_column.name)
      self.assertEqual(
          ours_column.parse_example_spec, theirs_column.parse_example_spec
      )
      self.assertEqual(ours_column.variable_shape, theirs_column.variable_shape)

  def test_expected_image_size(self):
    for path in [_module_dir("image"), _module_dir("image_info")]:
      self.assertEqual(
          fc.get_expected_image_size(hub.load_module_spec(path)),
          tfhub.get_expected_image_size(tfhub.load_module_spec(path)),
      )


if __name__ == "__main__":
  tf.test.main()
