"""Colocation constraints in modules: rewritten on apply, or refused at creation.

Follows tensorflow_hub 0.15's rules: an op colocated with module state or with
a signature input is colocated with the instance's state or with the tensor
fed for that input; a state op colocated with a non-state op, and ops colocated
with a multi-output op whose outputs are signature inputs, are refused by
create_module_spec with a message naming the nodes and loc:@ groups.
"""

import tensorflow as tf
import tensorflow_hub as peer_hub

import hub_estimator as hub

_v1 = tf.compat.v1


def _colocated_outputs_module_fn(lib):
  def module_fn():
    x = _v1.placeholder(tf.float32, [None, 3], name="x")
    v = _v1.get_variable("v", [3], initializer=_v1.ones_initializer())
    unused = _v1.get_variable("unused", [3])
    with _v1.colocate_with(v):
      with_state = tf.multiply(x, v, name="with_state")
    with _v1.colocate_with(x):
      with_input = tf.add(x, 1.0, name="with_input")
    with _v1.colocate_with(unused):
      tf.identity(unused, name="not_needed")
    lib.add_signature(
        inputs=x, outputs={"with_state": with_state, "with_input": with_input}
    )

  return module_fn


class ColocationTest(tf.test.TestCase):

  def _apply(self, lib):
    spec = lib.create_module_spec(_colocated_outputs_module_fn(lib))
    with tf.Graph().as_default():
      with tf.device("/cpu:0"):
        fed = tf.constant([[1.0, 2.0, 3.0]], name="fed")
      module = lib.Module(spec, name="m")
      outputs = module(fed, as_dict=True)
      groups = {
          key: sorted(g.decode() for g in t.op.colocation_groups())
          for key, t in outputs.items()
      }
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        values = session.run(outputs)
    return groups, values

  def test_outputs_colocated_with_state_and_input_like_tensorflow_hub(self):
    groups, values = self._apply(hub)
    peer_groups, peer_values = self._apply(peer_hub)
    self.assertEqual(groups["with_state"], ["loc:@m/v"])
    self.assertEqual(groups["with_input"], ["loc:@fed"])
    self.assertEqual(groups, peer_groups)
    self.assertAllClose(values, peer_values)

  def test_state_colocated_with_an_input_is_refused(self):
    def module_fn():
      x = _v1.placeholder(tf.float32, [3], name="x")
      with _v1.colocate_with(x):
        v = _v1.get_variable("v", [3])
      hub.add_signature(inputs=x, outputs=x * v)

    with self.assertRaisesRegex(
        ValueError,
        r"state-holding node v .*y = x, an op of type Placeholder; the"
        r" colocation groups of v are \['loc:@x'\]\) in the graph for tags"
        r" \['train'\]",
    ):
      hub.create_module_spec(module_fn, [({"train"}, {})])

  def test_colocation_with_a_multi_output_input_op_is_refused(self):
    def module_fn():
      x = _v1.placeholder(tf.float32, [2, 3], name="x")
      a, b = tf.unstack(x, name="parts")
      with _v1.colocate_with(a):
        y = tf.identity(a * b, name="y")
      hub.add_signature(inputs={"a": a, "b": b}, outputs=y)

    with self.assertRaisesRegex(
        ValueError,
        r"node y has colocation group loc:@parts, and parts has several"
        r" outputs of which signature inputs use some: 'a' of signature"
        r" 'default' \(parts:0\), 'b' of signature 'default' \(parts:1\)",
    ):
      hub.create_module_spec(module_fn)

  def test_colocated_signature_input_is_refused_naming_its_groups(self):
    def module_fn():
      v = _v1.get_variable("v", [3])
      with _v1.colocate_with(v):
        x = _v1.placeholder(tf.float32, [3], name="x")
      hub.add_signature(inputs=x, outputs=x * v)

    with self.assertRaisesRegex(
        ValueError, r"x:0 used as input 'default'.*\[b'loc:@v'\]"
    ):
      hub.create_module_spec(module_fn)


if __name__ == "__main__":
  tf.test.main()
