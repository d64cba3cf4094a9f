"""Modules made or applied inside function graphs and control flow.

tf.cond / tf.while_loop build function graphs (control flow v2) in graph mode,
as do tf.map_fn, tf.function, Defun and wrap_function. State is made once, in
the outermost graph that owns variables, and calls capture it. Checked against
tensorflow_hub where it supports the case (TPU replicate context, wrap_function)
and against the same computation written without a module where it does not.
"""

from absl import logging
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import function as function_lib
from tensorflow.python.ops import control_flow_ops
from tensorflow.python.ops import gen_lookup_ops
import tensorflow_hub as peer_hub

import hub_estimator as hub
import control_flow_fixtures

_v1 = tf.compat.v1
_GraphKeys = _v1.GraphKeys


def _affine(x, w, b):
  return tf.matmul(x, w) + b


_W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)
_B = np.array([0.5, -0.5], np.float32)


def _affine_module_fn(lib):
  def module_fn():
    x = _v1.placeholder(tf.float32, [None, 3], name="x")
    w = _v1.get_variable("w", initializer=_W)
    b = _v1.get_variable("b", initializer=_B)
    lib.add_signature(inputs=x, outputs=_affine(x, w, b))

  return module_fn


def _batch_norm_module_fn(lib):
  def module_fn(training):
    x = _v1.placeholder(tf.float32, [None, 2], name="x")
    y = _v1.layers.batch_normalization(
        x, training=training, momentum=0.0, center=False, scale=False
    )
    lib.add_signature(inputs=x, outputs=y)

  return module_fn


def _batch_norm_spec(lib):
  return lib.create_module_spec(
      _batch_norm_module_fn(lib),
      [({"train"}, {"training": True}), (set(), {"training": False})],
  )


def _stateful_random_module_fn(lib):
  def module_fn():
    r = _v1.get_variable(
        "r",
        shape=[],
        initializer=_v1.random_uniform_initializer(),
        use_resource=True,
    )
    lib.add_signature(outputs=r.value())

  return module_fn


def _stateful_input_module_fn(lib):
  def module_fn():
    r = _v1.get_variable(
        "r", shape=[], initializer=_v1.constant_initializer(10.0)
    )
    x = _v1.placeholder(tf.float32, shape=[])
    lib.add_signature(inputs=x, outputs=x + r)

  return module_fn


class _TPUReplicateContext(control_flow_ops.ControlFlowContext):
  """Stands for the context tpu.replicate enters (found by its class name)."""

  def __init__(self):
    super().__init__()
    self._name = "TPUReplicateContext"

  def AddOp(self, _):
    """Ops need no rewriting here: only the context's presence matters."""

  def AddValue(self, x):
    return x

  def to_control_flow_context_def(self, context_def, export_scope=None):
    super().to_control_flow_context_def(context_def, export_scope)


def _initialize_and_run(fetches):
  with _v1.Session() as session:
    session.run([_v1.global_variables_initializer(), _v1.tables_initializer()])
    return session.run(fetches)


_X = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]], np.float32)


class CallsInsideFunctionGraphsTest(tf.test.TestCase):
  """A module made in the graph, applied inside function graphs."""

  def _with_and_without_module(self, build):
    """Runs `build(apply)` with a module and with the same plain graph."""
    results = []
    for use_module in (True, False):
      with tf.Graph().as_default():
        if use_module:
          module = hub.Module(
              hub.create_module_spec(_affine_module_fn(hub)), trainable=True
          )
          apply, variables = module, [module.variable_map[k] for k in "wb"]
        else:
          w = _v1.get_variable("w", initializer=_W)
          b = _v1.get_variable("b", initializer=_B)
          apply, variables = (lambda x: _affine(x, w, b)), [w, b]
        output = build(apply)
        loss = tf.reduce_sum(output * output)
        gradients = tf.gradients(loss, variables)
        self.assertNotIn(None, gradients)
        results.append(_initialize_and_run([output] + gradients))
    self.assertAllClose(results[0], results[1])
    return results[0]

  def test_v2_cond_branches(self):
    for predicate in (True, False):
      with self.subTest(predicate=predicate):
        self._with_and_without_module(
            lambda apply: tf.cond(
                tf.constant(predicate),
                lambda: apply(tf.constant(_X)),
                lambda: apply(tf.constant(_X) * 2.0) + 1.0,
            )
        )

  def test_v2_while_loop_body_and_nested_cond(self):
    def build(apply):
      def body(i, acc):
        step = tf.cond(
            i > 0, lambda: apply(tf.constant(_X)), lambda: tf.zeros([2, 2])
        )
        return i + 1, acc + step

      return tf.while_loop(
          lambda i, _: i < 3, body, [tf.constant(0), tf.zeros([2, 2])]
      )[1]

    self._with_and_without_module(build)

  def test_map_fn(self):
    self._with_and_without_module(
        lambda apply: tf.map_fn(
            lambda row: apply(row[tf.newaxis])[0], tf.constant(_X)
        )
    )

  def test_tf_function_in_graph_mode(self):
    def build(apply):
      @tf.function
      def f(x):
        return apply(x) * 2.0

      return f(tf.constant(_X))

    self._with_and_without_module(build)

  def test_update_ops_of_a_call_in_a_branch_run_under_that_branch(self):
    spec = _batch_norm_spec(hub)
    batch = np.array([[1.0, 2.0], [3.0, 6.0]], np.float32)
    for v2 in (True, False):
      for taken in (True, False):
        with (
            self.subTest(control_flow_v2=v2, taken=taken),
            control_flow_fixtures.control_flow(v2),
        ):
          with tf.Graph().as_default():
            module = hub.Module(spec, trainable=True, tags={"train"})
            output = tf.cond(
                tf.constant(taken),
                lambda: module(tf.constant(batch)),
                lambda: tf.zeros([2, 2]),
            )
            # The updates travel with the branch, not in the collection that
            # code outside the branch could not run.
            self.assertEmpty(_v1.get_collection(_GraphKeys.UPDATE_OPS))
            moving_mean = [
                v for v in module.variables if "moving_mean" in v.op.name
            ][0]
            with _v1.Session() as session:
              session.run(_v1.global_variables_initializer())
              session.run(output)
              mean = session.run(moving_mean)
          self.assertAllClose(mean, [2.0, 4.0] if taken else [0.0, 0.0])

  def test_update_ops_of_a_call_in_a_v2_while_body_run_each_iteration(self):
    with tf.Graph().as_default():
      module = hub.Module(_batch_norm_spec(hub), trainable=True, tags={"train"})
      batches = tf.constant([[[1.0, 1.0]], [[5.0, 7.0]]])

      def body(i, acc):
        return i + 1, acc + module(batches[i])

      total = tf.while_loop(  # One iteration after the other.
          lambda i, _: i < 2,
          body,
          [tf.constant(0), tf.zeros([1, 2])],
          parallel_iterations=1,
      )[1]
      moving_mean = [v for v in module.variables if "moving_mean" in v.op.name]
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        session.run(total)
        self.assertAllClose(session.run(moving_mean[0]), [5.0, 7.0])

  def test_activity_losses_of_calls_in_branches_stay_out_of_the_graph(self):
    def module_fn():
      x = _v1.placeholder(tf.float32, [None, 3], name="x")
      w = _v1.get_variable(
          "w", initializer=_W, regularizer=lambda w: tf.reduce_sum(w)
      )
      _v1.add_to_collection(_GraphKeys.REGULARIZATION_LOSSES, tf.reduce_sum(x))
      hub.add_signature(inputs=x, outputs=tf.matmul(x, w))

    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_fn), trainable=True)
      module(tf.constant(_X))
      with self.assertLogs(level="WARNING") as logs:
        tf.cond(
            tf.constant(True),
            lambda: module(tf.constant(_X)),
            lambda: tf.zeros([2, 2]),
        )
      losses = _v1.get_collection(_GraphKeys.REGULARIZATION_LOSSES)
      # The weight loss once, the activity loss of the call outside the cond.
      self.assertLen(losses, 2)
      # Not silently: the call in the branch says what it leaves out.
      self.assertRegex(
          "\n".join(logs.output),
          r"signature 'default': the call is made inside cond_true_\d+ .*its 1"
          r" input-dependent REGULARIZATION_LOSSES \(Sum_1:0\) are left out",
      )
      self.assertAllClose(sorted(_initialize_and_run(losses)), [3.0, 21.0])

  def test_v1_control_flow_tensorflow_cannot_differentiate_there_warns(self):
    def module_fn(kind, use_resource):
      x = _v1.placeholder(tf.float32, [None, 3], name="x")
      w = _v1.get_variable("w", initializer=_W, use_resource=use_resource)
      h = x
      if kind == "while":
        _, h = tf.while_loop(
            lambda i, h: i < 2, lambda i, h: (i + 1, h * 2.0), [0, x]
        )
      else:
        w = tf.cond(tf.reduce_sum(x) > -1e9, lambda: w * 4.0, lambda: w * 0.0)
      hub.add_signature(inputs=x, outputs=_affine(h, w, _B))

    cases = [
        ("while", True, "a v1 tf.while_loop"),
        ("while", False, "a v1 tf.while_loop"),
        ("cond", True, "a v1 tf.cond with resource variables"),
        ("cond", False, None),  # differentiable: ref variables
    ]
    for kind, use_resource, expected in cases:
      with self.subTest(kind=kind, use_resource=use_resource):
        with control_flow_fixtures.control_flow(False):
          spec = hub.create_module_spec(
              module_fn, [(set(), dict(kind=kind, use_resource=use_resource))]
          )
        with tf.Graph().as_default():
          module = hub.Module(spec, trainable=True)
          with self.assertNoLogs(logger="absl", level="WARNING"):
            module(tf.constant(_X))  # outside function graphs
          with self.assertLogs(logger="absl", level="WARNING") as logs:
            output = tf.cond(
                tf.constant(True),
                lambda: module(tf.constant(_X)),
                lambda: tf.zeros([2, 2]),
            )
            logging.warning("end")
          if expected:
            self.assertRegex(
                logs.output[0],
                r"signature 'default': the call is made inside the function"
                r" graph cond_true_\d+ and runs %s of the module graph;"
                r" TensorFlow cannot build gradients" % expected,
            )
          else:
            self.assertLen(logs.output, 1)
          # The forward pass is right either way.
          self.assertAllClose(
              _initialize_and_run(output), (_X * 4.0).dot(_W) + _B
          )

  def test_calls_outside_the_graph_that_owns_the_state_fail(self):
    spec = hub.create_module_spec(_affine_module_fn(hub))
    with tf.Graph().as_default():
      module = hub.Module(spec)
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          RuntimeError, "Module must be applied in the graph it was"
      ):
        module(tf.constant(_X))


def _ref_variable_module_fn(lib):
  """A module keeping its state in VariableV2 ops (no resource variables).

  As TF1 code made them (and as modules on tfhub.dev hold them): reads go
  through the variables' snapshots, and the {"train"} variant writes the mean
  of its inputs with an Assign that takes the variable by reference.
  """

  def module_fn(training):
    x = _v1.placeholder(tf.float32, [None, 3], name="x")
    w = _v1.get_variable("w", initializer=_W, use_resource=False)
    mean = _v1.get_variable(
        "mean",
        initializer=np.zeros(2, np.float32),
        use_resource=False,
        trainable=False,
    )
    y = _affine(x, w, _B)
    if training:
      _v1.add_to_collection(
          _GraphKeys.UPDATE_OPS,
          _v1.assign(mean, tf.reduce_mean(x, 0)[:2], name="update_mean"),
      )
    lib.add_signature(inputs=x, outputs=y - mean)

  return module_fn


def _ref_variable_spec(lib):
  return lib.create_module_spec(
      _ref_variable_module_fn(lib),
      [({"train"}, {"training": True}), (set(), {"training": False})],
  )


class RefVariableModulesTest(tf.test.TestCase):
  """Modules with VariableV2 state, applied inside function graphs."""

  def test_reads_inside_function_graphs_match_the_plain_graph(self):
    spec = _ref_variable_spec(hub)
    builds = {
        "v2 cond": lambda apply: tf.cond(
            tf.constant(True),
            lambda: apply(tf.constant(_X)),
            lambda: tf.zeros([2, 2]),
        ),
        "v2 while": lambda apply: tf.while_loop(
            lambda i, _: i < 2,
            lambda i, acc: (i + 1, acc + apply(tf.constant(_X))),
            [tf.constant(0), tf.zeros([2, 2])],
        )[1],
        "map_fn": lambda apply: tf.map_fn(
            lambda row: apply(row[tf.newaxis])[0], tf.constant(_X)
        ),
        "tf.function": lambda apply: tf.function(lambda x: apply(x) * 2.0)(
            tf.constant(_X)
        ),
    }
    for name, build in builds.items():
      with self.subTest(placement=name):
        results = []
        for use_module in (True, False):
          with tf.Graph().as_default():
            if use_module:
              module = hub.Module(spec, trainable=True)
              w = module.variable_map["w"]
              self.assertEqual(w.op.type, "VariableV2")
              apply = module
            else:
              w = _v1.get_variable("w", initializer=_W, use_resource=False)
              apply = lambda x, w=w: _affine(x, w, _B)
            output = build(apply)
            gradient = tf.gradients(tf.reduce_sum(output * output), [w])
            self.assertNotIn(None, gradient)
            results.append(_initialize_and_run([output] + gradient))
        self.assertAllClose(results[0], results[1])

  def _train_step_in_cond(self, lib, control_flow_v2):
    with control_flow_fixtures.control_flow(control_flow_v2):
      with tf.Graph().as_default():
        module = lib.Module(
            _ref_variable_spec(lib), trainable=True, tags={"train"}
        )
        output = tf.cond(
            tf.constant(True),
            lambda: module(tf.constant(_X)),
            lambda: tf.zeros([2, 2]),
        )
        loss = tf.reduce_mean(tf.square(output - 1.0))
        with tf.control_dependencies(_v1.get_collection(_GraphKeys.UPDATE_OPS)):
          train_op = _v1.train.GradientDescentOptimizer(0.1).minimize(loss)
        with _v1.Session() as session:
          session.run(_v1.global_variables_initializer())
          session.run(train_op)
          return session.run(module.variable_map["mean"])

  def test_writes_in_a_v1_cond_like_tensorflow_hub(self):
    ours = self._train_step_in_cond(hub, control_flow_v2=False)
    self.assertAllClose(ours, np.mean(_X, 0)[:2])
    self.assertAllClose(ours, self._train_step_in_cond(peer_hub, False))

  def test_writes_inside_a_function_graph_are_refused(self):
    with self.assertRaisesRegex(
        RuntimeError,
        r"signature 'default': the call is made inside the function graph"
        r" cond_true_\d+ .* update_mean \(Assign\) on mean\. Make the"
        r" call outside",
    ):
      self._train_step_in_cond(hub, control_flow_v2=True)

  def test_v1_table_lookups_inside_a_function_graph_are_refused(self):
    def module_fn():
      words = _v1.placeholder(tf.string, [None], name="words")
      table = gen_lookup_ops.hash_table(tf.string, tf.int64, name="table")
      _v1.add_to_collection(
          _GraphKeys.TABLE_INITIALIZERS,
          gen_lookup_ops.initialize_table(
              table, tf.constant(["a", "b"]), tf.constant([0, 1], tf.int64)
          ),
      )
      hub.add_signature(
          inputs=words,
          outputs=gen_lookup_ops.lookup_table_find(
              table, words, tf.constant(-1, tf.int64), name="find"
          ),
      )

    spec = hub.create_module_spec(module_fn)
    with tf.Graph().as_default():
      words = tf.constant(["a", "b", "z"])
      module = hub.Module(spec)
      self.assertAllEqual(_initialize_and_run(module(words)), [0, 1, -1])
      with self.assertRaisesRegex(
          RuntimeError,
          r"takes ref-typed state \(a VariableV2 variable or v1 table, as TF1"
          r" code made them\) by reference in: find \(LookupTableFind\) on"
          r" table\.",
      ):
        tf.cond(
            tf.constant(True),
            lambda: module(words),
            lambda: tf.zeros([3], tf.int64),
        )


class ModulesMadeInsideFunctionGraphsTest(tf.test.TestCase):
  """A module made inside a function graph keeps its state outside it."""

  def _tpu_defun(self, lib):
    spec = lib.create_module_spec(_stateful_random_module_fn(lib))

    @function_lib.Defun()
    def computation():
      context = _TPUReplicateContext()
      context.Enter()
      module = lib.Module(spec, name="module_", trainable=True)
      return [module(), module()]

    with tf.Graph().as_default():
      outputs = computation()
      return _initialize_and_run(outputs)

  def test_tpu_replicate_context_in_defun_initializes_once(self):
    for lib in (hub, peer_hub):
      with self.subTest(lib=lib.__name__):
        first, second = self._tpu_defun(lib)
        self.assertEqual(first, second)

  def _tpu_function_values(self, lib, wrap):
    spec = lib.create_module_spec(_stateful_input_module_fn(lib))

    def computation(first, second):
      context = _TPUReplicateContext()
      context.Enter()
      module = lib.Module(spec, trainable=True)
      return [module(first), module(second)]

    with tf.Graph().as_default():
      if wrap:
        function = _v1.wrap_function(
            computation,
            [tf.TensorSpec((), tf.float32), tf.TensorSpec((), tf.float32)],
        )
      else:
        function = tf.function(computation)
      return _initialize_and_run(function(9.0, 6.0))

  def test_tpu_replicate_context_in_tf_function_and_wrap_function(self):
    for wrap in (False, True):
      with self.subTest(wrap_function=wrap):
        ours = self._tpu_function_values(hub, wrap)
        self.assertAllClose(ours, [19.0, 16.0])
        self.assertAllClose(ours, self._tpu_function_values(peer_hub, wrap))

  def test_made_inside_tf_function_and_v2_cond_without_tpu_context(self):
    spec = hub.create_module_spec(_stateful_input_module_fn(hub))
    with tf.Graph().as_default() as graph:

      @tf.function
      def f(x):
        return tf.cond(x > 0, lambda: hub.Module(spec)(x), lambda: x)

      outputs = [f(tf.constant(1.0)), f(tf.constant(-1.0))]
      # One state in the graph, made by the first trace only.
      variables = _v1.global_variables()
      self.assertEqual([v.op.name for v in variables], ["module/r"])
      self.assertIs(variables[0].graph, graph)
      self.assertAllClose(_initialize_and_run(outputs), [11.0, -1.0])

  def test_a_retrace_making_the_module_again_warns(self):
    spec = hub.create_module_spec(_affine_module_fn(hub))
    with tf.Graph().as_default():

      @tf.function
      def f(x):
        return hub.Module(spec)(x)

      with self.assertNoLogs(logger="absl", level="WARNING"):
        f(tf.constant(_X))
        f(tf.constant(_X * 2.0))  # the same trace
        for _ in range(2):  # one state per cond, from the same line
          tf.cond(
              tf.constant(True),
              lambda: hub.Module(spec)(tf.constant(_X)),
              lambda: tf.zeros([2, 2]),
          )
      with self.assertLogs(logger="absl", level="WARNING") as logs:
        f(tf.constant(_X[:1]))  # another input shape: traced again
      self.assertLen(logs.output, 1)
      self.assertRegex(
          logs.output[0],
          r"Module state module_3 made while tracing the function f again,"
          r" whose earlier trace made state module from the same line",
      )

  def _eager_wrap_function(self, lib):
    spec = lib.create_module_spec(_stateful_input_module_fn(lib))
    initializers = []

    def use_module(x, y):
      module = lib.Module(spec, name="module_", trainable=True)
      initializers.append(_v1.initializers.global_variables())
      return [module(x), module(y)]

    function = _v1.wrap_function(
        use_module,
        [tf.TensorSpec((), tf.float32), tf.TensorSpec((), tf.float32)],
    )
    function.prune([], initializers)()
    return [value.numpy() for value in function(9.0, 6.0)]

  def test_wrap_function_from_eager_code(self):
    self.assertTrue(tf.executing_eagerly())
    ours = self._eager_wrap_function(hub)
    self.assertAllClose(ours, [19.0, 16.0])
    self.assertAllClose(ours, self._eager_wrap_function(peer_hub))


if __name__ == "__main__":
  tf.test.main()
