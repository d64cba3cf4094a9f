"""Instantiating and applying modules: state, calls, collections, inputs and pruning."""

import contextlib
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import control_flow_util

import hub_estimator as hub


def _stateful_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
  v = tf.compat.v1.get_variable(
      "v", [3], initializer=tf.compat.v1.ones_initializer()
  )
  hub.add_signature(inputs=x, outputs=x * v)


def _batch_norm_fn(training):
  x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
  y = tf.compat.v1.layers.batch_normalization(
      x, training=training, momentum=0.0, center=False, scale=False, epsilon=0.0
  )
  hub.add_signature(inputs=x, outputs=y)


def _write_vocab(folder, name, words):
  path = os.path.join(folder, name)
  with open(path, "w") as f:
    f.write("".join(word + "\n" for word in words))
  return path


def _vocab_module_fn(vocab):
  words = tf.compat.v1.placeholder(tf.string, [None], name="words")
  table = tf.compat.v1.lookup.StaticVocabularyTable(
      tf.lookup.TextFileInitializer(
          vocab,
          tf.string,
          tf.lookup.TextFileIndex.WHOLE_LINE,
          tf.int64,
          tf.lookup.TextFileIndex.LINE_NUMBER,
      ),
      num_oov_buckets=1,
  )
  hub.add_signature(inputs=words, outputs=table.lookup(words))


@contextlib.contextmanager
def _control_flow_v1():
  """Builds tf.cond / tf.while_loop as TF1 did (as under disable_v2_behavior)."""
  saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
  control_flow_util.ENABLE_CONTROL_FLOW_V2 = False
  try:
    yield
  finally:
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved


def _run(fetches):
  with tf.compat.v1.Session() as session:
    session.run([
        tf.compat.v1.global_variables_initializer(),
        tf.compat.v1.tables_initializer(),
    ])
    return session.run(fetches)


class ModuleStateTest(tf.test.TestCase):

  def test_variable_map_and_scopes(self):
    spec = hub.create_module_spec(_stateful_fn)
    with tf.Graph().as_default():
      first = hub.Module(spec)
      second = hub.Module(spec)
      with tf.compat.v1.variable_scope("outer"):
        nested = hub.Module(spec, name="inner")
      with tf.compat.v1.name_scope("just_a_name_scope"):
        under_name_scope = hub.Module(spec)
      with tf.compat.v1.variable_scope("vs"), tf.compat.v1.name_scope("ns"):
        mixed = hub.Module(spec)
      self.assertEqual(list(first.variable_map), ["v"])
      self.assertEqual(first.variable_map["v"].op.name, "module/v")
      self.assertEqual(second.variable_map["v"].op.name, "module_1/v")
      self.assertEqual(nested.variable_map["v"].op.name, "outer/inner/v")
      self.assertEqual(under_name_scope.variable_map["v"].op.name, "module_2/v")
      self.assertEqual(mixed.variable_map["v"].op.name, "vs/module/v")
      self.assertEqual(first.variables, [first.variable_map["v"]])

  def test_calls_share_state_and_instances_are_independent(self):
    spec = hub.create_module_spec(_stateful_fn)
    with tf.Graph().as_default():
      first = hub.Module(spec, trainable=True)
      second = hub.Module(spec, trainable=True)
      ones = np.ones([1, 3], np.float32)
      out_a, out_b, out_c = first(ones), first(ones), second(ones)
      assign = first.variable_map["v"].assign([5.0, 5.0, 5.0])
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(assign)
        a, b, c = session.run([out_a, out_b, out_c])
    self.assertAllClose(a, [[5, 5, 5]])
    self.assertAllClose(b, [[5, 5, 5]])
    self.assertAllClose(c, [[1, 1, 1]])

  def test_trainable_controls_consumer_collections(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
      y = tf.compat.v1.layers.dense(
          x, 2, kernel_regularizer=tf.keras.regularizers.l2(0.5)
      )
      y = tf.compat.v1.layers.batch_normalization(y, training=True)
      hub.add_signature(inputs=x, outputs=y)

    spec = hub.create_module_spec(module_fn)
    keys = tf.compat.v1.GraphKeys
    for trainable in (False, True):
      with tf.Graph().as_default():
        module = hub.Module(spec, trainable=trainable)
        module(np.ones([1, 2], np.float32))
        self.assertLen(tf.compat.v1.global_variables(), 6)
        self.assertLen(
            tf.compat.v1.trainable_variables(), 4 if trainable else 0
        )
        self.assertLen(
            tf.compat.v1.losses.get_regularization_losses(),
            1 if trainable else 0,
        )
        self.assertLen(
            tf.compat.v1.get_collection(keys.UPDATE_OPS), 2 if trainable else 0
        )

  def test_fine_tuning_changes_module_variables(self):
    spec = hub.create_module_spec(_stateful_fn)
    with tf.Graph().as_default():
      module = hub.Module(spec, trainable=True)
      y = module(np.ones([4, 3], np.float32))
      loss = tf.reduce_sum(tf.square(y - 3.0))
      train = tf.compat.v1.train.GradientDescentOptimizer(0.05).minimize(loss)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        for _ in range(50):
          session.run(train)
        self.assertAllClose(
            session.run(module.variable_map["v"]), [3, 3, 3], atol=1e-3
        )

  def test_batch_norm_train_variant_updates_statistics(self):
    spec = hub.create_module_spec(
        _batch_norm_fn,
        [({"train"}, {"training": True}), (set(), {"training": False})],
    )
    path = os.path.join(self.get_temp_dir(), "bn")
    data = np.array([[10.0], [14.0]], np.float32)
    with tf.Graph().as_default():
      module = hub.Module(spec, trainable=True, tags={"train"})
      module(data)
      updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(updates)
        self.assertAllClose(
            session.run(module.variable_map["batch_normalization/moving_mean"]),
            [12.0],
        )
        module.export(path, session)
    with tf.Graph().as_default():
      fixed = hub.Module(path)
      out = fixed(data)
      self.assertEmpty(
          tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
      )
      self.assertAllClose(_run(out), [[-1.0], [1.0]], atol=1e-3)

  def test_partitioned_variables(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.int64, [None], name="x")
      emb = tf.compat.v1.get_variable(
          "emb", [7, 2], partitioner=tf.compat.v1.fixed_size_partitioner(3)
      )
      hub.add_signature(inputs=x, outputs=tf.nn.embedding_lookup(emb, x))

    spec = hub.create_module_spec(module_fn)
    path = os.path.join(self.get_temp_dir(), "part")
    with tf.Graph().as_default():
      module = hub.Module(spec)
      parts = module.variable_map["emb"]
      self.assertEqual(
          [p.op.name for p in parts],
          ["module/emb/part_0", "module/emb/part_1", "module/emb/part_2"],
      )
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        values = np.concatenate(session.run(parts))
        module.export(path, session)
    self.assertEqual(
        dict(
            tf.train.list_variables(
                os.path.join(path, "variables", "variables")
            )
        ),
        {"emb": [7, 2]},
    )
    with tf.Graph().as_default():
      out = hub.Module(path)(np.array([6, 0], np.int64))
      self.assertAllClose(_run(out), values[[6, 0]])

  def test_table_and_asset_relocation(self):
    vocab = _write_vocab(
        self.get_temp_dir(), "tokens.txt", ["cat", "dog", "bird"]
    )
    spec = hub.create_module_spec(_vocab_module_fn, [(set(), {"vocab": vocab})])
    path = os.path.join(self.get_temp_dir(), "table_module")
    with tf.Graph().as_default():
      module = hub.Module(spec)
      module(tf.constant(["dog"]))
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.tables_initializer())
        module.export(path, session)
    os.remove(vocab)
    self.assertEqual(os.listdir(os.path.join(path, "assets")), ["tokens.txt"])
    moved = path + "_moved"
    os.rename(path, moved)
    with tf.Graph().as_default():
      out = hub.Module(moved)(tf.constant(["bird", "cat", "fish"]))
      self.assertAllEqual(_run(out), [2, 0, 3])

  def test_nested_module_with_assets_and_ref_variables_survives_moves(self):
    root = tempfile.mkdtemp(dir=self.get_temp_dir())
    vocab = _write_vocab(root, "v.txt", ["a", "b", "c"])

    def inner_module_fn():
      words = tf.compat.v1.placeholder(tf.string, [None], name="words")
      table = tf.compat.v1.lookup.StaticVocabularyTable(
          tf.lookup.TextFileInitializer(
              vocab,
              tf.string,
              tf.lookup.TextFileIndex.WHOLE_LINE,
              tf.int64,
              tf.lookup.TextFileIndex.LINE_NUMBER,
          ),
          num_oov_buckets=1,
      )
      with tf.compat.v1.variable_scope("refs", use_resource=False):
        emb = tf.compat.v1.get_variable(
            "emb",
            [4, 2],
            initializer=tf.compat.v1.constant_initializer(
                np.arange(8).reshape(4, 2)
            ),
        )
      hub.add_signature(
          inputs=words, outputs=tf.nn.embedding_lookup(emb, table.lookup(words))
      )

    inner = os.path.join(root, "inner")
    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(inner_module_fn))
      self.assertEqual([v.op.type for v in module.variables], ["VariableV2"])
      with tf.compat.v1.Session() as session:
        session.run([
            tf.compat.v1.global_variables_initializer(),
            tf.compat.v1.tables_initializer(),
        ])
        module.export(inner, session)
    os.remove(vocab)

    def outer_module_fn():
      words = tf.compat.v1.placeholder(tf.string, [None], name="words")
      hub.add_signature(inputs=words, outputs=hub.Module(inner)(words) * 2.0)

    outer = os.path.join(root, "outer")
    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(outer_module_fn))
      with tf.compat.v1.Session() as session:
        session.run([
            tf.compat.v1.global_variables_initializer(),
            tf.compat.v1.tables_initializer(),
        ])
        module.export(outer, session)
    shutil.rmtree(inner)
    os.rename(outer, outer + "_moved")
    self.assertEqual(
        os.listdir(os.path.join(outer + "_moved", "assets")), ["v.txt"]
    )
    with tf.Graph().as_default():
      out = hub.Module(outer + "_moved")(tf.constant(["c", "zz"]))
      self.assertAllClose(_run(out), [[8, 10], [12, 14]])


class ModuleCallTest(tf.test.TestCase):

  def test_inputs_with_defaults_may_be_left_out(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      rate = tf.compat.v1.placeholder_with_default(2.0, [], name="rate")
      hub.add_signature(inputs={"x": x, "rate": rate}, outputs=x * rate)

    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_fn))
      self.assertAllClose(_run(module([1.0, 2.0])), [2.0, 4.0])
      self.assertAllClose(_run(module({"x": [1.0], "rate": 5.0})), [5.0])

  def test_call_variant_applies_another_variant_to_the_same_state(self):
    spec = hub.create_module_spec(
        _batch_norm_fn,
        [({"train"}, {"training": True}), (set(), {"training": False})],
    )
    with tf.Graph().as_default():
      module = hub.Module(spec, trainable=True, tags={"train"})
      x = np.array([[1.0], [3.0]], np.float32)
      trained = module(x)
      updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
      inferred = module.call_variant(set(), x)
      self.assertLen(updates, 2)
      self.assertLen(
          tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS), 2
      )
      self.assertLen(tf.compat.v1.global_variables(), 2)  # No new state.
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        # Moving statistics (0, 1) before any update; batch ones (2, 1).
        self.assertAllClose(session.run(inferred), x)
        self.assertAllClose(session.run(trained), [[-1.0], [1.0]])
        session.run(updates)  # Momentum 0: moving = batch statistics.
        self.assertAllClose(session.run(inferred), [[-1.0], [1.0]])
      with self.assertRaisesRegex(
          ValueError, r"No such graph variant.*\['x'\]"
      ):
        module.call_variant({"x"}, x)

  def test_call_variant_needs_the_same_state(self):
    def module_fn(extra):
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      out = x * tf.compat.v1.get_variable("v", [])
      if extra:
        out *= tf.compat.v1.get_variable("w", [])
      hub.add_signature(inputs=x, outputs=out)

    spec = hub.create_module_spec(
        module_fn, [({"lean"}, {"extra": False}), (set(), {"extra": True})]
    )
    with tf.Graph().as_default():
      module = hub.Module(spec, tags={"lean"})
      with self.assertRaisesRegex(
          ValueError,
          r"tags=\[\] of module .* cannot run on the state of an instance"
          r" made with tags=\['lean'\]: w is missing",
      ):
        module.call_variant(set(), [1.0])

  def test_input_info_tells_defaults(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      rate = tf.compat.v1.placeholder_with_default(2.5, [], name="rate")
      scale = tf.compat.v1.placeholder_with_default(
          tf.constant([1, 2], tf.int64), [2], name="scale"
      )
      computed = tf.compat.v1.placeholder_with_default(
          tf.reduce_sum(tf.ones([3])), [], name="computed"
      )
      hub.add_signature(
          inputs={"x": x, "rate": rate, "scale": scale, "computed": computed},
          outputs=x * rate * computed,
      )

    spec = hub.create_module_spec(module_fn)
    path = os.path.join(self.get_temp_dir(), "defaults")
    with tf.Graph().as_default():
      module = hub.Module(spec)
      with tf.compat.v1.Session() as session:
        module.export(path, session)
    for loaded in (spec, hub.load_module_spec(path)):
      info = loaded.get_input_info_dict()
      self.assertFalse(info["x"].has_default)
      self.assertIsNone(info["x"].default_value)
      self.assertTrue(info["rate"].has_default)
      self.assertEqual(info["rate"].default_value.dtype, np.float32)
      self.assertEqual(info["rate"].default_value, 2.5)
      self.assertIn("default=2.5", repr(info["rate"]))
      self.assertAllEqual(info["scale"].default_value, [1, 2])
      self.assertEqual(info["scale"].default_value.dtype, np.int64)
      # A default computed in the graph: optional, but no constant value.
      self.assertTrue(info["computed"].has_default)
      self.assertIsNone(info["computed"].default_value)
    with tf.Graph().as_default():
      module = hub.Module(path)
      self.assertTrue(module.get_input_info_dict()["rate"].has_default)
      self.assertAllClose(_run(module([1.0, 2.0])), [7.5, 15.0])
      with self.assertRaisesRegex(
          TypeError, r"missing \['x'\].*\(optional: \['computed', 'rate'"
      ):
        module({"rate": 1.0})

  def test_bad_inputs_name_the_problem(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
      y = tf.compat.v1.placeholder(tf.float32, [None, 3], name="y")
      hub.add_signature(inputs={"x": x, "y": y}, outputs={"sum": x + y})
      hub.add_signature("one", inputs=x, outputs={"same": x})

    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_fn))
      ones = np.ones([1, 3], np.float32)
      with self.assertRaisesRegex(
          TypeError, r"expects multiple inputs \['x', 'y'\]"
      ):
        module(ones, as_dict=True)
      with self.assertRaisesRegex(
          TypeError, r"missing \['y'\], extra given \['z'\]"
      ):
        module({"x": ones, "z": ones}, as_dict=True)
      with self.assertRaisesRegex(
          TypeError, r"input 'x'.*got dtype int32, expected float32"
      ):
        module({"x": tf.ones([1, 3], tf.int32), "y": ones}, as_dict=True)
      with self.assertRaisesRegex(
          TypeError, r"input 'x'.*expected TensorSpec\(shape=\(None, 3\)"
      ):
        module({"x": np.ones([1, 4], np.float32), "y": ones}, as_dict=True)
      with self.assertRaisesRegex(TypeError, "got SparseTensor"):
        module(
            {"x": tf.SparseTensor([[0, 0]], [1.0], [1, 3]), "y": ones},
            as_dict=True,
        )
      with self.assertRaisesRegex(
          ValueError, r"Signature 'nope' is missing.*\['default', 'one'\]"
      ):
        module(ones, signature="nope")
      with self.assertRaisesRegex(
          TypeError, "no output named 'default'.*as_dict=True"
      ):
        module(ones, signature="one")

  def test_unknown_tags_and_spec_type(self):
    spec = hub.create_module_spec(_stateful_fn)
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          ValueError, r"No such graph variant: tags=\['train'\]"
      ):
        hub.Module(spec, tags={"train"})
      with self.assertRaisesRegex(ValueError, "Unknown module spec type"):
        hub.Module(42)

  def test_taken_name_scope_is_an_error(self):
    spec = hub.create_module_spec(_stateful_fn)
    with tf.Graph().as_default():
      with tf.compat.v1.name_scope("module"):
        tf.constant(1.0)
      with self.assertRaisesRegex(
          RuntimeError,
          "variable_scope module/ was unused but "
          "the corresponding name_scope was already taken",
      ):
        hub.Module(spec)

  def test_wrong_graph_and_eager_mode(self):
    spec = hub.create_module_spec(_stateful_fn)
    with tf.Graph().as_default():
      module = hub.Module(spec)
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          RuntimeError, "applied in the graph it was instantiated"
      ):
        module(np.ones([1, 3], np.float32))
    with self.assertRaisesRegex(RuntimeError, "graph mode"):
      hub.Module(spec)

  def test_call_imports_only_what_the_signature_needs(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
      big = x
      for i in range(20):
        big = tf.compat.v1.layers.dense(big, 8, name="big_%d" % i)
      hub.add_signature("big", inputs=x, outputs=big)
      hub.add_signature("small", inputs=x, outputs=x + 1.0)

    spec = hub.create_module_spec(module_fn)
    with tf.Graph().as_default() as graph:
      module = hub.Module(spec)
      before = len(graph.get_operations())
      out = module(np.zeros([1, 8], np.float32), signature="small")
      added = len(graph.get_operations()) - before
      self.assertLess(added, 6)
      self.assertAllClose(_run(out), np.ones([1, 8]))

  def test_apply_scope_names(self):
    spec = hub.create_module_spec(_stateful_fn)
    with tf.Graph().as_default():
      module = hub.Module(spec)
      a = module(np.ones([1, 3], np.float32))
      b = module(np.ones([1, 3], np.float32))
      with tf.compat.v1.name_scope("outer"):
        c = module(np.ones([1, 3], np.float32))
    self.assertStartsWith(a.name, "module_apply_default/")
    self.assertStartsWith(b.name, "module_apply_default_1/")
    self.assertStartsWith(c.name, "outer/module_apply_default/")

  def test_output_aliasing_an_input_returns_the_callers_tensor(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      hub.add_signature(inputs=x, outputs={"default": x + 1.0, "same": x})

    with tf.Graph().as_default():
      x = tf.constant([1.0])
      out = hub.Module(hub.create_module_spec(module_fn))(x, as_dict=True)
      self.assertIs(out["same"], x)

  def test_v1_control_flow_around_calls(self):
    spec = hub.create_module_spec(_stateful_fn)
    with _control_flow_v1():
      with tf.Graph().as_default():
        module = hub.Module(spec, trainable=True)

        def body(i, acc):
          return i + 1, acc + module(tf.ones([1, 3]))

        _, total = tf.compat.v1.while_loop(
            lambda i, _: i < 3, body, [tf.constant(0), tf.zeros([1, 3])]
        )
        picked = tf.compat.v1.cond(
            tf.constant(True),
            lambda: module(tf.ones([1, 3])),
            lambda: tf.zeros([1, 3]),
        )
        grad = tf.gradients(tf.reduce_sum(total), module.variable_map["v"])[0]
        total_value, picked_value, grad_value = _run([total, picked, grad])
    self.assertAllClose(total_value, [[3, 3, 3]])
    self.assertAllClose(picked_value, [[1, 1, 1]])
    self.assertAllClose(grad_value, [3, 3, 3])

  def test_v1_control_flow_inside_the_module_is_pruned_per_signature(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      y = tf.compat.v1.placeholder(tf.float32, [None], name="y")
      v = tf.compat.v1.get_variable(
          "v", [], initializer=tf.compat.v1.ones_initializer()
      )
      picked = tf.compat.v1.cond(
          tf.reduce_sum(x) > 0, lambda: x * v, lambda: -x * v
      )
      _, looped = tf.compat.v1.while_loop(
          lambda i, acc: i < 3,
          lambda i, acc: (i + 1, acc + x * v),
          [tf.constant(0), tf.zeros_like(x)],
      )
      normalized = tf.compat.v1.layers.batch_normalization(
          tf.expand_dims(y, 1), training=True
      )
      hub.add_signature(
          "cond", inputs=x, outputs={"picked": picked, "looped": looped}
      )
      hub.add_signature(
          "plain", inputs=y, outputs={"same": y + 1.0, "bn": normalized}
      )

    with _control_flow_v1():
      spec = hub.create_module_spec(module_fn)
      self.assertIn(
          "cond_context", spec.saved_model.meta_graphs[0].collection_def
      )
      with tf.Graph().as_default() as graph:
        module = hub.Module(spec, trainable=True)
        before = len(graph.get_operations())
        plain = module([1.0, 3.0], signature="plain", as_dict=True)
        plain_ops = len(graph.get_operations()) - before
        self.assertEmpty(
            tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.COND_CONTEXT)
        )
        before = len(graph.get_operations())
        out = module([2.0], signature="cond", as_dict=True)
        cond_ops = len(graph.get_operations()) - before
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        grad = tf.gradients(
            tf.reduce_sum(out["looped"]), module.variable_map["v"]
        )[0]
        values = _run(
            {"plain": plain, "out": out, "grad": grad, "updates": updates}
        )
    self.assertLess(plain_ops, cond_ops)
    self.assertLen(
        updates, 2
    )  # batch norm of "plain" only; "cond" has none to run
    self.assertAllClose(values["plain"]["same"], [2.0, 4.0])
    self.assertAllClose(values["out"]["picked"], [2.0])
    self.assertAllClose(values["out"]["looped"], [6.0])
    self.assertAllClose(values["grad"], 6.0)

  def test_surrounding_control_dependencies_apply_to_calls_only(self):
    spec = hub.create_module_spec(_stateful_fn)
    with tf.Graph().as_default():
      gate = tf.no_op(name="gate")
      with tf.control_dependencies([gate]):
        module = hub.Module(spec)
        out = module(np.ones([1, 3], np.float32))
      self.assertEmpty(module.variable_map["v"].op.control_inputs)
      self.assertAllClose(_run(out), [[1, 1, 1]])


class ExportTest(tf.test.TestCase):

  def test_export_layout_and_second_export_fails(self):
    spec = hub.create_module_spec(_stateful_fn)
    path = os.path.join(self.get_temp_dir(), "m")
    with tf.Graph().as_default():
      module = hub.Module(spec)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        module.export(path, session)
        self.assertCountEqual(
            os.listdir(path),
            ["assets", "saved_model.pb", "tfhub_module.pb", "variables"],
        )
        with open(os.path.join(path, "tfhub_module.pb"), "rb") as f:
          self.assertEqual(f.read(), b"\x08\x03")
        with self.assertRaises(tf.errors.AlreadyExistsError):
          module.export(path, session)
        module.export(
            path.encode("utf-8") + b"_bytes", session
        )  # as estimators pass
      self.assertAllClose(
          _run(
              hub.Module(path.encode("utf-8") + b"_bytes")(
                  np.ones([1, 3], np.float32)
              )
          ),
          [[1, 1, 1]],
      )
      with tf.Graph().as_default():
        with tf.compat.v1.Session() as other:
          with self.assertRaisesRegex(RuntimeError, "default graph differs"):
            module.export(path + "2", other)

  def test_file_url_paths_and_relative_paths(self):
    vocab = _write_vocab(self.get_temp_dir(), "url_vocab.txt", ["a", "b"])
    url = "file://" + os.path.join(self.get_temp_dir(), "url_module")
    with tf.Graph().as_default():
      module = hub.Module(
          hub.create_module_spec(_vocab_module_fn, [(set(), {"vocab": vocab})])
      )
      with tf.compat.v1.Session() as session:
        module.export(url, session)
    self.assertCountEqual(
        tf.io.gfile.listdir(url),
        ["assets", "saved_model.pb", "tfhub_module.pb", "variables"],
    )
    with tf.Graph().as_default():
      out = hub.Module(url)(tf.constant(["b", "zzz"]))
      self.assertAllEqual(_run(out), [1, 2])
    cwd = os.getcwd()
    os.chdir(self.get_temp_dir())
    try:
      spec = hub.load_module_spec("url_module")
    finally:
      os.chdir(cwd)
    with tf.Graph().as_default():
      out = hub.Module(spec)(tf.constant(["a"]))
      self.assertAllEqual(_run(out), [0])

  def test_module_without_variables_gets_empty_variables_dir(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
      hub.add_signature(inputs=x, outputs=x)

    path = os.path.join(self.get_temp_dir(), "novars")
    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_fn))
      with tf.compat.v1.Session() as session:
        module.export(path, session)
    self.assertEqual(os.listdir(os.path.join(path, "variables")), [])
    with tf.Graph().as_default():
      self.assertAllClose(_run(hub.Module(path)([3.0])), [3.0])

  def test_spec_export_from_checkpoint(self):
    spec = hub.create_module_spec(_stateful_fn)
    checkpoint_dir = self.get_temp_dir()
    with tf.Graph().as_default():
      v = tf.compat.v1.get_variable("mine/v", initializer=[7.0, 8.0, 9.0])
      with tf.compat.v1.Session() as session:
        session.run(v.initializer)
        checkpoint = tf.compat.v1.train.Saver([v]).save(
            session, os.path.join(checkpoint_dir, "ckpt")
        )
    path = os.path.join(self.get_temp_dir(), "from_ckpt")
    with self.assertRaisesRegex(
        ValueError, "Missing mandatory `checkpoint_path`"
    ):
      spec.export(path)
    spec.export(
        path,
        checkpoint_path=checkpoint,
        name_transform_fn=lambda n: "mine/" + n,
    )
    with hub.eval_function_for_module(path) as f:
      self.assertAllClose(f(np.ones([1, 3], np.float32)), [[7, 8, 9]])
    with self.assertRaisesRegex(ValueError, "not found in"):
      spec.export(path + "2", checkpoint_path=checkpoint)


if __name__ == "__main__":
  tf.test.main()
