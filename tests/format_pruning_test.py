"""A call imports only what it needs, reasoning per fed tensor.

Checked against importing the whole module graph (as tensorflow_hub does) on
random small module graphs, and against tensorflow_hub itself where it applies.
"""

import numpy as np
import tensorflow as tf
import tensorflow_hub as peer_hub

import hub_estimator as hub
import control_flow_fixtures

_v1 = tf.compat.v1
_GraphKeys = _v1.GraphKeys


def _unstack_batch_norm_spec(lib):
  """The module of issue 11: signature inputs are both outputs of tf.unstack."""

  def module_fn(training):
    x = _v1.placeholder(tf.float32, [2, None, 3], name="x")
    a, b = tf.unstack(x)
    outputs = [
        _v1.layers.batch_normalization(
            value, training=training, momentum=0.0, name="bn_" + key
        )
        for key, value in (("a", a), ("b", b))
    ]
    lib.add_signature(inputs={"a": a, "b": b}, outputs=outputs[0] + outputs[1])

  return lib.create_module_spec(
      module_fn, [({"train"}, {"training": True}), (set(), {"training": False})]
  )


def _moving_means_after_one_step(lib):
  """Update-op count and bn_a's moving mean after one step on inputs of 3.0."""
  with tf.Graph().as_default():
    module = lib.Module(
        _unstack_batch_norm_spec(lib), trainable=True, tags={"train"}
    )
    value = tf.fill([4, 3], 3.0)
    output = module({"a": value, "b": value})
    update_ops = _v1.get_collection(_GraphKeys.UPDATE_OPS)
    moving_mean = [
        v for v in module.variables if v.op.name.endswith("bn_a/moving_mean")
    ]
    with _v1.Session() as session:
      session.run(_v1.global_variables_initializer())
      session.run([output] + update_ops)
      return len(update_ops), session.run(moving_mean[0])


class MultiOutputInputsTest(tf.test.TestCase):

  def test_unstacked_inputs_bring_their_update_ops_like_tensorflow_hub(self):
    count, moving_mean = _moving_means_after_one_step(hub)
    peer_count, peer_moving_mean = _moving_means_after_one_step(peer_hub)
    # Two batch-norm layers, each updating its moving mean and variance.
    self.assertEqual(count, 4)
    self.assertEqual(count, peer_count)
    self.assertAllClose(moving_mean, [3.0, 3.0, 3.0])
    self.assertAllClose(moving_mean, peer_moving_mean)

  def test_call_of_unstacked_inputs_does_not_import_the_placeholder(self):
    with tf.Graph().as_default() as graph:
      module = hub.Module(_unstack_batch_norm_spec(hub))
      module({"a": tf.zeros([4, 3]), "b": tf.zeros([4, 3])})
      names = [op.name for op in graph.get_operations()]
      self.assertNotIn("module_apply_default/x", names)
      self.assertNotIn("module_apply_default/unstack", names)

  def test_update_ops_behind_an_unfed_output_are_left_out(self):
    def module_fn():
      x = _v1.placeholder(tf.float32, [2, None, 3], name="x")
      a, b = tf.unstack(x)
      _v1.layers.batch_normalization(b, training=True, name="bn_b")
      y = _v1.layers.batch_normalization(a, training=True, name="bn_a")
      hub.add_signature(inputs={"a": a}, outputs=y)

    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_fn), trainable=True)
      module({"a": tf.ones([4, 3])})
      update_ops = _v1.get_collection(_GraphKeys.UPDATE_OPS)
      self.assertLen(update_ops, 2)
      self.assertTrue(all("bn_a" in op.name for op in update_ops))
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        session.run(update_ops)

  def test_control_dependency_on_a_fed_multi_output_op(self):
    def module_fn():
      x = _v1.placeholder(tf.float32, [2, 3], name="x")
      a, b = tf.unstack(x)
      with tf.control_dependencies([a.op]):
        y = tf.identity(a * b)
      hub.add_signature(inputs={"a": a, "b": b}, outputs=y)

    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_fn))
      a = tf.constant([1.0, 2.0, 3.0])
      output = module({"a": a, "b": a})
      with _v1.Session() as session:
        self.assertAllClose(session.run(output), [1.0, 4.0, 9.0])

  def test_input_dependent_regularization_losses_come_with_each_call(self):
    def module_fn():
      x = _v1.placeholder(tf.float32, [None, 3], name="x")
      a, b = tf.split(x, 2)
      w = _v1.get_variable(
          "w",
          [3],
          initializer=_v1.ones_initializer(),
          regularizer=lambda w: tf.reduce_sum(w),
      )
      _v1.add_to_collection(
          _GraphKeys.REGULARIZATION_LOSSES, 0.5 * tf.reduce_sum(a)
      )
      hub.add_signature(inputs={"a": a, "b": b}, outputs=a * w + b)

    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(module_fn), trainable=True)
      module({"a": tf.ones([2, 3]), "b": tf.ones([2, 3])})
      module({"a": tf.fill([1, 3], 2.0), "b": tf.ones([1, 3])})
      losses = _v1.get_collection(_GraphKeys.REGULARIZATION_LOSSES)
      self.assertLen(losses, 3)  # w once, the activity loss per call
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        self.assertAllClose(sorted(session.run(losses)), [3.0, 3.0, 3.0])


class _RandomModule:
  """Builds a random small module graph from a seed, and the values to feed it.

  The signature inputs always cut the graph off its placeholders (so importing
  the whole graph with them mapped can run everything), often as outputs of a
  multi-output op; the body mixes multi-output ops, control dependencies, batch
  norm, (partitioned) variables with regularizers, activity losses, and cond /
  while_loop nested in each other.
  """

  def __init__(self, seed):
    self.rng = np.random.RandomState(seed)
    self.input_kind = self.rng.choice(
        ["placeholder", "unstack", "split", "identity_n", "sparse", "ragged"]
    )
    self.control_flow_v2 = bool(self.rng.randint(2))
    self.steps = [
        self.rng.choice(
            ["batch_norm", "dense", "activity_loss", "split_concat"]
            + ["control_dep", "cond", "while", "partitioned"]
        )
        for _ in range(self.rng.randint(3, 8))
    ]
    self.constants = self.rng.uniform(-1.0, 1.0, size=64).astype(np.float32)

  def feed_values(self):
    """Returns dict from input key to the numpy value (or composite) to feed."""
    values = self.rng.uniform(-2.0, 2.0, size=(4, 3)).astype(np.float32)
    if self.input_kind == "sparse":
      return {
          "s": tf.compat.v1.SparseTensorValue(
              indices=np.array([[0, 0], [1, 2], [3, 1]], np.int64),
              values=values[0],
              dense_shape=np.array([4, 3], np.int64),
          )
      }
    if self.input_kind == "ragged":
      return {"r": (values, np.array([0, 2, 3, 3, 4], np.int64))}
    if self.input_kind == "placeholder":
      return {"a": values}
    return {"a": values, "b": values[::-1] * 0.5}

  def _inputs(self):
    """Returns (signature inputs, [4, 3] float tensors to build on)."""
    kind = self.input_kind
    if kind == "placeholder":
      x = _v1.placeholder(tf.float32, [4, 3], name="x")
      return {"a": x}, [x]
    if kind == "unstack":
      x = _v1.placeholder(tf.float32, [2, 4, 3], name="x")
      a, b = tf.unstack(x)
    elif kind == "split":
      x = _v1.placeholder(tf.float32, [4, 6], name="x")
      a, b = tf.split(x, 2, axis=1)
    elif kind == "identity_n":
      p = _v1.placeholder(tf.float32, [4, 3], name="p")
      q = _v1.placeholder(tf.float32, [4, 3], name="q")
      a, b = tf.identity_n([p, q])
    elif kind == "sparse":
      x = _v1.sparse_placeholder(tf.float32, [4, 3], name="x")
      indices, values, shape = tf.identity_n(
          [x.indices, x.values, x.dense_shape]
      )
      s = tf.SparseTensor(indices, values, shape)
      dense = tf.sparse.to_dense(s, validate_indices=False)
      return {"s": s}, [dense]
    else:
      x = _v1.ragged.placeholder(tf.float32, 1, [3], name="x")
      values, splits = tf.identity_n([x.flat_values, x.row_splits])
      r = tf.RaggedTensor.from_row_splits(values, splits, validate=False)
      return {"r": r}, [tf.reduce_sum(r, axis=1)]
    return {"a": a, "b": b}, [a, b]

  def _constant(self, shape):
    size = int(np.prod(shape))
    start = self.rng.randint(0, len(self.constants) - size)
    return self.constants[start : start + size].reshape(shape)

  def _pick(self, pool):
    return pool[self.rng.randint(len(pool))]

  def _step(self, kind, pool, index):
    t = self._pick(pool)
    name = "%s_%d" % (kind, index)
    if kind == "batch_norm":
      return _v1.layers.batch_normalization(
          t,
          training=True,
          momentum=float(self.rng.choice([0.0, 0.5])),
          name=name,
      )
    if kind in ("dense", "partitioned"):
      w = _v1.get_variable(
          name,
          [3, 3],
          initializer=_slicing_initializer(self._constant([3, 3])),
          regularizer=lambda w: 0.1 * tf.reduce_sum(tf.square(w)),
          partitioner=(
              _v1.fixed_size_partitioner(3) if kind == "partitioned" else None
          ),
      )
      return (
          tf.matmul(t, w)
          if kind == "dense"
          else tf.matmul(t, tf.concat(list(w), 0))
      )
    if kind == "activity_loss":
      _v1.add_to_collection(
          _GraphKeys.REGULARIZATION_LOSSES, 0.01 * tf.reduce_sum(t * t)
      )
      return tf.nn.relu(t)
    if kind == "split_concat":
      first, rest = tf.split(t, [1, 2], axis=1)
      return tf.concat([rest, first * 2.0], axis=1)
    if kind == "control_dep":
      other = self._pick(pool)
      with tf.control_dependencies([other.op]):
        return tf.identity(t) + 1.0
    v = _v1.get_variable(
        name, [3], initializer=_v1.constant_initializer(self._constant([3]))
    )
    if kind == "cond":
      threshold = float(self.rng.uniform(-1.0, 1.0))
      return tf.cond(
          tf.reduce_sum(t) > threshold,
          lambda: t * v,
          lambda: tf.cond(
              tf.reduce_mean(t) > 0.0, lambda: t - v, lambda: t + 1.0
          ),
      )
    _, result = tf.while_loop(
        lambda i, s: i < 3,
        lambda i, s: (
            i + 1,
            tf.cond(i > 0, lambda: s * 0.5 + v, lambda: s - t),
        ),
        [tf.constant(0), t],
    )
    return result

  def module_fn(self):
    inputs, pool = self._inputs()
    for index, kind in enumerate(self.steps):
      pool.append(self._step(kind, pool, index))
    default = tf.add_n(pool[-2:])
    hub.add_signature(
        inputs=inputs,
        outputs={"default": default, "sum": tf.reduce_sum(pool[-1])},
    )

  def create_spec(self):
    with control_flow_fixtures.control_flow(self.control_flow_v2):
      return hub.create_module_spec(self.module_fn)


def _slicing_initializer(full):
  """An initializer giving each partition its rows of `full`."""

  def initializer(shape, dtype=None, partition_info=None):
    del dtype
    start = partition_info.var_offset[0] if partition_info else 0
    return tf.constant(full[start : start + shape[0]])

  return initializer


def _to_tensor(value):
  if isinstance(value, tf.compat.v1.SparseTensorValue):
    return tf.SparseTensor(*(tf.constant(v) for v in value))
  if isinstance(value, tuple):
    return tf.RaggedTensor.from_row_splits(
        tf.constant(value[0]), tf.constant(value[1])
    )
  return tf.constant(value)


def _run_and_update(outputs, update_ops, losses, variables_by_name):
  with _v1.Session() as session:
    session.run(_v1.global_variables_initializer())
    result = session.run(outputs)
    total_loss = session.run(tf.add_n(losses)) if losses else 0.0
    session.run(update_ops)
    values = session.run(variables_by_name)
  return result, total_loss, values


def _pruned_call(spec, feed):
  with tf.Graph().as_default():
    module = hub.Module(spec, trainable=True)
    outputs = module({k: _to_tensor(v) for k, v in feed.items()}, as_dict=True)
    update_ops = _v1.get_collection(_GraphKeys.UPDATE_OPS)
    losses = _v1.get_collection(_GraphKeys.REGULARIZATION_LOSSES)
    variables = {v.op.name[len("module/") :]: v for v in _v1.global_variables()}
    return (len(update_ops), len(losses)) + _run_and_update(
        outputs, update_ops, losses, variables
    )


def _whole_graph_import(spec, feed):
  meta_graph = spec.get_meta_graph()
  input_infos = spec.get_input_info_dict()
  with tf.Graph().as_default():
    input_map = {}
    for key, value in feed.items():
      components = tf.nest.flatten(_to_tensor(value), expand_composites=True)
      input_map.update(zip(input_infos[key].component_names(), components))
    # A control dependency on the (fully fed) input op waits for the inputs.
    control_inputs = {
        i
        for node in meta_graph.graph_def.node
        for i in node.input
        if i[0] == "^"
    }
    for name, tensor in list(input_map.items()):
      if "^" + name.split(":")[0] in control_inputs:
        input_map["^" + name.split(":")[0]] = tensor
    _v1.train.import_meta_graph(
        meta_graph, import_scope="whole", input_map=input_map
    )
    graph = _v1.get_default_graph()
    outputs = {
        key: info.build(
            lambda n: input_map.get(n, None)
            or graph.get_tensor_by_name("whole/" + n)
        )
        for key, info in spec.get_output_info_dict().items()
    }
    update_ops = _v1.get_collection(_GraphKeys.UPDATE_OPS)
    losses = _v1.get_collection(_GraphKeys.REGULARIZATION_LOSSES)
    variables = {v.op.name[len("whole/") :]: v for v in _v1.global_variables()}
    return (len(update_ops), len(losses)) + _run_and_update(
        outputs, update_ops, losses, variables
    )


class RandomModuleGraphTest(tf.test.TestCase):

  def test_pruned_call_matches_importing_the_whole_graph(self):
    kinds = set()
    for seed in range(12):
      random_module = _RandomModule(seed)
      kinds.add(random_module.input_kind)
      with self.subTest(
          seed=seed,
          inputs=random_module.input_kind,
          steps=random_module.steps,
          control_flow_v2=random_module.control_flow_v2,
      ):
        spec = random_module.create_spec()
        feed = random_module.feed_values()
        ours = _pruned_call(spec, feed)
        whole = _whole_graph_import(spec, feed)
        self.assertEqual(ours[:2], whole[:2])  # update ops, losses
        self.assertAllClose(ours[2], whole[2])  # outputs
        self.assertAllClose(ours[3], whole[3])  # total regularization loss
        self.assertAllClose(ours[4], whole[4])  # variables after one update
    # The seeds cover multi-output, sparse and ragged inputs.
    self.assertContainsSubset({"unstack", "sparse", "ragged"}, kinds)


if __name__ == "__main__":
  tf.test.main()
