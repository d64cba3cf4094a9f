"""An index over one graph variant of a module, used to import only what a call needs."""

import tensorflow as tf
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import control_flow_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.framework import op_def_registry

_GraphKeys = tf.compat.v1.GraphKeys
_CONTROL_FLOW_V1_COLLECTIONS = (
    _GraphKeys.COND_CONTEXT,
    _GraphKeys.WHILE_CONTEXT,
)
PLACEHOLDER_OPS = ("Placeholder", "PlaceholderV2")
_VARIABLE_COLLECTIONS = (
    _GraphKeys.GLOBAL_VARIABLES,
    _GraphKeys.TRAINABLE_VARIABLES,
    _GraphKeys.MODEL_VARIABLES,
)


def is_state_op(op_type):
  """True for ops that hold state and take no inputs (variables, tables, queues)."""
  op_def = op_def_registry.get(op_type)
  return op_def is not None and op_def.is_stateful and not op_def.input_arg


def op_name(tensor_or_op_name):
  """Returns the op name of "op", "op:1" or "^op"."""
  return tensor_or_op_name.lstrip("^").split(":")[0]


def tensor_name(name):
  """Returns the tensor name "op:k" of a data input written "op" or "op:k"."""
  return name if ":" in name else name + ":0"


def _arg_length(node, op_def, arg):
  """The number of tensors an input or output arg of a NodeDef stands for.

  None if an attr it needs is missing.
  """
  if arg.number_attr:
    value = node.attr.get(arg.number_attr) or _attr_default(
        op_def, arg.number_attr
    )
    return None if value is None else value.i
  if arg.type_list_attr:
    value = node.attr.get(arg.type_list_attr) or _attr_default(
        op_def, arg.type_list_attr
    )
    return None if value is None else len(value.list.type)
  return 1


def _attr_default(op_def, name):
  for attr in op_def.attr:
    if attr.name == name:
      return attr.default_value
  return None


def _num_outputs(node):
  """The number of outputs of a NodeDef, or None if its op is not registered."""
  if node is None:
    return None
  op_def = op_def_registry.get(node.op)
  if op_def is None:
    return None
  count = 0
  for arg in op_def.output_arg:
    length = _arg_length(node, op_def, arg)
    if length is None:
      return None
    count += length
  return count


def ref_inputs(node):
  """Tensor names ("op:k") of the data inputs a NodeDef takes by reference.

  Ops such as Assign, AssignSub, ScatterUpdate or the v1 LookupTableFind take
  a ref-typed input (a VariableV2 or a v1 table handle) to read or write it in
  place. When the lengths of the op's input args cannot be told, every data
  input is returned.
  """
  op_def = op_def_registry.get(node.op)
  if op_def is None or not any(arg.is_ref for arg in op_def.input_arg):
    return []
  inputs = [tensor_name(i) for i in node.input if not i.startswith("^")]
  result = []
  position = 0
  for arg in op_def.input_arg:
    length = _arg_length(node, op_def, arg)
    if length is None:
      return inputs
    if arg.is_ref:
      result.extend(inputs[position : position + length])
    position += length
  return result


class GraphIndex:
  """Node lookups, state ops and dependency closures of one MetaGraphDef."""

  def __init__(self, meta_graph):
    self.meta_graph = meta_graph
    self.nodes = {node.name: node for node in meta_graph.graph_def.node}
    self._data_inputs = {
        name: [tensor_name(i) for i in node.input if not i.startswith("^")]
        for name, node in self.nodes.items()
    }
    self._control_inputs = {
        name: [i[1:] for i in node.input if i.startswith("^")]
        for name, node in self.nodes.items()
    }
    used_ops = {node.op for node in meta_graph.graph_def.node}
    used_ops.update(
        node.op
        for function in meta_graph.graph_def.library.function
        for node in function.node_def
    )
    self.missing_ops = sorted(
        op for op in used_ops if op_def_registry.get(op) is None
    )
    self.state_ops = [
        name for name, node in self.nodes.items() if is_state_op(node.op)
    ]
    function_names = {
        f.signature.name for f in meta_graph.graph_def.library.function
    }
    self.missing_ops = [
        op for op in self.missing_ops if op not in function_names
    ]
    for name in self.state_ops:
      op_def = op_def_registry.get(self.nodes[name].op)
      if len(op_def.output_arg) != 1:
        raise ValueError(
            "Stateful op %s has %d outputs, expected 1."
            % (name, len(op_def.output_arg))
        )
    # (collection key, serialized def, names of its own ops, names it refers to)
    self._contexts = []
    for key in _CONTROL_FLOW_V1_COLLECTIONS:
      if key in meta_graph.collection_def:
        for value in meta_graph.collection_def[key].bytes_list.value:
          self._contexts.append((key, value) + _context_op_names(key, value))
    self._state_meta_graphs = {}
    self._consumers = None
    self._input_dependent = None

  def input_defaults(self, input_infos):
    """Returns the defaults of the signature inputs that callers may leave out.

    An input has a default when its tensor is the output of a
    `PlaceholderWithDefault` node (made by `placeholder_with_default`).

    Args:
      input_infos: map from input key to TensorInfo proto (a SignatureDef's
        `inputs`).

    Returns:
      A dict from the key of each input with a default to its value: a numpy
      array when the default is a constant of the graph, else None.
    """
    defaults = {}
    for key, info in input_infos.items():
      if info.WhichOneof("encoding") != "name":
        continue
      node = self.nodes.get(op_name(info.name))
      if node is None or node.op != "PlaceholderWithDefault":
        continue
      source = self.nodes.get(op_name(node.input[0])) if node.input else None
      value = None
      if source is not None and source.op == "Const":
        value = tf.make_ndarray(source.attr["value"].tensor)
      defaults[key] = value
    return defaults

  def cut_ops(self, fed):
    """Names of the ops all of whose outputs are in `fed` (a set of tensor names).

    A call never runs such an op: every use of it is replaced by a fed value.
    """
    by_op = {}
    for name in fed:
      by_op.setdefault(op_name(name), set()).add(name)
    result = set()
    for name, tensors in by_op.items():
      count = _num_outputs(self.nodes.get(name))
      if count and all("%s:%d" % (name, k) in tensors for k in range(count)):
        result.add(name)
    return result

  def call_closure(self, seeds, fed, cut):
    """Names of the ops a call must import to compute `seeds`.

    The walk goes back along data edges except those carrying a tensor in `fed`
    (a fed tensor is a cut whatever op makes it and however many outputs that
    op has), and along control edges except those from an op in `cut` (those are
    re-pointed at the fed values). Kept v1 control-flow contexts are kept whole
    (importing one looks up every op it names); an op of `cut` that a kept
    context names is returned as a stand-in, to be imported as a Placeholder.

    Args:
      seeds: names of the ops to compute.
      fed: set of tensor names ("op:k") whose values the call provides.
      cut: `cut_ops(fed)`.

    Returns:
      (names of the ops to keep, including the stand-ins; set of indexes of the
      contexts kept; set of stand-in names).
    """
    keep = set()
    stand_ins = set()

    def walk(names):
      pending = [n for n in names if n in self.nodes and n not in keep]
      while pending:
        name = pending.pop()
        if name in keep:
          continue
        keep.add(name)
        pending.extend(
            op_name(t)
            for t in self._data_inputs[name]
            if t not in fed and op_name(t) not in keep
        )
        pending.extend(
            c
            for c in self._control_inputs[name]
            if c not in cut and c not in keep
        )

    walk(s for s in seeds if s not in cut)
    kept_contexts = set()
    changed = bool(self._contexts)
    while changed:
      changed = False
      for index, (_, _, own_names, names) in enumerate(self._contexts):
        if index in kept_contexts or not own_names & keep:
          continue
        kept_contexts.add(index)
        stand_ins |= (names & cut) - keep
        walk(names - cut)
        changed = True
    keep |= stand_ins
    return keep, kept_contexts, stand_ins

  def context_kinds(self, kept_contexts):
    """The collection keys (COND_CONTEXT, WHILE_CONTEXT) of kept v1 contexts."""
    return {self._contexts[index][0] for index in kept_contexts}

  def blocked_ops(self, fed, cut, sources):
    """Names of the ops that need a tensor of an op in `sources` that is not fed.

    Such ops cannot run in a call that feeds `fed`, when the ops of `sources`
    (e.g. the placeholders the call does not feed) cannot run.

    Args:
      fed: set of tensor names the call provides.
      cut: `cut_ops(fed)`.
      sources: names of the ops that cannot run.
    """
    if self._consumers is None:
      self._consumers = {}
      for name in self.nodes:
        for tensor in self._data_inputs[name]:
          self._consumers.setdefault(op_name(tensor), []).append((name, tensor))
        for control in self._control_inputs[name]:
          self._consumers.setdefault(control, []).append((name, None))
    blocked = set()
    pending = list(sources)
    while pending:
      name = pending.pop()
      if name in blocked:
        continue
      blocked.add(name)
      for consumer, tensor in self._consumers.get(name, ()):
        if consumer in blocked:
          continue
        if tensor is None:
          if name not in cut:
            pending.append(consumer)
        elif tensor not in fed:
          pending.append(consumer)
    return blocked

  def unfed_placeholders(self, fed):
    """Names of the Placeholder ops whose output is not in `fed`."""
    return [
        name
        for name, node in self.nodes.items()
        if node.op in PLACEHOLDER_OPS and name + ":0" not in fed
    ]

  def input_dependent_ops(self):
    """Names of the ops that depend on a placeholder (with or without default)."""
    if self._input_dependent is None:
      sources = [
          name
          for name, node in self.nodes.items()
          if node.op in PLACEHOLDER_OPS + ("PlaceholderWithDefault",)
      ]
      self._input_dependent = self.blocked_ops(set(), set(), sources)
    return self._input_dependent

  def variable_defs(self):
    """Returns the VariableDef protos of the GLOBAL_VARIABLES collection."""
    collection = self.meta_graph.collection_def.get(_GraphKeys.GLOBAL_VARIABLES)
    if collection is None:
      return []
    result = []
    for value in collection.bytes_list.value:
      variable_def = variable_pb2.VariableDef()
      variable_def.ParseFromString(value)
      result.append(variable_def)
    return result

  def node_list(self, key):
    """Returns the node_list entries of a collection (empty if absent)."""
    collection = self.meta_graph.collection_def.get(key)
    return list(collection.node_list.value) if collection is not None else []

  def state_meta_graph(self, trainable):
    """Returns the MetaGraphDef that creates a module instance's state.

    It holds the state ops with their initializers, snapshots, table initializers,
    asset constants (and, when `trainable`, the regularization losses that do
    not depend on a signature input), and only the collections an instance
    keeps.
    """
    if trainable in self._state_meta_graphs:
      return self._state_meta_graphs[trainable]
    keys = [
        _GraphKeys.GLOBAL_VARIABLES,
        _GraphKeys.MODEL_VARIABLES,
        _GraphKeys.TABLE_INITIALIZERS,
        _GraphKeys.ASSET_FILEPATHS,
    ]
    keys += list(_CONTROL_FLOW_V1_COLLECTIONS)
    if trainable:
      keys += [_GraphKeys.TRAINABLE_VARIABLES, _GraphKeys.REGULARIZATION_LOSSES]
    seeds = list(self.state_ops)
    for variable_def in self.variable_defs():
      seeds += [
          op_name(variable_def.variable_name),
          op_name(variable_def.initializer_name),
          op_name(variable_def.snapshot_name),
      ]
      if variable_def.initial_value_name:
        seeds.append(op_name(variable_def.initial_value_name))
    input_dependent = self.input_dependent_ops()
    for key in keys:
      if key not in _VARIABLE_COLLECTIONS:
        seeds += [
            op_name(n)
            for n in self.node_list(key)
            if op_name(n) not in input_dependent
        ]
    keep, kept_contexts, _ = self.call_closure(seeds, set(), set())
    meta_graph, _ = self.subgraph(keep, keys, kept_contexts)
    # Losses computed from inputs come with each call that can feed them.
    losses = meta_graph.collection_def.get(_GraphKeys.REGULARIZATION_LOSSES)
    if losses is not None:
      kept = [
          n for n in losses.node_list.value if op_name(n) not in input_dependent
      ]
      del losses.node_list.value[:]
      losses.node_list.value.extend(kept)
      if not kept:
        del meta_graph.collection_def[_GraphKeys.REGULARIZATION_LOSSES]
    self._state_meta_graphs[trainable] = meta_graph
    return meta_graph

  def subgraph(
      self,
      keep,
      collection_keys,
      kept_contexts=(),
      placeholders=None,
  ):
    """Returns a MetaGraphDef with the nodes in `keep` and the named collections.

    Args:
      keep: names of the nodes to keep.
      collection_keys: collections to keep, each filtered to kept nodes.
      kept_contexts: indexes of the v1 control-flow contexts to keep.
      placeholders: dict from kept node name to the DataType of a Placeholder
        that stands in for it (its output is fed through an input map, but a
        kept control-flow context refers to it by name).

    Returns:
      (meta_graph, colocation_refs): colocation_refs maps each node whose
      colocation constraints named a node left out or replaced by a placeholder
      to those names (the constraints are removed from the node;
      the caller re-points those at fed values).
    """
    placeholders = placeholders or {}
    source = self.meta_graph
    result = meta_graph_pb2.MetaGraphDef()
    result.meta_info_def.CopyFrom(source.meta_info_def)
    result.graph_def.versions.CopyFrom(source.graph_def.versions)
    if source.graph_def.HasField("library"):
      result.graph_def.library.CopyFrom(source.graph_def.library)
    colocation_refs = {}
    for node in source.graph_def.node:
      if node.name not in keep:
        continue
      new_node = result.graph_def.node.add()
      if node.name in placeholders:
        new_node.name, new_node.op = node.name, "Placeholder"
        new_node.attr["dtype"].type = placeholders[node.name]
        continue
      new_node.CopyFrom(node)
      if "_class" not in node.attr:
        continue
      groups = list(node.attr["_class"].list.s)
      targets = [g[len(b"loc:@") :].decode("utf-8") for g in groups]
      refs = [t for t in targets if t in placeholders or t not in keep]
      if refs:
        colocation_refs[node.name] = refs
        remaining = [g for g, t in zip(groups, targets) if t not in refs]
        if remaining:
          new_node.attr["_class"].list.s[:] = remaining
        else:
          del new_node.attr["_class"]
    for index in sorted(kept_contexts):
      key, value, _, _ = self._contexts[index]
      result.collection_def[key].bytes_list.value.append(value)
    for key in collection_keys:
      if (
          key not in source.collection_def
          or key in _CONTROL_FLOW_V1_COLLECTIONS
      ):
        continue
      collection = source.collection_def[key]
      kind = collection.WhichOneof("kind")
      if kind == "node_list":
        kept = [n for n in collection.node_list.value if op_name(n) in keep]
        if kept:
          result.collection_def[key].node_list.value.extend(kept)
      elif key in _VARIABLE_COLLECTIONS:
        kept = []
        for value in collection.bytes_list.value:
          variable_def = variable_pb2.VariableDef()
          variable_def.ParseFromString(value)
          if op_name(variable_def.variable_name) in keep:
            kept.append(value)
        if kept:
          result.collection_def[key].bytes_list.value.extend(kept)
      else:
        result.collection_def[key].CopyFrom(collection)
    return result, colocation_refs


def _context_op_names(key, serialized):
  """Returns (its own ops, all ops it names) for a serialized cond or while context.

  Own ops are those that run inside the context (or a nested one); the others
  are values from outside that the context refers to.
  """
  if key == _GraphKeys.COND_CONTEXT:
    context = control_flow_pb2.CondContextDef.FromString(serialized)
  else:
    context = control_flow_pb2.WhileContextDef.FromString(serialized)
  own, names = set(), set()
  pending = [context]
  while pending:
    context = pending.pop()
    if isinstance(context, control_flow_pb2.CondContextDef):
      tensor_names = [context.pred_name, context.pivot_name]
    else:
      tensor_names = [
          context.pivot_name,
          context.pivot_for_pred_name,
          context.pivot_for_body_name,
          context.maximum_iterations_name,
      ]
      tensor_names += list(context.loop_exit_names) + list(
          context.loop_enter_names
      )
    external = context.values_def.external_values
    own.update(
        op_name(n) for n in context.values_def.values if n not in external
    )
    tensor_names += list(context.values_def.values) + list(external.values())
    names.update(op_name(n) for n in tensor_names if n)
    for nested in context.nested_contexts:
      pending.append(getattr(nested, nested.WhichOneof("ctxt")))
  return own, names
