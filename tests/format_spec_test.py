"""Creating specs: variants, signatures, collections, attachments and their errors."""

import tensorflow as tf

import hub_estimator as hub


def _double_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
  hub.add_signature(inputs=x, outputs=2.0 * x)


def _two_signatures_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
  y = tf.compat.v1.placeholder(tf.float32, [None], name="y")
  hub.add_signature("sum", inputs={"x": x, "y": y}, outputs={"total": x + y})
  hub.add_signature("neg", inputs={"x": x}, outputs={"default": -x, "same": x})


class CreateModuleSpecTest(tf.test.TestCase):

  def test_default_variant_has_no_tags(self):
    spec = hub.create_module_spec(_double_fn)
    self.assertEqual(spec.get_tags(), [set()])
    self.assertEqual(spec.get_signature_names(), ["default"])
    self.assertEqual(
        list(spec.saved_model.meta_graphs[0].meta_info_def.tags), []
    )

  def test_variants_are_built_with_their_arguments_in_order(self):
    def module_fn(scale):
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      hub.add_signature(inputs=x, outputs=scale * x)

    spec = hub.create_module_spec(
        module_fn, [({"train"}, {"scale": 3.0}), (set(), {"scale": 2.0})]
    )
    self.assertEqual(
        [list(m.meta_info_def.tags) for m in spec.saved_model.meta_graphs],
        [["train"], []],
    )
    self.assertCountEqual(spec.get_tags(), [set(), {"train"}])
    for tags, expected in (({"train"}, [3.0]), (None, [2.0])):
      with hub.eval_function_for_module(spec, tags=tags) as f:
        self.assertAllClose(f([1.0]), expected)

  def test_duplicate_tags_are_rejected(self):
    with self.assertRaisesRegex(ValueError, r"Tags \['a'\] used repeatedly"):
      hub.create_module_spec(lambda: _double_fn(), [({"a"}, {}), ({"a"}, {})])

  def test_module_fn_without_signature_is_rejected(self):
    def module_fn():
      tf.compat.v1.placeholder(tf.float32, [None])

    with self.assertRaisesRegex(ValueError, "No signatures present"):
      hub.create_module_spec(module_fn)
    with self.assertRaisesRegex(
        ValueError,
        r"No signatures present in the graph for " r"tags \['train'\]",
    ):
      hub.create_module_spec(module_fn, [({"train"}, {})])

  def test_signature_names_and_info(self):
    spec = hub.create_module_spec(_two_signatures_fn)
    self.assertCountEqual(spec.get_signature_names(), ["sum", "neg"])
    inputs = spec.get_input_info_dict("sum")
    self.assertCountEqual(inputs, ["x", "y"])
    self.assertEqual(inputs["x"].dtype, tf.float32)
    self.assertEqual(inputs["x"].get_shape().as_list(), [None])
    self.assertCountEqual(spec.get_output_info_dict("neg"), ["default", "same"])
    self.assertEqual(
        spec.saved_model.meta_graphs[0].signature_def["sum"].method_name, ""
    )

  def test_last_signature_with_a_name_wins(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      hub.add_signature(inputs=x, outputs=x)
      hub.add_signature(inputs=x, outputs=x + 1.0)

    with hub.eval_function_for_module(hub.create_module_spec(module_fn)) as f:
      self.assertAllClose(f([1.0]), [2.0])

  def test_unknown_signature_and_tags_name_the_available_ones(self):
    spec = hub.create_module_spec(_two_signatures_fn)
    with self.assertRaisesRegex(
        ValueError, r"Signature 'nope' is missing.*\['neg', 'sum'\]"
    ):
      spec.get_input_info_dict("nope")
    with self.assertRaisesRegex(
        KeyError, r"no graph variant with tags \['x'\].*\[\[\]\]"
    ):
      spec.get_signature_names(tags={"x"})

  def test_unsupported_collection_is_rejected_unless_dropped(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      tf.compat.v1.summary.scalar("s", tf.reduce_sum(x))
      tf.compat.v1.add_to_collection("my_stuff", x)
      hub.add_signature(inputs=x, outputs=x)

    with self.assertRaisesRegex(
        ValueError,
        r"Unsupported collections in graph.*"
        r"\['my_stuff', 'summaries'\]\nUse create_module_spec",
    ):
      hub.create_module_spec(module_fn)
    spec = hub.create_module_spec(
        module_fn, drop_collections=["summaries", "my_stuff"]
    )
    self.assertEqual(spec.get_signature_names(), ["default"])

  def test_unsupported_signature_value_types_are_rejected(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      v = tf.compat.v1.get_variable("v", [1])
      hub.add_signature(inputs=x, outputs={"default": x, "var": v})

    with self.assertRaisesRegex(
        ValueError,
        r"signature 'default'.*\n  \* output 'var' "
        r"has type ResourceVariable",
    ):
      hub.create_module_spec(module_fn)

  def test_colocated_signature_input_is_rejected(self):
    def module_fn():
      y = tf.constant(1.0, name="y")
      with tf.compat.v1.colocate_with(y):
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      hub.add_signature(inputs=x, outputs=x)

    with self.assertRaisesRegex(
        ValueError, "must not be subject to a tf.colocate_with"
    ):
      hub.create_module_spec(module_fn)

  def test_state_op_colocated_with_non_state_op_is_rejected(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      with tf.compat.v1.colocate_with(x):
        tf.compat.v1.get_variable("v", [1])
      hub.add_signature(inputs=x, outputs=x)

    with self.assertRaisesRegex(
        ValueError, "A state-holding node v of a module's graph"
    ):
      hub.create_module_spec(module_fn)

  def test_variables_are_resource_variables(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      v = tf.compat.v1.get_variable("v", [1])
      hub.add_signature(inputs=x, outputs=x * v)

    spec = hub.create_module_spec(module_fn)
    ops = {n.name: n.op for n in spec.saved_model.meta_graphs[0].graph_def.node}
    self.assertEqual(ops["v"], "VarHandleOp")


class AttachMessageTest(tf.test.TestCase):

  def _spec(self):
    def module_fn(size):
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      hub.add_signature(inputs=x, outputs=x)
      info = hub.ImageModuleInfo()
      info.default_image_size.height = 1
      hub.attach_message("image_module_info", info)
      info.default_image_size.height = size
      info.default_image_size.width = size
      hub.attach_message("image_module_info", info)

    return hub.create_module_spec(
        module_fn, [({"train"}, {"size": 5}), (set(), {"size": 7})]
    )

  def test_last_message_per_key_and_per_variant(self):
    spec = self._spec()
    default = spec.get_attached_message(
        "image_module_info", hub.ImageModuleInfo
    )
    train = spec.get_attached_message(
        "image_module_info", hub.ImageModuleInfo, tags={"train"}
    )
    self.assertEqual(default.default_image_size.height, 7)
    self.assertEqual(train.default_image_size.width, 5)
    default.default_image_size.height = 99  # callers get their own copy
    again = spec.get_attached_message("image_module_info", hub.ImageModuleInfo)
    self.assertEqual(again.default_image_size.height, 7)

  def test_missing_message(self):
    spec = self._spec()
    self.assertIsNone(spec.get_attached_message("other", hub.ImageModuleInfo))
    with self.assertRaisesRegex(
        KeyError, "No attached message for key 'other'"
    ):
      spec.get_attached_message("other", hub.ImageModuleInfo, required=True)
    with tf.Graph().as_default():
      module = hub.Module(spec, tags={"train"})
      message = module.get_attached_message(
          "image_module_info", hub.ImageModuleInfo
      )
      self.assertEqual(message.default_image_size.height, 5)

  def test_malformed_key(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      hub.add_signature(inputs=x, outputs=x)
      hub.attach_message("1bad-key", hub.ImageModuleInfo())

    with self.assertRaisesRegex(ValueError, "malformed key '1bad-key'"):
      hub.create_module_spec(module_fn)

  def test_no_collection_without_attachments(self):
    spec = hub.create_module_spec(_double_fn)
    self.assertNotIn(
        "hub_module_attachments", spec.saved_model.meta_graphs[0].collection_def
    )


class CompositeSignatureTest(tf.test.TestCase):

  def test_sparse_and_ragged_values(self):
    def module_fn():
      sp = tf.compat.v1.sparse_placeholder(tf.int64, [None, 5], name="sp")
      rg = tf.compat.v1.ragged.placeholder(tf.float32, 1, [], name="rg")
      hub.add_signature(
          inputs={"sp": sp, "rg": rg},
          outputs={
              "sp2": tf.SparseTensor(sp.indices, sp.values * 2, sp.dense_shape),
              "rg2": rg * rg,
              "default": tf.reduce_sum(rg, axis=1),
          },
      )

    spec = hub.create_module_spec(module_fn)
    inputs = spec.get_input_info_dict()
    self.assertTrue(inputs["sp"].is_sparse)
    self.assertEqual(inputs["sp"].get_shape().as_list(), [None, 5])
    self.assertTrue(inputs["rg"].is_composite)
    self.assertIsInstance(inputs["rg"].type_spec, tf.RaggedTensorSpec)
    self.assertIn("is_sparse=True", repr(inputs["sp"]))
    with tf.Graph().as_default():
      module = hub.Module(spec)
      sp = tf.SparseTensor(
          [[0, 1], [1, 4]], tf.constant([3, 4], tf.int64), [2, 5]
      )
      rg = tf.ragged.constant([[1.0, 2.0], [3.0]])
      out = module({"sp": sp, "rg": rg}, as_dict=True)
      self.assertIsInstance(out["sp2"], tf.SparseTensor)
      self.assertIsInstance(out["rg2"], tf.RaggedTensor)
      with tf.compat.v1.Session() as session:
        values = session.run(out)
    self.assertAllEqual(values["sp2"].values, [6, 8])
    self.assertAllClose(values["rg2"].flat_values, [1.0, 4.0, 9.0])
    self.assertAllClose(values["default"], [3.0, 3.0])


if __name__ == "__main__":
  tf.test.main()
