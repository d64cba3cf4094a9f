"""Bad module directories get one clear error naming the path and what was expected."""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

import hub_estimator as hub
from hub_estimator.format import protos


def _stateful_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
  v = tf.compat.v1.get_variable(
      "v", [3], initializer=tf.compat.v1.ones_initializer()
  )
  hub.add_signature(inputs=x, outputs=x * v)


class BadModuleDirectoryTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="bad_module_")
    cls.good = os.path.join(cls.root, "good")
    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(_stateful_fn))
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        module.export(cls.good, session)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def _copy(self, name):
    return self._copy_of(self.good, name)

  def _copy_of(self, source, name):
    path = os.path.join(self.root, name)
    shutil.copytree(source, path)
    return path

  def test_missing_directory(self):
    missing = os.path.join(self.root, "nothing_here")
    with self.assertRaisesRegex(
        tf.errors.NotFoundError, "nothing_here.*does not exist"
    ):
      hub.load_module_spec(missing)

  def test_plain_saved_model(self):
    path = self._copy("plain")
    os.remove(os.path.join(path, "tfhub_module.pb"))
    with self.assertRaisesRegex(
        hub.ModuleFormatError,
        "plain.*is a plain SavedModel, not a TF1 Hub module",
    ):
      hub.load_module_spec(path)

  def test_unsupported_format_and_features(self):
    path = self._copy("format")
    with open(os.path.join(path, "tfhub_module.pb"), "wb") as f:
      f.write(b"")
    with self.assertRaisesRegex(
        hub.ModuleFormatError, "Unsupported module def format: 0"
    ):
      hub.load_module_spec(path)
    with open(os.path.join(path, "tfhub_module.pb"), "wb") as f:
      f.write(
          protos.ModuleDef(
              format=3, required_features=["foo-test-missing"]
          ).SerializeToString()
      )
    with self.assertRaisesRegex(
        hub.ModuleFormatError, r"Unsupported features: \['foo-test-missing'\]"
    ):
      hub.load_module_spec(path)

  def test_corrupt_saved_model(self):
    path = self._copy("corrupt")
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(b"\xff\xff\xff garbage")
    with self.assertRaisesRegex(
        hub.ModuleFormatError, "Cannot parse file .*saved_model.pb"
    ):
      hub.load_module_spec(path)

  def test_missing_saved_model(self):
    path = self._copy("no_saved_model")
    os.remove(os.path.join(path, "saved_model.pb"))
    with self.assertRaisesRegex(
        hub.ModuleFormatError, "no_saved_model.*missing saved_model.pb"
    ):
      hub.load_module_spec(path)

  def test_missing_variables_fail_at_instantiation(self):
    path = self._copy("no_variables")
    shutil.rmtree(os.path.join(path, "variables"))
    spec = hub.load_module_spec(path)  # the checkpoint is not opened yet
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          hub.ModuleFormatError, "no_variables.*missing its variables"
      ):
        hub.Module(spec)

  def test_missing_variable_data_fails_at_instantiation(self):
    path = self._copy("no_data")
    os.remove(os.path.join(path, "variables", "variables.data-00000-of-00001"))
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          hub.ModuleFormatError,
          r"no_data is missing variable data: .*"
          r"variables.data-00000-of-00001",
      ):
        hub.Module(path)

  def test_variables_that_do_not_fit_the_graph(self):
    path = self._copy("wrong_variables")
    with tf.Graph().as_default():
      w = tf.compat.v1.get_variable("w", [2])
      with tf.compat.v1.Session() as session:
        session.run(w.initializer)
        tf.compat.v1.train.Saver([w]).save(
            session,
            os.path.join(path, "variables", "variables"),
            write_state=False,
        )
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          hub.ModuleFormatError, "does not fit its graph: v is missing"
      ):
        hub.Module(path)

  def test_asset_pointing_outside_assets_dir(self):
    def module_fn():
      words = tf.compat.v1.placeholder(tf.string, [None], name="words")
      hub.add_signature(inputs=words, outputs=words)

    vocab = os.path.join(self.root, "v.txt")
    with open(vocab, "w") as f:
      f.write("a\n")

    def module_with_asset_fn():
      module_fn()
      asset = tf.constant(vocab, name="asset_path")
      tf.compat.v1.add_to_collection(
          tf.compat.v1.GraphKeys.ASSET_FILEPATHS, asset
      )

    path = os.path.join(self.root, "escaping")
    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_with_asset_fn))
      with tf.compat.v1.Session() as session:
        module.export(path, session)
    self.assertEqual(os.listdir(os.path.join(path, "assets")), ["v.txt"])
    without_asset = self._copy_of(path, "no_asset")
    os.remove(os.path.join(without_asset, "assets", "v.txt"))
    with self.assertRaisesRegex(
        hub.ModuleFormatError,
        "Asset file .*no_asset/assets/v.txt of module .* is missing",
    ):
      hub.load_module_spec(without_asset)
    saved_model_path = os.path.join(path, "saved_model.pb")
    with open(saved_model_path, "rb") as f:
      saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    entry = (
        saved_model.meta_graphs[0]
        .collection_def["saved_model_assets"]
        .any_list.value[0]
    )
    asset = meta_graph_pb2.AssetFileDef()
    entry.Unpack(asset)
    asset.filename = "../../v.txt"
    entry.Pack(asset)
    with open(saved_model_path, "wb") as f:
      f.write(saved_model.SerializeToString())
    with self.assertRaisesRegex(
        hub.ModuleFormatError, "points outside assets_dir"
    ):
      hub.load_module_spec(path)

  def test_unknown_op(self):
    path = self._copy("unknown_op")
    saved_model_path = os.path.join(path, "saved_model.pb")
    with open(saved_model_path, "rb") as f:
      saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    node = saved_model.meta_graphs[0].graph_def.node.add(
        name="strange", op="NoSuchOpAnywhere"
    )
    del node.input[:]
    with open(saved_model_path, "wb") as f:
      f.write(saved_model.SerializeToString())
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          hub.UnsafeModuleError,
          r"unknown_op is refused .*\n.*op NoSuchOpAnywhere \(node 'strange'\)"
          r" is not registered",
      ):
        hub.Module(path)
      with self.assertRaisesRegex(
          tf.errors.NotFoundError,
          r"unknown_op uses ops .*\['NoSuchOpAnywhere'\]",
      ):
        hub.Module(path, allowed_ops=["NoSuchOpAnywhere"])

  def test_good_module_still_loads(self):
    with hub.eval_function_for_module(self.good) as f:
      self.assertAllClose(f(np.ones([1, 3], np.float32)), [[1, 1, 1]])


if __name__ == "__main__":
  tf.test.main()
