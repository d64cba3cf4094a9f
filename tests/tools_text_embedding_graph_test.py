"""text_embedding_graph: a text-embedding module's saved_model.pb without TensorFlow."""

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_hub as tfhub
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
from tensorflow.python.framework import versions

import hub_estimator as hub
from hub_estimator.format import op_policy
from hub_estimator.format import protos
from hub_estimator.format import saved_model_io
from hub_estimator.format import tf2_bridge
from hub_estimator.tools import text_embedding_graph as graph_lib

_VOCABULARY = ["the", "cat", "émile", "naïve", "dogs", "dog's", "日本", "Zoë"]
_OTHER_VOCABULARY = ["zebra", "the", "cat"]
_NUM_OOV_BUCKETS = 3
_DIM = 4
_SENTENCES = [
    "the cat",
    "The CAT sat",
    "",
    "  \t\n ",
    "!!! ...",
    "émile ÉMILE naïve",
    "dog's dogs, cat.",
    "日本 語",
    "Zoë zoë unknownword",
    "a b c d e f g h the",
]
_CONFIGS = [
    dict(combiner=c, lowercase=l, preprocess=p, partitions=n)
    for c, l, p, n in itertools.product(
        graph_lib.COMBINERS, (False, True), graph_lib.PREPROCESSORS, (1, 3)
    )
]


def _config_name(config):
  return "%(combiner)s_lower%(lowercase)d_%(preprocess)s_p%(partitions)d" % (
      config
  )


def _values(rows, seed):
  return np.random.RandomState(seed).normal(size=[rows, _DIM]).astype("f4")


def _write_module(
    path, vocabulary, values, shared_name, stored_rows=None, **config
):
  """Writes a module: tokens.txt, tfhub_module.pb, saved_model.pb, variables/.

  The checkpoint holds "embeddings" whole (stored_rows [rows]) or in row
  slices of stored_rows; None: in the partitions of the graph.
  """
  os.makedirs(os.path.join(path, "assets"))
  with open(os.path.join(path, "assets", "tokens.txt"), "w") as f:
    f.write("".join(token + "\n" for token in vocabulary))
  with open(os.path.join(path, "tfhub_module.pb"), "wb") as f:
    f.write(protos.ModuleDef(format=protos.FORMAT_V3).SerializeToString())
  rows, dim = values.shape
  with open(os.path.join(path, "saved_model.pb"), "wb") as f:
    f.write(
        graph_lib.saved_model_bytes(
            rows=rows,
            dim=dim,
            num_oov_buckets=rows - len(vocabulary),
            table_shared_name=shared_name,
            **config,
        )
    )
  parts = stored_rows or graph_lib.partition_rows(rows, config["partitions"])
  if len(parts) == 1:
    slices, tensors = [""], [values]
  else:
    starts = np.cumsum([0] + parts[:-1])
    slices = [
        "%d %d %d,%d:-" % (rows, dim, s, n) for s, n in zip(starts, parts)
    ]
    tensors = [values[s : s + n] for s, n in zip(starts, parts)]
  tf.raw_ops.SaveV2(
      prefix=saved_model_io.variables_prefix(path),
      tensor_names=[graph_lib.VARIABLE_NAME] * len(tensors),
      shape_and_slices=slices,
      tensors=tensors,
  )


def _reference(vocabulary_file, values, num_oov_buckets, sentences, config):
  """What tensorflow/hub's example exporter's graph computes (TF ops)."""
  text = tf.constant(sentences)
  if config["lowercase"]:
    text = tf.strings.lower(text, encoding="utf-8")
  if config["preprocess"] == "strip_punctuation":
    text = tf.strings.regex_replace(text, r"\pP", "")
  tokens = tf.compat.v1.string_split(text, sep=" \t\n\r")
  table = tf.compat.v1.lookup.StaticVocabularyTable(
      tf.compat.v1.lookup.TextFileInitializer(
          vocabulary_file,
          tf.string,
          tf.compat.v1.lookup.TextFileIndex.WHOLE_LINE,
          tf.int64,
          tf.compat.v1.lookup.TextFileIndex.LINE_NUMBER,
      ),
      num_oov_buckets,
  )
  ids = tf.SparseTensor(
      tokens.indices, table.lookup(tokens.values), tokens.dense_shape
  )
  embedded = tf.nn.safe_embedding_lookup_sparse(
      tf.constant(values), ids, None, combiner=config["combiner"]
  )
  return embedded, ids


def _initialize(session):
  session.run([
      tf.compat.v1.global_variables_initializer(),
      tf.compat.v1.tables_initializer(),
  ])


# Loads each module given on the command line with TF2's hub.load, all in this
# one (eager) process, and prints their outputs for sentences as JSON.
_HUB_LOAD_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_hub as hub
sentences = json.loads(sys.argv[1])
outputs = []
loaded = [hub.load(path) for path in sys.argv[2:]]
for module in loaded:
  result = module.signatures["default"](default=tf.constant(sentences))
  outputs.append(result["default"].numpy().tolist())
print(json.dumps(outputs))
"""


class TextEmbeddingGraphTest(tf.test.TestCase):
  """One set of modules (all configurations) shared by the tests."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp()
    cls.rows = len(_VOCABULARY) + _NUM_OOV_BUCKETS
    cls.modules = []
    for index, config in enumerate(_CONFIGS):
      vocabulary = _VOCABULARY
      if config["lowercase"]:
        vocabulary = [t.lower() for t in _VOCABULARY]
      path = os.path.join(cls.root, _config_name(config))
      values = _values(cls.rows, seed=index)
      _write_module(path, vocabulary, values, "table_%d" % index, **config)
      cls.modules.append((config, path, values))
    cls.expected = cls._reference_outputs(cls.modules, _SENTENCES)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  @staticmethod
  def _reference_outputs(modules, sentences):
    with tf.Graph().as_default():
      outputs = [
          _reference(
              os.path.join(path, "assets", "tokens.txt"),
              values,
              _NUM_OOV_BUCKETS,
              sentences,
              config,
          )[0]
          for config, path, values in modules
      ]
      with tf.compat.v1.Session() as session:
        _initialize(session)
        return session.run(outputs)

  def _assert_all_match(self, outputs):
    self.assertLen(outputs, len(self.modules))
    for (config, _, _), output, expected in zip(
        self.modules, outputs, self.expected
    ):
      with self.subTest(_config_name(config)):
        self.assertAllClose(output, expected, rtol=1e-6, atol=1e-6)

  def test_reference_outputs_cover_the_interesting_cases(self):
    # Guards the test data: empty and punctuation-only sentences give zeros,
    # OOV tokens land in hash buckets with nonzero rows.
    for output in self.expected:
      self.assertAllEqual(output[2:4], np.zeros([2, _DIM]))
      self.assertTrue(np.all(np.any(output[[0, 1, 5, 7, 8, 9]] != 0, axis=1)))
    strip = [
        out
        for (config, _, _), out in zip(self.modules, self.expected)
        if config["preprocess"] == "strip_punctuation"
    ]
    for output in strip:
      self.assertAllEqual(output[4], np.zeros([_DIM]))

  def test_hub_estimator_module_matches_the_reference(self):
    with tf.Graph().as_default():
      sentences = tf.constant(_SENTENCES)
      outputs = [hub.Module(path)(sentences) for _, path, _ in self.modules]
      with tf.compat.v1.Session() as session:
        _initialize(session)
        self._assert_all_match(session.run(outputs))

  def test_tensorflow_hub_module_matches_the_reference(self):
    with tf.Graph().as_default():
      sentences = tf.constant(_SENTENCES)
      outputs = [tfhub.Module(path)(sentences) for _, path, _ in self.modules]
      with tf.compat.v1.Session() as session:
        _initialize(session)
        self._assert_all_match(session.run(outputs))

  def test_tf2_hub_load_matches_the_reference(self):
    # A fresh eager process loads every module, and one more with another
    # vocabulary: TF2 keeps the tables' shared_names as they are, so each
    # module needs its own.
    other = os.path.join(self.root, "other_vocabulary_for_hub_load")
    other_values = _values(len(_OTHER_VOCABULARY) + 1, seed=99)
    if not os.path.exists(other):
      _write_module(
          other,
          _OTHER_VOCABULARY,
          other_values,
          "other_table",
          combiner="sum",
          lowercase=False,
          preprocess="whitespace",
          partitions=1,
      )
    paths = [path for _, path, _ in self.modules] + [other]
    result = subprocess.run(
        [sys.executable, "-c", _HUB_LOAD_SCRIPT, json.dumps(_SENTENCES)]
        + paths,
        capture_output=True,
        text=True,
        check=False,
    )
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    self._assert_all_match(outputs[:-1])
    self.assertAllClose(
        outputs[-1][0], other_values[1] + other_values[2], atol=1e-6
    )

  def test_text_embedding_column_matches_the_reference(self):
    for column_fn in (hub.text_embedding_column, tfhub.text_embedding_column):
      with self.subTest(column_fn.__module__), tf.Graph().as_default():
        features = {"text": tf.constant(_SENTENCES)}
        outputs = [
            tf.compat.v1.feature_column.input_layer(
                features, [column_fn("text", path)]
            )
            for _, path, _ in self.modules
        ]
        with tf.compat.v1.Session() as session:
          _initialize(session)
          self._assert_all_match(session.run(outputs))

  def test_tf2_conversion_matches_the_reference(self):
    # tools.convert_to_tf2 (tf2_bridge) turns the tables and partitions into
    # TF2 objects; its SavedModel computes the same outputs.
    for index in (0, len(self.modules) - 1):
      config, path, _ = self.modules[index]
      with self.subTest(_config_name(config)):
        converted = os.path.join(self.root, "tf2_%d" % index)
        tf2_bridge.export_tf2_saved_model(path, converted)
        loaded = tf.saved_model.load(converted)
        self.assertLen(loaded.trainable_variables, config["partitions"])
        self.assertAllClose(
            loaded(tf.constant(_SENTENCES)),
            self.expected[index],
            rtol=1e-6,
            atol=1e-6,
        )

  def test_train_variant_gradients_reach_only_the_looked_up_rows(self):
    for config, path, values in self.modules:
      if config["combiner"] != "sqrtn":
        continue
      with self.subTest(_config_name(config)), tf.Graph().as_default():
        module = hub.Module(path, trainable=True, tags={"train"})
        output = module(tf.constant(_SENTENCES))
        weights = tf.constant(_values(len(_SENTENCES), seed=7))
        loss = tf.reduce_sum(output * weights)
        parts = module.variable_map[graph_lib.VARIABLE_NAME]
        parts = parts if isinstance(parts, list) else [parts]
        self.assertLen(parts, config["partitions"])
        grads = tf.gradients(loss, parts)
        self.assertIsInstance(grads[0], tf.IndexedSlices)
        _, ids = _reference(
            os.path.join(path, "assets", "tokens.txt"),
            values,
            _NUM_OOV_BUCKETS,
            _SENTENCES,
            config,
        )
        with tf.compat.v1.Session() as session:
          _initialize(session)
          dense = session.run(
              tf.concat([tf.convert_to_tensor(g) for g in grads], axis=0)
          )
          looked_up = set(session.run(ids.values).tolist())
        self.assertEqual(dense.shape, values.shape)
        nonzero = set(np.flatnonzero(np.any(dense != 0, axis=1)).tolist())
        self.assertEqual(nonzero, looked_up)
        # The sentences have tokens out of the vocabulary (hash buckets).
        self.assertTrue(any(i >= len(_VOCABULARY) for i in looked_up))

  def test_trainable_text_embedding_column_is_fine_tuned(self):
    for config, path, values in self.modules:
      if config["combiner"] != "mean" or config["lowercase"]:
        continue
      if config["preprocess"] != "whitespace":
        continue
      with self.subTest(_config_name(config)), tf.Graph().as_default():
        column = hub.text_embedding_column("text", path, trainable=True)
        features = {"text": tf.constant(["the cat", "dogs"])}
        embedded = tf.compat.v1.feature_column.input_layer(features, [column])
        logits = tf.compat.v1.layers.dense(embedded, 1)
        loss = tf.reduce_mean(tf.square(logits - 1.0))
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.5).minimize(
            loss
        )
        trainable = [
            v
            for v in tf.compat.v1.trainable_variables()
            if graph_lib.VARIABLE_NAME in v.name
        ]
        self.assertLen(trainable, config["partitions"])
        full = tf.concat(trainable, axis=0)
        with tf.compat.v1.Session() as session:
          _initialize(session)
          before = session.run(full)
          session.run(train_op)
          after = session.run(full)
        self.assertAllClose(before, values)
        changed = np.flatnonzero(np.any(before != after, axis=1)).tolist()
        self.assertEqual(changed, [0, 1, 4])  # the, cat, dogs

  def test_modules_pass_the_op_policy_and_inspect_module(self):
    paths = [self.modules[0][1], self.modules[-1][1]]
    for path in paths:
      self.assertEqual(op_policy.vet_module(path).findings, [])
      hub.load_module_spec(path)
    result = subprocess.run(
        [sys.executable, "-m", "hub_estimator.tools.inspect_module"] + paths,
        capture_output=True,
        text=True,
        check=False,
    )
    self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

  def test_two_modules_in_one_session_keep_their_own_vocabularies(self):
    other = os.path.join(self.root, "other_vocabulary")
    other_values = _values(len(_OTHER_VOCABULARY) + 1, seed=42)
    _write_module(
        other,
        _OTHER_VOCABULARY,
        other_values,
        "other_table",
        combiner="sum",
        lowercase=False,
        preprocess="whitespace",
        partitions=1,
    )
    config, path, values = self.modules[0]
    self.assertEqual(config["combiner"], "mean")
    for module_cls in (hub.Module, tfhub.Module):
      with self.subTest(module_cls.__module__), tf.Graph().as_default():
        sentences = tf.constant(["cat", "zebra"])
        first = module_cls(path)(sentences)
        second = module_cls(other)(sentences)
        with tf.compat.v1.Session() as session:
          _initialize(session)
          first, second = session.run([first, second])
        self.assertAllClose(first[0], values[1])
        self.assertAllClose(second, other_values[[2, 0]])

  def test_graph_attrs_match_the_op_registry(self):
    saved_model = saved_model_pb2.SavedModel()
    for config in (_CONFIGS[0], _CONFIGS[-1]):
      saved_model.ParseFromString(
          graph_lib.saved_model_bytes(
              rows=10, dim=3, num_oov_buckets=2, table_shared_name="t", **config
          )
      )
      self.assertEqual(
          [list(m.meta_info_def.tags) for m in saved_model.meta_graphs],
          [["train"], []],
      )
      for meta_graph in saved_model.meta_graphs:
        (asset,) = meta_graph.collection_def[
            saved_model_io.SAVED_MODEL_ASSETS_KEY
        ].any_list.value
        asset_file_def = meta_graph_pb2.AssetFileDef()
        self.assertTrue(asset.Unpack(asset_file_def))
        self.assertEqual(asset_file_def.filename, "tokens.txt")
        self.assertFalse(meta_graph.HasField("saver_def"))
        self.assertTrue(meta_graph.meta_info_def.stripped_default_attrs)
        self.assertEqual(
            meta_graph.graph_def.versions.producer, versions.GRAPH_DEF_VERSION
        )
        for node in meta_graph.graph_def.node:
          op_def = op_def_registry.get(node.op)
          self.assertIsNotNone(op_def, node.op)
          names = {a.name for a in op_def.attr}
          self.assertLessEqual(set(node.attr), names, node.name)
          required = {
              a.name for a in op_def.attr if not a.HasField("default_value")
          }
          self.assertLessEqual(required, set(node.attr), node.name)
        # TensorFlow imports it (checking inputs, types and attrs).
        with tf.Graph().as_default():
          tf.compat.v1.import_graph_def(meta_graph.graph_def, name="")

  def test_producer_is_tensorflow_2_15s_graph_def_version(self):
    self.assertEqual(graph_lib.GRAPH_DEF_PRODUCER, versions.GRAPH_DEF_VERSION)

  def test_restores_from_slices_other_than_its_partitions(self):
    # A checkpoint writer may store the tensor in blocks of its own choosing:
    # whole into 3 partitions, 2 slices into 1 variable, and into 3
    # partitions ([4, 4, 3] rows) slices that cross their boundaries.
    rows = len(_VOCABULARY) + _NUM_OOV_BUCKETS
    values = _values(rows, seed=5)
    cases = [(3, [rows]), (1, [5, rows - 5]), (3, [2, 7, rows - 9])]
    sentences = ["the cat zoë", "Zoë 日本 émile", "naïve dogs unknownword"]
    config = dict(combiner="sum", lowercase=False, preprocess="whitespace")
    paths = []
    for index, (partitions, stored_rows) in enumerate(cases):
      paths.append(os.path.join(self.root, "stored_%d" % index))
      _write_module(
          paths[-1],
          _VOCABULARY,
          values,
          "stored_%d" % index,
          stored_rows=stored_rows,
          partitions=partitions,
          **config,
      )
    with tf.Graph().as_default():
      expected, _ = _reference(
          os.path.join(paths[0], "assets", "tokens.txt"),
          values,
          _NUM_OOV_BUCKETS,
          sentences,
          config,
      )
      outputs = [
          module_cls(path)(tf.constant(sentences))
          for path in paths
          for module_cls in (hub.Module, tfhub.Module)
      ]
      with tf.compat.v1.Session() as session:
        _initialize(session)
        expected, outputs = session.run([expected, outputs])
    for output in outputs:
      self.assertAllClose(output, expected, rtol=1e-6, atol=1e-6)

  def test_import_does_not_import_tensorflow(self):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys; import hub_estimator.tools.text_embedding_graph;"
                " print('tensorflow' in sys.modules)"
            ),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertEqual(result.stdout.strip(), "False")


class PartitionRowsTest(tf.test.TestCase):

  def test_matches_fixed_size_partitioner(self):
    for rows, partitions in [(5, 3), (10, 4), (7, 7), (9, 1), (1000, 7)]:
      with self.subTest(rows=rows, partitions=partitions):
        parts = graph_lib.partition_rows(rows, partitions)
        self.assertEqual(sum(parts), rows)
        with tf.Graph().as_default():
          variable = tf.compat.v1.get_variable(
              "v",
              [rows, 2],
              partitioner=tf.compat.v1.fixed_size_partitioner(partitions),
          )
          expected = [
              p.shape[0]
              for p in (list(variable) if partitions > 1 else [variable])
          ]
        self.assertEqual(parts, expected)

  def test_bad_arguments_are_named(self):
    with self.assertRaisesRegex(ValueError, r"rows must be >= 1; got 0"):
      graph_lib.partition_rows(0, 1)
    with self.assertRaisesRegex(
        ValueError, r"partitions must be between 1 and rows \(5\); got 6"
    ):
      graph_lib.partition_rows(5, 6)
    good = dict(
        rows=5,
        dim=2,
        num_oov_buckets=1,
        combiner="sqrtn",
        lowercase=False,
        preprocess="whitespace",
        partitions=1,
        table_shared_name="t",
    )
    cases = [
        (dict(num_oov_buckets=0), r"num_oov_buckets must be >= 1; got 0"),
        (dict(rows=3, num_oov_buckets=3), r"rows must exceed num_oov_buckets"),
        (dict(dim=0), r"dim must be >= 1; got 0"),
        (dict(combiner="max"), r"combiner must be one of .*; got 'max'"),
        (dict(preprocess="bpe"), r"preprocess must be one of .*; got 'bpe'"),
        (dict(table_shared_name=""), r"table_shared_name must not be empty"),
        (dict(partitions=9), r"partitions must be between 1 and rows \(5\)"),
    ]
    for change, message in cases:
      with self.subTest(message):
        with self.assertRaisesRegex(ValueError, message):
          graph_lib.saved_model_bytes(**{**good, **change})


if __name__ == "__main__":
  tf.test.main()
