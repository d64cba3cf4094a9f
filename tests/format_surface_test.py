"""hub_estimator offers tensorflow_hub 0.15's whole TF1 API, with its behaviour.

A name tensorflow_hub exports for TF1 code that is missing here (or takes other
leading parameters) fails this test.
"""

import inspect
import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_hub as peer_hub

import hub_estimator as hub

_v1 = tf.compat.v1
# tensorflow_hub 0.15 names that only work with TF2 SavedModels (hub.load).
_TF2_ONLY = frozenset(
    ["KerasLayer", "load", "resolve", "text_embedding_column_v2"]
)
# Imported by tensorflow_hub/__init__.py but left out of its __all__.
_ALSO_PUBLIC = ["eval_function_for_module", "__version__"]


def _parameters(function):
  if inspect.isclass(function):
    function = function.__init__
  return [
      (p.name, p.default)
      for p in inspect.signature(function).parameters.values()
  ]


def _image_module_fn(lib):
  def module_fn():
    images = _v1.placeholder(tf.float32, [None, None, None, 4], name="images")
    lib.attach_image_module_info(
        lib.ImageModuleInfo(
            default_image_size=lib.ImageModuleInfo.InputSize(
                height=20, width=30
            )
        )
    )
    lib.add_signature(
        inputs={"images": images}, outputs=tf.reduce_mean(images, [1, 2])
    )

  return module_fn


class SurfaceTest(tf.test.TestCase):

  def test_every_tf1_name_of_tensorflow_hub_is_here(self):
    names = sorted(set(peer_hub.__all__) - _TF2_ONLY) + _ALSO_PUBLIC
    missing = [name for name in names if not hasattr(hub, name)]
    self.assertEqual(missing, [])
    for name in names:
      theirs = getattr(peer_hub, name)
      if not callable(theirs) or name == "ModuleSpec":  # theirs is abstract
        continue
      with self.subTest(name=name):
        expected = _parameters(theirs)
        self.assertEqual(
            _parameters(getattr(hub, name))[: len(expected)], expected
        )
    self.assertContainsSubset(set(names) - {"__version__"}, hub.__all__)

  def test_methods_of_module_and_module_spec(self):
    for class_name in ("Module", "ModuleSpec"):
      theirs, ours = getattr(peer_hub, class_name), getattr(hub, class_name)
      for name, member in inspect.getmembers(theirs):
        if name.startswith("_"):
          continue
        with self.subTest(member="%s.%s" % (class_name, name)):
          self.assertTrue(hasattr(ours, name))
          if inspect.isfunction(member):
            expected = _parameters(member)
            self.assertEqual(
                _parameters(getattr(ours, name))[: len(expected)], expected
            )

  def test_get_tags_keeps_tensorflow_hub_order(self):
    def module_fn(lib):
      x = _v1.placeholder(tf.float32, [None])
      lib.add_signature(inputs=x, outputs=x)

    tags_and_args = [({"b", "train"}, {}), ({"a"}, {}), (set(), {})]
    for lib_tags in (tags_and_args, tags_and_args[::-1]):
      theirs = peer_hub.create_module_spec(
          lambda: module_fn(peer_hub), lib_tags
      ).get_tags()
      ours = hub.create_module_spec(lambda: module_fn(hub), lib_tags)
      self.assertEqual(ours.get_tags(), theirs)
      self.assertEqual([type(t) for t in ours.get_tags()], [frozenset] * 3)
      with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m")
        with tf.Graph().as_default():
          module = hub.Module(ours)
          with _v1.Session() as session:
            module.export(path, session)
        self.assertEqual(hub.load_module_spec(path).get_tags(), theirs)
        self.assertEqual(peer_hub.load_module_spec(path).get_tags(), theirs)

  def test_asset_filepaths_of_calls_as_in_tensorflow_hub(self):
    with tempfile.TemporaryDirectory() as folder:
      vocab = os.path.join(folder, "vocab.txt")
      with open(vocab, "w") as f:
        f.write("a\nb\n")

      def collections(lib):
        def module_fn():
          words = _v1.placeholder(tf.string, [None])
          table = _v1.lookup.StaticVocabularyTable(
              tf.lookup.TextFileInitializer(
                  vocab,
                  tf.string,
                  tf.lookup.TextFileIndex.WHOLE_LINE,
                  tf.int64,
                  tf.lookup.TextFileIndex.LINE_NUMBER,
              ),
              1,
          )
          lib.add_signature(inputs=words, outputs=table.lookup(words))

        with tf.Graph().as_default():
          module = lib.Module(lib.create_module_spec(module_fn))
          module(["a"])
          module(["b"])
          paths = _v1.get_collection(_v1.GraphKeys.ASSET_FILEPATHS)
          with _v1.Session() as session:
            return [t.name for t in paths], session.run(paths)

      self.assertEqual(collections(hub), collections(peer_hub))

  def test_image_module_info_and_channels_like_tensorflow_hub(self):
    for lib in (hub, peer_hub):
      spec = lib.create_module_spec(_image_module_fn(lib))
      with self.subTest(lib=lib.__name__):
        self.assertEqual(hub.get_expected_image_size(spec), [20, 30])
        self.assertEqual(hub.get_num_image_channels(spec), 4)
        self.assertEqual(peer_hub.get_num_image_channels(spec), 4)
        info = spec.get_attached_message(
            "image_module_info", lib.ImageModuleInfo
        )
        self.assertEqual(info.default_image_size.width, 30)

  def test_unknown_channels_and_missing_input_are_errors(self):
    def module_fn():
      images = _v1.placeholder(tf.float32, [None, 8, 8, None], name="images")
      hub.add_signature(inputs={"pixels": images}, outputs=images)

    spec = hub.create_module_spec(module_fn)
    with self.assertRaisesRegex(ValueError, "known num_channels"):
      hub.get_num_image_channels(spec, input_name="pixels")
    with self.assertRaisesRegex(
        ValueError, r"missing input 'images' .*\['pixels'\]"
    ):
      hub.get_num_image_channels(spec)

  def test_module_spec_from_a_tf1_saved_model(self):
    with tempfile.TemporaryDirectory() as folder:
      path = os.path.join(folder, "saved_model")
      with tf.Graph().as_default():
        x = _v1.placeholder(tf.float32, [None, 2], name="x")
        w = _v1.get_variable("w", initializer=np.array([1.0, 2.0], np.float32))
        _v1.train.get_or_create_global_step()
        y = x * w
        builder = _v1.saved_model.Builder(path)
        with _v1.Session() as session:
          session.run(_v1.global_variables_initializer())
          session.run(w.assign([3.0, 4.0]))
          builder.add_meta_graph_and_variables(
              session,
              [_v1.saved_model.tag_constants.SERVING],
              signature_def_map={
                  "default": _v1.saved_model.predict_signature_def(
                      {"x": x}, {"default": y}
                  )
              },
              main_op=_v1.tables_initializer(),
          )
        builder.save()
      results = []
      for lib in (hub, peer_hub):
        spec = lib.create_module_spec_from_saved_model(path)
        with tf.Graph().as_default():
          module = lib.Module(spec, tags={"serve"})
          output = module({"x": [[1.0, 1.0]]})
          with _v1.train.MonitoredSession() as session:
            results.append(session.run(output))
      self.assertAllClose(results[0], [[3.0, 4.0]])
      self.assertAllClose(results[0], results[1])

  def test_spec_export_takes_keywords_after_path(self):
    spec = hub.create_module_spec(_image_module_fn(hub))
    with self.assertRaisesRegex(ValueError, "by keyword"):
      spec.export("/nonexistent", "checkpoint")


if __name__ == "__main__":
  tf.test.main()
