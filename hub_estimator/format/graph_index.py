"""An index over one graph variant of a module, used to import only what a call needs."""

import tensorflow as tf
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.framework import op_def_registry

from hub_estimator.format import spec as spec_lib

_GraphKeys = tf.compat.v1.GraphKeys
_CONTROL_FLOW_V1_COLLECTIONS = (_GraphKeys.COND_CONTEXT, _GraphKeys.WHILE_CONTEXT)
_VARIABLE_COLLECTIONS = (_GraphKeys.GLOBAL_VARIABLES, _GraphKeys.TRAINABLE_VARIABLES,
                         _GraphKeys.MODEL_VARIABLES)


def op_name(tensor_or_op_name):
  """Returns the op name of "op", "op:1" or "^op"."""
  return tensor_or_op_name.lstrip("^").split(":")[0]


class GraphIndex:
  """Node lookups, state ops and dependency closures of one MetaGraphDef."""

  def __init__(self, meta_graph):
    self.meta_graph = meta_graph
    self.nodes = {node.name: node for node in meta_graph.graph_def.node}
    self._inputs = {name: [op_name(i) for i in node.input]
                    for name, node in self.nodes.items()}
    used_ops = {node.op for node in meta_graph.graph_def.node}
    used_ops.update(node.op for function in meta_graph.graph_def.library.function
                    for node in function.node_def)
    self.missing_ops = sorted(op for op in used_ops if op_def_registry.get(op) is None)
    self.state_ops = [name for name, node in self.nodes.items()
                      if spec_lib.is_state_op(node.op)]
    function_names = {f.signature.name for f in meta_graph.graph_def.library.function}
    self.missing_ops = [op for op in self.missing_ops if op not in function_names]
    for name in self.state_ops:
      op_def = op_def_registry.get(self.nodes[name].op)
      if len(op_def.output_arg) != 1:
        raise ValueError("Stateful op %s has %d outputs, expected 1." %
                         (name, len(op_def.output_arg)))
    # v1 control-flow contexts name ops across the graph; pruning them is not
    # attempted: such graphs are imported whole.
    self.prunable = not any(key in meta_graph.collection_def
                            for key in _CONTROL_FLOW_V1_COLLECTIONS)
    self._state_meta_graphs = {}

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
    keys = [_GraphKeys.GLOBAL_VARIABLES, _GraphKeys.MODEL_VARIABLES,
            _GraphKeys.TABLE_INITIALIZERS, _GraphKeys.ASSET_FILEPATHS]
    keys += list(_CONTROL_FLOW_V1_COLLECTIONS)
    if trainable:
      keys += [_GraphKeys.TRAINABLE_VARIABLES, _GraphKeys.REGULARIZATION_LOSSES]
    if self.prunable:
      seeds = list(self.state_ops)
      for variable_def in self.variable_defs():
        seeds += [op_name(variable_def.variable_name),
                  op_name(variable_def.initializer_name),
                  op_name(variable_def.snapshot_name)]
        if variable_def.initial_value_name:
          seeds.append(op_name(variable_def.initial_value_name))
      for key in keys:
        if key not in _VARIABLE_COLLECTIONS:
          seeds += [op_name(n) for n in self.node_list(key)]
      keep = self.closure(seeds)
    else:
      keep = set(self.nodes)
    meta_graph, _ = self.subgraph(keep, keys)
    self._state_meta_graphs[trainable] = meta_graph
    return meta_graph

  def subgraph(self, keep, collection_keys, dropped=()):
    """Returns a MetaGraphDef with the nodes in `keep` and the named collections.

    Args:
      keep: names of the nodes to keep.
      collection_keys: collections to keep, each filtered to kept nodes.
      dropped: names of kept nodes to leave out after all, because their outputs
        are fed through an input map.

    Returns:
      (meta_graph, colocation_refs): colocation_refs maps each node whose
      colocation constraints named a dropped node to those dropped names (the
      constraints are removed from the node; the caller re-points them).
    """
    dropped = set(dropped)
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
      new_node.CopyFrom(node)
      if "_class" not in node.attr:
        continue
      groups = list(node.attr["_class"].list.s)
      targets = [g[len(b"loc:@"):].decode("utf-8") for g in groups]
      refs = [t for t in targets if t in dropped]
      if refs:
        colocation_refs[node.name] = refs
        remaining = [g for g, t in zip(groups, targets) if t not in dropped]
        if remaining:
          new_node.attr["_class"].list.s[:] = remaining
        else:
          del new_node.attr["_class"]
    for key in collection_keys:
      if key not in source.collection_def:
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
