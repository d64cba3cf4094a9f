"""Wire compatibility of hub_estimator's TF1 Hub format with tensorflow_hub 0.15, both ways.

* Ours -> theirs: a module exported by hub_estimator (a {"train"} and a default
  variant, a dense layer with an L2 regularizer, batch norm with update ops in the
  train variant, a vocabulary table asset, an attached ImageModuleInfo), exported
  both by `Module.export` and by `ModuleSpec.export(checkpoint_path=...)`, loads in
  tensorflow_hub's `hub.Module` and in TF2's `hub.load` with identical outputs.
* Theirs -> ours: the same module exported by tensorflow_hub loads in ours with
  identical outputs and getters, and our re-export loads in theirs again.
* Bytes: for one module_fn, our saved_model.pb and directory layout equal theirs.

Graph-mode parts run under `with tf.Graph().as_default():` (eager stays on for the
rest of the process); `hub.load` runs eagerly.
"""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_hub import module_attachment_pb2

import hub_estimator
import interop_fixtures as fixtures

_GraphKeys = tf.compat.v1.GraphKeys
_LISTING = ["assets", "saved_model.pb", "tfhub_module.pb", "variables"]
_VARIANTS = (None, {"train"})
_MOVING_MEAN = "batch_norm/moving_mean"


def _init_ops():
  return [
      tf.compat.v1.global_variables_initializer(),
      tf.compat.v1.tables_initializer(),
  ]


def _export(lib, spec, path, bias_delta=0.0):
  """Instantiates `spec` with `lib.Module`, initializes it and exports it to `path`.

  Returns the default-variant outputs computed in the exporting session.
  """
  with tf.Graph().as_default():
    module = lib.Module(spec)
    outputs = module({"text": fixtures.TEXTS}, as_dict=True)
    with tf.compat.v1.Session() as session:
      session.run(_init_ops())
      if bias_delta:
        session.run(
            module.variable_map["dense/bias"].assign_add(
                tf.fill([fixtures.UNITS], bias_delta)
            )
        )
      module.export(path, session)
      return session.run(outputs)


def _run(lib, path, tags=None, trainable=True):
  """Applies the module at `path` with `lib.Module`; returns what the consumer sees."""
  with tf.Graph().as_default():
    module = lib.Module(path, trainable=trainable, tags=tags)
    outputs = module({"text": fixtures.TEXTS}, as_dict=True)
    regularization_losses = tf.compat.v1.get_collection(
        _GraphKeys.REGULARIZATION_LOSSES
    )
    update_ops = tf.compat.v1.get_collection(_GraphKeys.UPDATE_OPS)
    trainable_names = sorted(
        v.op.name for v in tf.compat.v1.trainable_variables()
    )
    with tf.compat.v1.Session() as session:
      session.run(_init_ops())
      result = {
          "outputs": session.run(outputs),
          "regularization_losses": session.run(regularization_losses),
          "num_update_ops": len(update_ops),
          "trainable_variables": trainable_names,
          "variables": session.run(module.variable_map),
      }
      session.run(update_ops)
      result["moving_mean_after_update"] = session.run(
          module.variable_map[_MOVING_MEAN]
      )
  return result


def _hub_load_outputs(path, tags):
  """Outputs of the "default" signature of the module at `path` loaded by TF2's hub.load."""
  loaded = hub.load(path, tags=tags)
  outputs = loaded.signatures["default"](text=tf.constant(fixtures.TEXTS))
  return {key: value.numpy() for key, value in outputs.items()}


def _read_saved_model(path):
  with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
    return saved_model_pb2.SavedModel.FromString(f.read())


def _asset_file_defs(meta_graph):
  result = []
  for any_proto in meta_graph.collection_def[
      "saved_model_assets"
  ].any_list.value:
    asset_def = meta_graph_pb2.AssetFileDef()
    assert any_proto.Unpack(asset_def), any_proto.type_url
    result.append(
        (any_proto.type_url, asset_def.tensor_info.name, asset_def.filename)
    )
  return result


def _info_summary(info_dict):
  return {
      key: (info.dtype, info.get_shape().as_list(), info.is_sparse, repr(info))
      for key, info in info_dict.items()
  }


class _InteropTestCase(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp(dir=self.get_temp_dir())
    self.vocab_dir = os.path.join(self.root, "vocab_source")
    os.makedirs(self.vocab_dir)
    self.vocab_path = os.path.join(self.vocab_dir, "vocab.txt")
    fixtures.write_vocab(self.vocab_path)

  def module_fn(self, lib, message_class):
    return fixtures.make_text_module_fn(
        lib, self.vocab_path, fixtures.image_module_info(message_class)
    )

  def delete_vocab(self):
    shutil.rmtree(self.vocab_dir)
    self.assertFalse(tf.io.gfile.exists(self.vocab_path))

  def assert_outputs_equal(self, expected, actual):
    self.assertCountEqual(expected.keys(), actual.keys())
    for key in expected:
      np.testing.assert_allclose(
          actual[key],
          expected[key],
          rtol=1e-6,
          atol=1e-6,
          err_msg="output %r" % key,
      )

  def assert_runs_equal(self, expected, actual):
    """Compares two `_run` results: outputs, losses, update ops and their effect."""
    self.assert_outputs_equal(expected["outputs"], actual["outputs"])
    np.testing.assert_allclose(
        sorted(actual["regularization_losses"]),
        sorted(expected["regularization_losses"]),
        rtol=1e-6,
    )
    self.assertEqual(expected["num_update_ops"], actual["num_update_ops"])
    self.assertEqual(
        expected["trainable_variables"], actual["trainable_variables"]
    )
    self.assertCountEqual(
        expected["variables"].keys(), actual["variables"].keys()
    )
    for key in expected["variables"]:
      np.testing.assert_allclose(
          actual["variables"][key],
          expected["variables"][key],
          err_msg="variable %r" % key,
      )
    np.testing.assert_allclose(
        actual["moving_mean_after_update"],
        expected["moving_mean_after_update"],
        rtol=1e-6,
        atol=1e-7,
    )

  def assert_module_layout(self, path):
    self.assertEqual(sorted(tf.io.gfile.listdir(path)), _LISTING)
    with tf.io.gfile.GFile(os.path.join(path, "tfhub_module.pb"), "rb") as f:
      self.assertEqual(f.read(), b"\x08\x03")
    self.assertEqual(
        tf.io.gfile.listdir(os.path.join(path, "assets")), ["vocab.txt"]
    )
    with tf.io.gfile.GFile(os.path.join(path, "assets", "vocab.txt")) as f:
      self.assertEqual(f.read().split(), fixtures.VOCAB)
    self.assertEqual(
        sorted(tf.io.gfile.listdir(os.path.join(path, "variables"))),
        ["variables.data-00000-of-00001", "variables.index"],
    )
    saved_model = _read_saved_model(path)
    self.assertEqual(saved_model.saved_model_schema_version, 0)
    self.assertEqual(
        [list(m.meta_info_def.tags) for m in saved_model.meta_graphs],
        [["train"], []],
    )
    for meta_graph in saved_model.meta_graphs:
      self.assertFalse(meta_graph.HasField("saver_def"))
      self.assertEmpty(meta_graph.asset_file_def)
      self.assertEqual(list(meta_graph.signature_def), ["default"])
      self.assertEqual(meta_graph.signature_def["default"].method_name, "")
      self.assertEqual(
          _asset_file_defs(meta_graph),
          [(
              "type.googleapis.com/tensorflow.AssetFileDef",
              "asset_path:0",
              "vocab.txt",
          )],
      )
      asset_node = [
          n for n in meta_graph.graph_def.node if n.name == "asset_path"
      ][0]
      self.assertEqual(
          list(asset_node.attr["value"].tensor.string_val),
          [b"SAVEDMODEL-ASSET"],
      )


class OursLoadsInTheirsTest(_InteropTestCase):
  """Modules exported by hub_estimator, read by tensorflow_hub 0.15 and TF2's hub.load."""

  def setUp(self):
    super().setUp()
    spec = hub_estimator.create_module_spec(
        self.module_fn(hub_estimator, hub_estimator.ImageModuleInfo),
        tags_and_args=fixtures.tags_and_args(),
    )
    self.session_export = os.path.join(self.root, "session_export")
    self.checkpoint_export = os.path.join(self.root, "checkpoint_export")
    with tf.Graph().as_default():
      module = hub_estimator.Module(spec)
      outputs = module({"text": fixtures.TEXTS}, as_dict=True)
      saver = tf.compat.v1.train.Saver(module.variable_map)
      with tf.compat.v1.Session() as session:
        session.run(_init_ops())
        self.exported_outputs = session.run(outputs)
        module.export(self.session_export, session)
        checkpoint = saver.save(
            session,
            os.path.join(self.root, "ckpt", "model"),
            write_meta_graph=False,
        )
    spec.export(self.checkpoint_export, checkpoint_path=checkpoint)
    self.delete_vocab()
    self.paths = [self.session_export, self.checkpoint_export]

  def test_exported_directories_have_their_layout(self):
    for path in self.paths:
      with self.subTest(path=os.path.basename(path)):
        self.assert_module_layout(path)

  def test_their_hub_module_gives_our_outputs_in_both_variants(self):
    for path in self.paths:
      for tags in _VARIANTS:
        with self.subTest(path=os.path.basename(path), tags=tags):
          ours = _run(hub_estimator, path, tags)
          theirs = _run(hub, path, tags)
          self.assert_runs_equal(ours, theirs)
          self.assertLen(theirs["regularization_losses"], 1)
          self.assertGreater(theirs["regularization_losses"][0], 0.0)
          np.testing.assert_array_equal(
              theirs["outputs"]["ids"], [1, 0, 5, 4, 2, 1]
          )
          if tags:
            self.assertGreater(theirs["num_update_ops"], 0)
            self.assertNotAllClose(
                theirs["moving_mean_after_update"],
                theirs["variables"][_MOVING_MEAN],
            )
          else:
            self.assertEqual(theirs["num_update_ops"], 0)
            self.assert_outputs_equal(self.exported_outputs, theirs["outputs"])

  def test_their_hub_module_not_trainable_brings_no_losses_or_update_ops(self):
    ours = _run(hub_estimator, self.session_export, {"train"}, trainable=False)
    theirs = _run(hub, self.session_export, {"train"}, trainable=False)
    self.assert_runs_equal(ours, theirs)
    self.assertEmpty(theirs["regularization_losses"])
    self.assertEqual(theirs["num_update_ops"], 0)
    self.assertEmpty(theirs["trainable_variables"])

  def test_tf2_hub_load_gives_our_outputs_in_both_variants(self):
    self.assertTrue(tf.executing_eagerly(), "hub.load needs eager execution")
    for path in self.paths:
      for tags in _VARIANTS:
        with self.subTest(path=os.path.basename(path), tags=tags):
          ours = _run(hub_estimator, path, tags)["outputs"]
          theirs = _hub_load_outputs(path, sorted(tags or []))
          self.assert_outputs_equal(ours, theirs)

  def test_their_readers_see_our_attached_message(self):
    expected = fixtures.image_module_info(hub.ImageModuleInfo)
    for path in self.paths:
      spec = hub.load_module_spec(path)
      for tags in _VARIANTS:
        with self.subTest(path=os.path.basename(path), tags=tags):
          self.assertEqual(
              spec.get_attached_message(
                  "image_module_info",
                  hub.ImageModuleInfo,
                  tags=tags,
                  required=True,
              ),
              expected,
          )
          with tf.Graph().as_default():
            module = hub.Module(path, tags=tags)
            self.assertEqual(
                module.get_attached_message(
                    "image_module_info", hub.ImageModuleInfo
                ),
                expected,
            )
      for meta_graph in _read_saved_model(path).meta_graphs:
        values = meta_graph.collection_def[
            "hub_module_attachments"
        ].bytes_list.value
        attachments = [
            module_attachment_pb2.ModuleAttachment.FromString(v) for v in values
        ]
        self.assertEqual([a.key for a in attachments], ["image_module_info"])
        self.assertEqual(
            hub.ImageModuleInfo.FromString(attachments[0].value), expected
        )

  def test_their_spec_getters_agree_with_ours(self):
    for path in self.paths:
      ours = hub_estimator.load_module_spec(path)
      theirs = hub.load_module_spec(path)
      self.assertEqual(ours.get_tags(), theirs.get_tags())
      for tags in _VARIANTS:
        with self.subTest(path=os.path.basename(path), tags=tags):
          self.assertEqual(
              ours.get_signature_names(tags=tags),
              theirs.get_signature_names(tags=tags),
          )
          self.assertEqual(
              _info_summary(ours.get_input_info_dict(tags=tags)),
              _info_summary(theirs.get_input_info_dict(tags=tags)),
          )
          self.assertEqual(
              _info_summary(ours.get_output_info_dict(tags=tags)),
              _info_summary(theirs.get_output_info_dict(tags=tags)),
          )


class TheirsLoadsInOursTest(_InteropTestCase):
  """A module exported by tensorflow_hub 0.15, read and re-exported by hub_estimator."""

  def setUp(self):
    super().setUp()
    self.their_spec = hub.create_module_spec(
        self.module_fn(hub, hub.ImageModuleInfo),
        tags_and_args=fixtures.tags_and_args(),
    )
    self.path = os.path.join(self.root, "their_export")
    self.exported_outputs = _export(hub, self.their_spec, self.path)
    self.delete_vocab()

  def test_their_export_has_the_reference_layout(self):
    self.assert_module_layout(self.path)

  def test_our_module_gives_their_outputs_in_both_variants(self):
    for tags in _VARIANTS:
      with self.subTest(tags=tags):
        theirs = _run(hub, self.path, tags)
        ours = _run(hub_estimator, self.path, tags)
        self.assert_runs_equal(theirs, ours)
        self.assertLen(ours["regularization_losses"], 1)
        np.testing.assert_array_equal(
            ours["outputs"]["ids"], [1, 0, 5, 4, 2, 1]
        )
        if tags:
          self.assertGreater(ours["num_update_ops"], 0)
        else:
          self.assertEqual(ours["num_update_ops"], 0)
          self.assert_outputs_equal(self.exported_outputs, ours["outputs"])

  def test_our_getters_agree_with_theirs(self):
    ours = hub_estimator.load_module_spec(self.path)
    theirs = hub.load_module_spec(self.path)
    self.assertEqual(ours.get_tags(), theirs.get_tags())
    expected_message = fixtures.image_module_info(hub_estimator.ImageModuleInfo)
    for tags in _VARIANTS:
      with self.subTest(tags=tags):
        self.assertEqual(
            ours.get_signature_names(tags=tags),
            theirs.get_signature_names(tags=tags),
        )
        self.assertEqual(
            _info_summary(ours.get_input_info_dict(tags=tags)),
            _info_summary(theirs.get_input_info_dict(tags=tags)),
        )
        self.assertEqual(
            _info_summary(ours.get_output_info_dict(tags=tags)),
            _info_summary(theirs.get_output_info_dict(tags=tags)),
        )
        self.assertEqual(
            ours.get_attached_message(
                "image_module_info",
                hub_estimator.ImageModuleInfo,
                tags=tags,
                required=True,
            ),
            expected_message,
        )
        with tf.Graph().as_default():
          our_module = hub_estimator.Module(self.path, tags=tags, name="ours")
          their_module = hub.Module(self.path, tags=tags, name="theirs")
          self.assertEqual(
              our_module.get_signature_names(),
              their_module.get_signature_names(),
          )
          self.assertEqual(
              _info_summary(our_module.get_input_info_dict()),
              _info_summary(their_module.get_input_info_dict()),
          )
          self.assertEqual(
              _info_summary(our_module.get_output_info_dict()),
              _info_summary(their_module.get_output_info_dict()),
          )
          self.assertEqual(
              our_module.get_attached_message(
                  "image_module_info", hub_estimator.ImageModuleInfo
              ),
              expected_message,
          )
          self.assertEqual(
              sorted(our_module.variable_map), sorted(their_module.variable_map)
          )

  def test_our_reexport_loads_in_theirs(self):
    reexport = os.path.join(self.root, "our_reexport")
    # Change a weight before exporting, so the variables are provably the session's.
    our_outputs = _export(
        hub_estimator,
        hub_estimator.load_module_spec(self.path),
        reexport,
        bias_delta=1.5,
    )
    self.assertNotAllClose(
        our_outputs["default"], self.exported_outputs["default"]
    )
    self.assert_module_layout(reexport)
    for tags in _VARIANTS:
      with self.subTest(tags=tags):
        ours = _run(hub_estimator, reexport, tags)
        theirs = _run(hub, reexport, tags)
        self.assert_runs_equal(ours, theirs)
        np.testing.assert_allclose(
            theirs["variables"]["dense/bias"],
            _run(hub, self.path, tags)["variables"]["dense/bias"] + 1.5,
            rtol=1e-6,
        )
        if not tags:
          self.assert_outputs_equal(our_outputs, theirs["outputs"])
    self.assert_outputs_equal(our_outputs, _hub_load_outputs(reexport, []))


class SameModuleFnSameBytesTest(_InteropTestCase):
  """For one module_fn, our export is structurally identical to tensorflow_hub's."""

  def setUp(self):
    super().setUp()
    self.ours = os.path.join(self.root, "ours")
    self.theirs = os.path.join(self.root, "theirs")
    _export(
        hub_estimator,
        hub_estimator.create_module_spec(
            self.module_fn(hub_estimator, hub_estimator.ImageModuleInfo),
            tags_and_args=fixtures.tags_and_args(),
        ),
        self.ours,
    )
    _export(
        hub,
        hub.create_module_spec(
            self.module_fn(hub, hub.ImageModuleInfo),
            tags_and_args=fixtures.tags_and_args(),
        ),
        self.theirs,
    )

  def test_directory_listing_and_module_def_match(self):
    self.assertEqual(sorted(tf.io.gfile.listdir(self.ours)), _LISTING)
    self.assertEqual(
        sorted(tf.io.gfile.listdir(self.ours)),
        sorted(tf.io.gfile.listdir(self.theirs)),
    )
    for name in ("assets", "variables"):
      self.assertEqual(
          sorted(tf.io.gfile.listdir(os.path.join(self.ours, name))),
          sorted(tf.io.gfile.listdir(os.path.join(self.theirs, name))),
      )
    with tf.io.gfile.GFile(
        os.path.join(self.ours, "tfhub_module.pb"), "rb"
    ) as f:
      self.assertEqual(f.read(), b"\x08\x03")

  def test_saved_model_collections_signatures_and_assets_match(self):
    ours = _read_saved_model(self.ours)
    theirs = _read_saved_model(self.theirs)
    self.assertEqual(
        ours.saved_model_schema_version, theirs.saved_model_schema_version
    )
    self.assertEqual(
        [list(m.meta_info_def.tags) for m in ours.meta_graphs],
        [list(m.meta_info_def.tags) for m in theirs.meta_graphs],
    )
    self.assertEqual(list(ours.meta_graphs[1].meta_info_def.tags), [])
    for our_graph, their_graph in zip(ours.meta_graphs, theirs.meta_graphs):
      tags = list(their_graph.meta_info_def.tags)
      with self.subTest(tags=tags):
        self.assertEqual(
            sorted(our_graph.collection_def), sorted(their_graph.collection_def)
        )
        for key in their_graph.collection_def:
          self.assertEqual(
              our_graph.collection_def[key],
              their_graph.collection_def[key],
              "collection %r" % key,
          )
        self.assertEqual(
            dict(our_graph.signature_def), dict(their_graph.signature_def)
        )
        self.assertEqual(
            _asset_file_defs(our_graph), _asset_file_defs(their_graph)
        )
        self.assertEqual(
            our_graph.HasField("saver_def"), their_graph.HasField("saver_def")
        )
        self.assertEqual(
            len(our_graph.asset_file_def), len(their_graph.asset_file_def)
        )
        self.assertEqual(our_graph.meta_info_def, their_graph.meta_info_def)
        self.assertEqual(our_graph.graph_def, their_graph.graph_def)

  def test_checkpoint_keys_and_shapes_match(self):
    prefix = os.path.join("variables", "variables")
    self.assertEqual(
        tf.train.list_variables(os.path.join(self.ours, prefix)),
        tf.train.list_variables(os.path.join(self.theirs, prefix)),
    )


if __name__ == "__main__":
  tf.test.main()
