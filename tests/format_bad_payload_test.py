"""Module payloads are checked at load: weight shards, asset symlinks, graphs."""

import os
import shutil
import tempfile

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import hub_estimator as hub

_DATA = os.path.join("variables", "variables.data-00000-of-00001")


def _module_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
  v = tf.compat.v1.get_variable(
      "v", [3], initializer=tf.compat.v1.ones_initializer()
  )
  w = tf.compat.v1.get_variable(
      "w", [50, 3], initializer=tf.compat.v1.ones_initializer()
  )
  hub.add_signature(inputs=x, outputs=x * v + tf.reduce_sum(w, 0))


class BadPayloadTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="bad_payload_")
    cls.outside = os.path.join(cls.root, "outside.txt")
    with open(cls.outside, "w") as f:
      f.write("secret\n")
    vocab = os.path.join(cls.root, "vocab.txt")
    with open(vocab, "w") as f:
      f.write("a\nb\n")

    def module_with_asset_fn():
      _module_fn()
      tf.compat.v1.add_to_collection(
          tf.compat.v1.GraphKeys.ASSET_FILEPATHS,
          tf.constant(vocab, name="vocab_path"),
      )

    cls.good = os.path.join(cls.root, "good")
    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_with_asset_fn))
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        module.export(cls.good, session)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def copy(self, name):
    path = os.path.join(self.root, name)
    shutil.copytree(self.good, path)
    return path

  def assert_load_fails(self, path, *patterns):
    with self.assertRaises(hub.ModuleFormatError) as cm:
      hub.load_module_spec(path)
    for pattern in patterns:
      self.assertIn(pattern, str(cm.exception))

  def test_good_module_loads(self):
    hub.load_module_spec(self.good)

  def test_truncated_data_shard_names_module_and_file(self):
    path = self.copy("truncated")
    data = os.path.join(path, _DATA)
    with open(data, "r+b") as f:
      f.truncate(os.path.getsize(data) - 8)
    self.assert_load_fails(
        path,
        f"Module {path}: variable data is truncated: {data} hold",
        f"but {os.path.join(path, 'variables', 'variables.index')} describes"
        " 612 bytes of tensors.",
    )

  def test_corrupt_data_shard_names_module_file_and_variable(self):
    path = self.copy("corrupt")
    data = os.path.join(path, _DATA)
    with open(data, "r+b") as f:
      f.seek(100)
      byte = f.read(1)
      f.seek(100)
      f.write(bytes([byte[0] ^ 0xFF]))
    self.assert_load_fails(
        path,
        f"Module {path}: variable 'w' in {data} is corrupt:",
        "Checksum does not match",
    )

  def test_corrupt_index_names_the_file(self):
    path = self.copy("bad_index")
    index = os.path.join(path, "variables", "variables.index")
    with open(index, "r+b") as f:
      f.truncate(os.path.getsize(index) // 2)
    self.assert_load_fails(
        path, f"Module {path}: cannot read the variables index {index}:"
    )

  def test_asset_symlink_out_of_the_module_is_refused_at_load(self):
    path = self.copy("symlinked")
    asset = os.path.join(path, "assets", "vocab.txt")
    os.remove(asset)
    os.symlink(self.outside, asset)
    self.assert_load_fails(
        path,
        f"Asset file {asset} of module {path!r} resolves to"
        f" {os.path.realpath(self.outside)}, outside the module",
    )
    # A link that stays inside the module is fine.
    os.remove(asset)
    os.symlink(os.path.join(path, "tfhub_module.pb"), asset)
    hub.load_module_spec(path)

  def test_asset_symlink_made_after_load_is_never_exported(self):
    path = self.copy("relinked")
    spec = hub.load_module_spec(path)
    asset = os.path.join(path, "assets", "vocab.txt")
    os.remove(asset)
    os.symlink(self.outside, asset)
    target = os.path.join(self.root, "reexport")
    with tf.Graph().as_default():
      module = hub.Module(spec)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        with self.assertRaisesRegex(
            hub.ModuleFormatError, "outside the module"
        ):
          module.export(target, session)
    copied = [
        os.path.join(d, n)
        for d, _, names in os.walk(self.root)
        for n in names
        if d.startswith(target)
    ]
    for name in copied:
      with open(name, "rb") as f:
        self.assertNotIn(b"secret", f.read())

  def _saved_model(self, path):
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
      return saved_model_pb2.SavedModel.FromString(f.read())

  def _write_saved_model(self, path, saved_model):
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(saved_model.SerializeToString())

  def test_signature_naming_a_missing_tensor(self):
    path = self.copy("missing_tensor")
    saved_model = self._saved_model(path)
    signature = saved_model.meta_graphs[0].signature_def["default"]
    signature.outputs["default"].name = "no_such_op:0"
    self._write_saved_model(path, saved_model)
    with tf.Graph().as_default():
      module = hub.Module(path)
      with self.assertRaises(hub.ModuleFormatError) as cm:
        module(tf.zeros([1, 3]))
    self.assertIn(
        f"Module {path}: graph variant tags=[] cannot be applied for"
        " signature 'default'; its saved_model.pb is malformed",
        str(cm.exception),
    )
    self.assertIn("no_such_op", str(cm.exception))

  def test_dangling_input(self):
    path = self.copy("dangling")
    saved_model = self._saved_model(path)
    graph_def = saved_model.meta_graphs[0].graph_def
    output = saved_model.meta_graphs[0].signature_def["default"].outputs
    out_op = output["default"].name.split(":")[0]
    node = next(n for n in graph_def.node if n.name == out_op)
    node.input[0] = "nowhere"
    self._write_saved_model(path, saved_model)
    with tf.Graph().as_default():
      with self.assertRaises(hub.ModuleFormatError) as cm:
        hub.Module(path)(tf.zeros([1, 3]))
    self.assertIn(f"Module {path}", str(cm.exception))
    self.assertIn("nowhere", str(cm.exception))


if __name__ == "__main__":
  tf.test.main()
