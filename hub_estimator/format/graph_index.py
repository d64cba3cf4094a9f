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


class GraphIndex:
  """Node lookups, state ops and dependency closures of one MetaGraphDef."""

  def __init__(self, meta_graph):
    self.meta_graph = meta_graph
    self.nodes = {node.name: node for node in meta_graph.graph_def.node}
    self._inputs = {
        name: [op_name(i) for i in node.input]
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

  def closure(self, seeds, stops=()):
    """Returns the names of `seeds` and every node they depend on, not crossing `stops`."""
    stops = set(stops)
    seen = set()
    pending = [s for s in seeds if s in self.nodes]
    while pending:
      name = pending.pop()
      if name in seen:
        continue
      seen.add(name)
      if name in stops:
        continue
      pending.extend(i for i in self._inputs[name] if i not in seen)
    return seen

  def blocked_by_unfed_placeholders(self, stops):
    """Names of the nodes that need a placeholder not in `stops` (through non-stops).

    Such nodes cannot run in a call that feeds only `stops`.
    """
    if self._consumers is None:
      self._consumers = {}
      for name, inputs in self._inputs.items():
        for input_name in inputs:
          self._consumers.setdefault(input_name, []).append(name)
    blocked = set()
    pending = [
        name
        for name, node in self.nodes.items()
        if node.op in PLACEHOLDER_OPS and name not in stops
    ]
    while pending:
      name = pending.pop()
      if name in blocked:
        continue
      blocked.add(name)
      pending.extend(
          c
          for c in self._consumers.get(name, ())
          if c not in stops and c not in blocked
      )
    return blocked

  def closure_with_contexts(self, seeds, stops=()):
    """Like `closure`, also keeping whole every v1 control-flow context it touches.

    Importing a cond or while context looks up every op it names, so a context
    is kept with all of its ops or dropped entirely.

    Returns:
      (names of the nodes to keep, set of indexes of the contexts kept,
       names of the nodes the kept contexts refer to).
    """
    keep = self.closure(seeds, stops)
    kept_contexts = set()
    referenced = set()
    changed = bool(self._contexts)
    while changed:
      changed = False
      for index, (_, _, own_names, names) in enumerate(self._contexts):
        if index in kept_contexts or not own_names & keep:
          continue
        kept_contexts.add(index)
        referenced |= names
        keep |= self.closure(names - keep, stops)
        changed = True
    return keep, kept_contexts, referenced

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
    asset constants (and regularization losses when `trainable`), and only the
    collections an instance keeps.
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
    for key in keys:
      if key not in _VARIABLE_COLLECTIONS:
        seeds += [op_name(n) for n in self.node_list(key)]
    keep, kept_contexts, _ = self.closure_with_contexts(seeds)
    meta_graph, _ = self.subgraph(keep, keys, kept_contexts)
    self._state_meta_graphs[trainable] = meta_graph
    return meta_graph

  def subgraph(
      self,
      keep,
      collection_keys,
      kept_contexts=(),
      dropped=(),
      placeholders=None,
  ):
    """Returns a MetaGraphDef with the nodes in `keep` and the named collections.

    Args:
      keep: names of the nodes to keep.
      collection_keys: collections to keep, each filtered to kept nodes.
      kept_contexts: indexes of the v1 control-flow contexts to keep.
      dropped: names of kept nodes to leave out after all, because their outputs
        are fed through an input map.
      placeholders: dict from kept node name to the DataType of a Placeholder
        that stands in for it (its output is fed through an input map, but a
        kept control-flow context refers to it by name).

    Returns:
      (meta_graph, colocation_refs): colocation_refs maps each node whose
      colocation constraints named a dropped or placeholder node to those names
      (the constraints are removed from the node; the caller re-points them).
    """
    dropped = set(dropped)
    placeholders = placeholders or {}
    replaced = dropped | set(placeholders)
    source = self.meta_graph
    result = meta_graph_pb2.MetaGraphDef()
    result.meta_info_def.CopyFrom(source.meta_info_def)
    result.graph_def.versions.CopyFrom(source.graph_def.versions)
    if source.graph_def.HasField("library"):
      result.graph_def.library.CopyFrom(source.graph_def.library)
    colocation_refs = {}
    for node in source.graph_def.node:
      if node.name not in keep or node.name in dropped:
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
      refs = [t for t in targets if t in replaced]
      if refs:
        colocation_refs[node.name] = refs
        remaining = [g for g, t in zip(groups, targets) if t not in replaced]
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
