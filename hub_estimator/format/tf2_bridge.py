"""Converts a TF1 Hub module into a TF2 Reusable SavedModel of the same weights.

TF2's `hub.load` reads a TF1 Hub module for inference only; tensorflow_hub
0.15's `hub.KerasLayer(path, trainable=True)` needs a *Reusable SavedModel*
(tensorflow_hub's "Reusable SavedModels" documentation): a callable object
`obj(inputs, training=False)` with `obj.variables`, `obj.trainable_variables`
and `obj.regularization_losses` (zero-argument functions returning scalars).

How the conversion works, in an eager TF2 context:

1. One `tf.Variable` per module variable (one per partition of a partitioned
   variable), shared by every graph variant. When the module's checkpoint
   holds exactly the variables' bytes (one data shard, a partition stored as
   its slice), the variables are created uninitialized and the TF2
   checkpoint is a copy of the module's data file under TF2 keys
   (`tf2_checkpoint`): no value is read or re-encoded. Otherwise they are
   read from the checkpoint with one `RestoreV2`.
2. Every function of the result (a signature in a graph variant, a
   regularization loss) is one `tf.compat.v1.wrap_function` that imports only
   the nodes it needs (the module's `GraphIndex` prunes the GraphDef first),
   with every variable handle (`VarHandleOp`) mapped onto the captured handle
   of its shared variable and every vocabulary table (`HashTableV2`
   initialized from a text file asset) onto a TF2 `tf.lookup.StaticHashTable`
   whose file is a `tf.saved_model.Asset` (copied into the SavedModel's
   assets/). A signature's function takes the flat components of its inputs
   (a SparseTensor is indices, values, dense_shape) as keyword arguments and
   returns the dict of its outputs; it serves as is in `obj.signatures` (the
   default variant's) and `obj.train_signatures` (the `{"train"}` one's).
3. The `{"train"}` version of a signature also runs the variant's UPDATE_OPS
   (batch-norm moving statistics) as control dependencies of its outputs;
   without a `{"train"}` variant, the training version of `default` is the
   default variant's with its UPDATE_OPS (the inference version when it has
   none).
4. The module's graph functions (v2 control flow, tf.function, Defun) come
   along with the nodes that call them, renamed apart (see `_Functions`).
5. `obj.__call__` is a `tf.function` over the `default` signature's two
   versions, traced for a dict and for a single input, each with
   `training=False` and `True`; `tf.saved_model.save` writes the object
   (`tf2_checkpoint.save`, the same but for the checkpoint, when copying).
"""

import itertools
import os
import uuid
from typing import Dict, List

from absl import logging
import tensorflow as tf
from tensorflow.core.framework import function_pb2
from tensorflow.core.framework import variable_pb2
from tensorflow.python.eager import context
from tensorflow.python.framework import ops
from tensorflow.python.saved_model import save_context

from hub_estimator.format import graph_index as graph_index_lib
from hub_estimator.format import saved_model_io
from hub_estimator.format import spec as spec_lib
from hub_estimator.format import tags as tags_lib
from hub_estimator.format import tf2_checkpoint

_V1 = tf.compat.v1
_GraphKeys = _V1.GraphKeys
_SCOPE = "module"
_REF_VARIABLE_OPS = ("VariableV2", "Variable", "VariableV1")
_TABLE_OPS = ("HashTableV2",)
_TEXT_FILE_INIT_OPS = ("InitializeTableFromTextFileV2",)
_INPUT_OPS = graph_index_lib.PLACEHOLDER_OPS + ("PlaceholderWithDefault",)
_DEFAULT_SIGNATURE = "default"
# Up to this many optional inputs of the default signature, obj(inputs) takes
# any subset of them (2**n traces of __call__ per training value).
_MAX_OPTIONAL_INPUTS = 4
_op_name = graph_index_lib.op_name
_tensor_name = graph_index_lib.tensor_name


class ConversionError(saved_model_io.ModuleFormatError):
  """A TF1 Hub module cannot be converted into a TF2 Reusable SavedModel."""


def _variant_name(tags) -> str:
  return "graph variant %s" % (sorted(tags) or "default (no tags)")


def _check_convertible(index, source: str, tags) -> None:
  """Raises ConversionError for graph features with no TF2 equivalent here."""
  for node in index.meta_graph.graph_def.node:
    if node.op in _REF_VARIABLE_OPS:
      raise ConversionError(
          "Cannot convert module %s to TF2: node %r of its %s is a reference"
          " variable (%s); TF2 functions hold resource variables only."
          " Re-export the module from a graph built with resource variables"
          " (tf.compat.v1.enable_resource_variables())."
          % (source, node.name, _variant_name(tags), node.op)
      )
  library = index.meta_graph.graph_def.library
  bodies = [(None, index.meta_graph.graph_def.node)] + [
      (f.signature.name, f.node_def) for f in library.function
  ]
  for function_name, nodes in bodies:
    for node in nodes:
      if "_gradient_op_type" in node.attr:
        _check_gradient_registered(node, function_name, source, tags)
  for gradient in library.gradient:
    raise ConversionError(
        "Cannot convert module %s to TF2: graph function %r of its %s has a"
        " gradient function %r (Defun's grad_func); TF2 functions ignore the"
        " gradient functions of a function library and would differentiate"
        " %r itself, so fine-tuning would silently use other gradients than"
        " the module's. Use the function without grad_func, or re-export the"
        " module with the gradient expressed in the forward computation"
        " (e.g. tf.stop_gradient)."
        % (
            source,
            gradient.function_name,
            _variant_name(tags),
            gradient.gradient_func,
            gradient.function_name,
        )
    )
  for function in library.function:
    for node in function.node_def:
      if _creates_state(node.op):
        raise ConversionError(
            "Cannot convert module %s to TF2: graph function %r of its %s"
            " creates state itself (node %r is a %s); the converter maps the"
            " module's variables and tables onto TF2 ones only where the"
            " module graph creates them, outside its functions. Create"
            " variables and tables outside tf.function / Defun bodies and"
            " control-flow branches."
            % (
                source,
                function.signature.name,
                _variant_name(tags),
                node.name,
                node.op,
            )
        )


def _check_gradient_registered(node, function_name, source, tags) -> None:
  """Raises ConversionError if a node's gradient override is not registered.

  tf.custom_gradient (in graph mode) and `Graph.gradient_override_map` name a
  gradient function registered in the process that built the graph; a
  Python function cannot travel with the module. In that process (e.g. an
  exporter's, inside the training run) `tf.saved_model.save` stores it with
  the converted model; elsewhere TF would fail to differentiate the call.
  """
  gradient_type = node.attr["_gradient_op_type"].s.decode("utf-8")
  try:
    ops.gradient_registry.lookup(gradient_type)
  except LookupError:
    where = " in graph function %r" % function_name if function_name else ""
    raise ConversionError(
        "Cannot convert module %s to TF2: node %r%s of its %s has the gradient"
        " %r (tf.custom_gradient or gradient_override_map), registered only"
        " in the Python process that built the module. Convert the module"
        " in that process (e.g. with the exporters' tf2_saved_model=True), or"
        " build it without a custom gradient."
        % (source, node.name, where, _variant_name(tags), gradient_type)
    ) from None


def _creates_state(op_type) -> bool:
  """True for ops that make a variable or table (that calls share by name)."""
  if op_type in _REF_VARIABLE_OPS + ("VarHandleOp",):
    return True
  return "Table" in op_type and graph_index_lib.is_state_op(op_type)


def _func_refs(value):
  """The NameAttrLists (function references) in an AttrValue, also nested."""
  funcs = [value.func] if value.HasField("func") else list(value.list.func)
  for func in funcs:
    yield func
    for nested in func.attr.values():
      yield from _func_refs(nested)


def _function_refs(nodes, functions):
  """Names in `functions` that `nodes` (NodeDefs) call or name in attrs."""
  refs = set()
  for node in nodes:
    refs.add(node.op)
    for value in node.attr.values():
      refs.update(func.name for func in _func_refs(value))
  return refs & functions.keys()


class _Functions:
  """A variant's graph functions, renamed apart for importing into TF2.

  TensorFlow keeps one function per name in a process (its eager context):
  importing a function whose name is taken by a different body fails (e.g.
  `cond_true_12` of two modules built by different processes, or of a module
  and the process converting it). Every function of one graph variant gets
  the same fresh suffix, consistently in every reference to it: the op of a
  node that calls it (Defun), `func` attrs (If's then_branch / else_branch,
  While's cond / body, PartitionedCall's f, nested in a function's attrs),
  the bodies of other functions and the library's registered gradients.
  (`_check_convertible` refuses gradient functions, which TF2 would ignore.)
  """

  def __init__(self, library):
    self._library = library
    self._functions = {f.signature.name: f for f in library.function}
    suffix = "_tf2_%s" % uuid.uuid4().hex[:8]
    self._renamed = {name: name + suffix for name in self._functions}
    self._copies = {}  # original name -> renamed FunctionDef

  def _copy(self, name):
    if name not in self._copies:
      copy = function_pb2.FunctionDef()
      copy.CopyFrom(self._functions[name])
      copy.signature.name = self._renamed[name]
      for node in copy.node_def:
        self._rename_node(node)
      self._copies[name] = copy
    return self._copies[name]

  def _rename_node(self, node) -> None:
    node.op = self._renamed.get(node.op, node.op)
    for value in node.attr.values():
      for func in _func_refs(value):
        func.name = self._renamed.get(func.name, func.name)

  def apply(self, graph_def) -> None:
    """Keeps the functions graph_def's nodes reach, renamed, in its library."""
    pending = list(_function_refs(graph_def.node, self._functions))
    registered = self._library.registered_gradients
    pending += [
        r.gradient_func
        for r in registered
        if r.gradient_func in self._functions
    ]
    reached = set()
    while pending:
      name = pending.pop()
      if name in reached:
        continue
      reached.add(name)
      pending.extend(
          _function_refs(self._functions[name].node_def, self._functions)
      )
    library = graph_def.library
    del library.function[:]
    for name in sorted(reached):
      library.function.add().CopyFrom(self._copy(name))
    for entry in library.registered_gradients:
      entry.gradient_func = self._renamed.get(
          entry.gradient_func, entry.gradient_func
      )
    for node in graph_def.node:
      self._rename_node(node)


class _Tables:
  """TF2 vocabulary tables standing in for the module's text-file tables."""

  def __init__(self, source: str):
    self._source = source
    self.by_key = {}  # (filename, dtypes, initializer attrs) -> table

  def table_for(self, nodes, table_node, init_node, tags):
    """Returns the TF2 table for a HashTableV2 node and its initializer node."""
    filename = self._constant_string(nodes, init_node.input[1], tags)
    attr = init_node.attr
    key_dtype = tf.as_dtype(table_node.attr["key_dtype"].type)
    value_dtype = tf.as_dtype(table_node.attr["value_dtype"].type)
    key = (
        filename,
        key_dtype,
        value_dtype,
        attr["key_index"].i,
        attr["value_index"].i,
        attr["vocab_size"].i,
        attr["delimiter"].s,
        attr["offset"].i if "offset" in attr else 0,
    )
    if key not in self.by_key:
      if key[7]:
        raise ConversionError(
            "Cannot convert module %s to TF2: table %r reads %s from line"
            " offset %d; only offset 0 is supported."
            % (self._source, table_node.name, filename, key[7])
        )
      initializer = tf.lookup.TextFileInitializer(
          filename,
          key_dtype,
          key[3],
          value_dtype,
          key[4],
          vocab_size=key[5] if key[5] > 0 else None,
          delimiter=key[6].decode("utf-8") or "\t",
      )
      default = "" if value_dtype == tf.string else -1
      self.by_key[key] = tf.lookup.StaticHashTable(
          initializer, tf.constant(default, value_dtype)
      )
    return self.by_key[key]

  def _constant_string(self, nodes, tensor_name, tags):
    node = nodes.get(_op_name(tensor_name))
    while node is not None and node.op == "Identity":
      node = nodes.get(_op_name(node.input[0]))
    if node is None or node.op != "Const":
      raise ConversionError(
          "Cannot convert module %s to TF2: the vocabulary file name %r of its"
          " %s is computed, not a constant asset path."
          % (self._source, tensor_name, _variant_name(tags))
      )
    return node.attr["value"].tensor.string_val[0].decode("utf-8")


def _table_map(index, tables: _Tables, source: str, tags):
  """Maps HashTableV2 node names to TF2 tables; raises for other tables."""
  nodes = index.nodes
  initializers = {}
  for node in nodes.values():
    if node.op in _TEXT_FILE_INIT_OPS:
      initializers[_op_name(node.input[0])] = node
  result = {}
  for node in nodes.values():
    if "Table" not in node.op or not node.op.endswith(("TableV2", "Table")):
      continue
    if node.op not in _TABLE_OPS:
      raise ConversionError(
          "Cannot convert module %s to TF2: table %r of its %s is a %s; only"
          " hash tables initialized from a vocabulary file convert."
          % (source, node.name, _variant_name(tags), node.op)
      )
    init = initializers.get(node.name)
    if init is None:
      raise ConversionError(
          "Cannot convert module %s to TF2: table %r of its %s is not"
          " initialized from a vocabulary file (InitializeTableFromTextFileV2);"
          " only those convert." % (source, node.name, _variant_name(tags))
      )
    result[node.name] = tables.table_for(nodes, node, init, tags)
  return result


def _variable_sources(spec, variant_tags):
  """Where each variable node (partition) of the variants is in the checkpoint.

  A variable is trainable as the last of `variant_tags` that has it says (its
  TRAINABLE_VARIABLES): the `{"train"}` variant, which Keras trains, as TF1's
  `hub.Module(tags={"train"}, trainable=True)` trains that variant's.

  Returns:
    (sources, trainable): a dict from variable node name (e.g.
    "dense_0/kernel", "emb/part_1") to its `tf2_checkpoint.VariableSource`,
    in sorted-name order, and the set of the trainable ones' names.

  Raises:
    ConversionError: naming a variable missing from the checkpoint.
  """
  source = spec.source
  sources, tags_of = {}, {}
  trainable_in = {}  # node name -> trainable in the last variant that has it
  for tags in variant_tags:
    index = spec.graph_index(tags)
    collection = index.meta_graph.collection_def.get(
        _GraphKeys.TRAINABLE_VARIABLES
    )
    trainable_here = {
        _op_name(variable_pb2.VariableDef.FromString(value).variable_name)
        for value in (collection.bytes_list.value if collection else ())
    }
    for variable_def in index.variable_defs():
      name = _op_name(variable_def.variable_name)
      trainable_in[name] = name in trainable_here
      if name in sources:
        continue
      node = index.nodes[name]
      slice_info = variable_def.save_slice_info_def
      key, slice_spec = name, ""
      offsets, shape = (), ()
      if slice_info.full_name:
        key = slice_info.full_name
        offsets = tuple(slice_info.var_offset)
        shape = tuple(slice_info.var_shape)
        slice_spec = "%s %s" % (
            " ".join("%d" % d for d in slice_info.full_shape),
            ":".join(
                "%d,%d" % (offset, size) for offset, size in zip(offsets, shape)
            ),
        )
      dtype = tf.as_dtype(node.attr["dtype"].type).base_dtype
      sources[name] = tf2_checkpoint.VariableSource(
          key, slice_spec, offsets, shape, dtype
      )
      tags_of[name] = tags
  trainable = {name for name, value in trainable_in.items() if value}
  if not sources:  # a module without variables has no checkpoint
    return {}, trainable
  stored = tf.train.load_checkpoint(
      spec.checkpoint_prefix
  ).get_variable_to_shape_map()
  for name in sorted(sources):
    if sources[name].key not in stored:
      raise ConversionError(
          "Cannot convert module %s to TF2: variable %r of its %s is not in"
          " its checkpoint %s."
          % (
              source,
              sources[name].key,
              _variant_name(tags_of[name]),
              spec.checkpoint_prefix,
          )
      )
  return {name: sources[name] for name in sorted(sources)}, trainable


def _read_values(spec, sources) -> List[tf.Tensor]:
  """The values of `sources` (in their order), read with one RestoreV2."""
  try:
    return tf.raw_ops.RestoreV2(
        prefix=spec.checkpoint_prefix,
        tensor_names=[s.key for s in sources.values()],
        shape_and_slices=[s.slice_spec for s in sources.values()],
        dtypes=[s.dtype for s in sources.values()],
    )
  except tf.errors.OpError as e:
    raise ConversionError(
        "Cannot convert module %s to TF2: reading its checkpoint %s failed: %s"
        % (spec.source, spec.checkpoint_prefix, e.message)
    ) from None


def _create_variables(spec, variant_tags, staging):
  """One TF2 variable per variable node (partition) of the variants.

  When the module's checkpoint can be copied byte for byte into the TF2 one
  (`tf2_checkpoint.CopyPlan`), the variables are created uninitialized (only
  their handles are captured; `tf2_checkpoint.save` copies the values);
  else their values come from the checkpoint in one `RestoreV2` (a partition
  reads its slice of the partitioned variable's full tensor).

  Returns:
    (variables, plan): a dict from variable node name (e.g. "dense_0/kernel",
    "emb/part_1") to its tf.Variable, in sorted-name order, and the
    `CopyPlan` or None.
  """
  sources, trainable = _variable_sources(spec, variant_tags)
  if not sources:
    return {}, None
  plan = None
  if "://" not in staging:
    plan = tf2_checkpoint.CopyPlan.for_module(spec.checkpoint_prefix, sources)
  if plan is not None:
    return {
        name: plan.variable(name, name in trainable) for name in sources
    }, plan
  values = _read_values(spec, sources)
  return {
      name: tf.Variable(value, trainable=name in trainable, name=name)
      for name, value in zip(sources, values)
  }, None


def _restore_values(spec, variant_tags, variables) -> None:
  """Assigns the checkpoint's values to (uninitialized) `variables`."""
  sources, _ = _variable_sources(spec, variant_tags)
  for name, value in zip(sources, _read_values(spec, sources)):
    variables[name].assign(value)


def _component_specs(info) -> List[tf.TensorSpec]:
  """The TensorSpecs of the flat components of a signature value."""
  if not info.is_composite:
    return [tf.TensorSpec(info.get_shape(), info.dtype)]
  return tf.nest.flatten(info.type_spec, expand_composites=True)


class _Variant:
  """One graph variant of the module, over the shared variables and tables."""

  def __init__(self, spec, tags, variables, tables: _Tables):
    self.tags = tags
    self.source = spec.source
    self.index = spec.graph_index(tags)
    library = self.index.meta_graph.graph_def.library
    self._functions = _Functions(library) if library.function else None
    self._state = {}  # tensor name of a state op -> its TF2 stand-in
    for variable_def in self.index.variable_defs():
      name = _op_name(variable_def.variable_name)
      self._state[name + ":0"] = variables[name]
    for name, table in _table_map(
        self.index, tables, spec.source, tags
    ).items():
      self._state[name + ":0"] = table

  def collection(self, key) -> List[str]:
    return self.index.node_list(key)

  def _closure(self, feed_names, seeds):
    fed = set(feed_names) | set(self._state)
    cut = self.index.cut_ops(fed)
    keep, kept_contexts, stand_ins = self.index.call_closure(seeds, fed, cut)
    return fed, cut, keep, kept_contexts, stand_ins

  def unfed_inputs(self, feed_names, tensor_names) -> List[str]:
    """The Placeholders (without default) that `tensor_names` need unfed."""
    seeds = [_op_name(n) for n in tensor_names]
    _, _, keep, _, stand_ins = self._closure(feed_names, seeds)
    return sorted(
        n
        for n in keep - stand_ins
        if self.index.nodes[n].op in graph_index_lib.PLACEHOLDER_OPS
    )

  def input_ops(self, tensor_names) -> List[str]:
    """The placeholders (with or without default) that `tensor_names` need."""
    seeds = [_op_name(n) for n in tensor_names]
    _, _, keep, _, stand_ins = self._closure([], seeds)
    return sorted(
        n for n in keep - stand_ins if self.index.nodes[n].op in _INPUT_OPS
    )

  def runnable(self, op_names, feed_names) -> List[str]:
    """The ops of `op_names` that need no Placeholder outside `feed_names`."""
    fed = set(feed_names) | set(self._state)
    cut = self.index.cut_ops(fed)
    blocked = self.index.blocked_ops(
        fed, cut, self.index.unfed_placeholders(fed)
    )
    return [n for n in op_names if _op_name(n) not in blocked]

  def _check_differentiable(self, what, names) -> None:
    """Raises ConversionError for v1 control flow TF2 cannot differentiate.

    TensorFlow 2.15 builds gradients of neither a v1 tf.while_loop (Enter /
    Exit frames) nor a v1 tf.cond that switches a resource (a variable read
    in a branch, as tf.compat.v1.layers.batch_normalization with a tensor
    `training` makes) inside a function graph: the forward pass runs, but
    every gradient through the converted function (Keras fine-tuning) fails
    with an internal error. (A v1 tf.cond of plain tensors differentiates.)
    """
    for name in sorted(names):
      node = self.index.nodes[name]
      if node.op in ("Enter", "RefEnter"):
        construct = "a v1 tf.while_loop"
      elif (
          node.op in ("Switch", "RefSwitch")
          and node.attr["T"].type == tf.resource.as_datatype_enum
      ):
        construct = "a v1 tf.cond that reads a variable in a branch"
      else:
        continue
      raise ConversionError(
          "Cannot convert module %s to TF2: %s in its %s runs %s (node %r, op"
          " %s); TensorFlow cannot build gradients of v1 control flow like"
          " that inside a TF2 function, so the converted model could not be"
          " fine-tuned (every gradient through it would fail). Re-export the"
          " module with control flow v2 (the TF2 default; do not call"
          " tf.compat.v1.disable_control_flow_v2() or"
          " tf.compat.v1.disable_v2_behavior() while building it)."
          % (
              self.source,
              what,
              _variant_name(self.tags),
              construct,
              node.name,
              node.op,
          )
      )

  def function(
      self, what, feeds, fetches, controls=(), result=None, keywords=None
  ):
    """A graph function computing `fetches` from `feeds`, sharing the state.

    Args:
      what: what the function computes, for error messages.
      feeds: list of (tensor name, TensorSpec): the function's arguments.
      fetches: tensor names: the function's results, in order.
      controls: names of ops (or their tensors) that run with every call.
      result: optional function of the list of fetched tensors that returns
        the function's result (default: the list).
      keywords: optional names of the arguments, one per feed, so that the
        function (also loaded from a SavedModel) takes keyword arguments and
        serves as a signature.

    Returns:
      A `WrappedFunction` of len(feeds) tensors.

    Raises:
      ConversionError: if `fetches` or `controls` need a Placeholder that is
        not fed.
    """
    feed_names = [_tensor_name(n) for n, _ in feeds]
    seeds = [_op_name(n) for n in fetches if _tensor_name(n) not in feed_names]
    seeds += [_op_name(n) for n in controls]
    fed, cut, keep, kept_contexts, stand_ins = self._closure(feed_names, seeds)
    unfed = sorted(
        n
        for n in keep - stand_ins
        if self.index.nodes[n].op in graph_index_lib.PLACEHOLDER_OPS
    )
    if unfed:
      raise ConversionError(
          "Cannot convert module %s to TF2: %s in its %s needs placeholders %s"
          " that are not among its inputs."
          % (self.source, what, _variant_name(self.tags), unfed)
      )
    self._check_differentiable(what, keep - stand_ins)
    placeholders = {}
    for name in stand_ins:
      value = self._state.get(name + ":0")
      placeholders[name] = (
          tf.resource.as_datatype_enum
          if value is not None
          else dict(feeds)[name + ":0"].dtype.as_datatype_enum
      )
    graph_def = self.index.subgraph(
        keep, [], kept_contexts, placeholders=placeholders
    )[0].graph_def
    if self._functions is not None:
      self._functions.apply(graph_def)
    mapped, control_mapped = set(), set()
    for node in graph_def.node:
      for name in node.input:
        if name.startswith("^"):
          if name[1:] in cut:
            control_mapped.add(name[1:])
        elif _tensor_name(name) in fed:
          mapped.add(_tensor_name(name))
    state = self._state
    state_index = {name: k for k, name in enumerate(sorted(state))}
    returned = [n for n in fetches if _tensor_name(n) not in feed_names]
    returned += list(controls)

    def import_graph(*args):
      graph = _V1.get_default_graph()
      by_name = dict(zip(feed_names, args))

      def value(name):
        if name in by_name:
          return by_name[name]
        stand_in = state[name]
        handle = (
            stand_in.handle
            if isinstance(stand_in, tf.Variable)
            else stand_in.resource_handle
        )
        # A valid function argument name ([a-z][a-z0-9_]*), unique in the
        # graph: TF names an unnamed capture by a number, which
        # tf.saved_model.save renames to "unknown_N", logging it.
        return graph.capture(handle, name="state_%d" % state_index[name])

      input_map = {name: value(name) for name in mapped}
      for name in control_mapped:
        fed_output = (
            name + ":0"
            if name + ":0" in fed
            else min(n for n in fed if _op_name(n) == name)
        )
        input_map["^" + name] = value(fed_output)
      imported = _V1.import_graph_def(
          graph_def,
          input_map=input_map,
          return_elements=returned,
          name=_SCOPE,
      )
      by_fetch = dict(zip(returned, imported))
      outputs = [
          tf.identity(by_name[_tensor_name(n)])
          if _tensor_name(n) in feed_names
          else by_fetch[n]
          for n in fetches
      ]
      if controls:
        ops = [
            t.op if isinstance(t, tf.Tensor) else t
            for t in imported[len(imported) - len(controls) :]
        ]
        with tf.control_dependencies(ops):
          outputs = [tf.identity(t) for t in outputs]
      return result(outputs) if result else outputs

    wrapped = _V1.wrap_function(import_graph, [spec for _, spec in feeds])
    if keywords is not None:
      # What tf.function records for its traces: the argument names, which
      # tf.saved_model.save stores and signatures take as keywords.
      wrapped._arg_keywords = list(keywords)  # pylint: disable=protected-access
      wrapped._num_positional_args = len(keywords)  # pylint: disable=protected-access
    return wrapped


class _Signature:
  """One signature: its inference and training functions and their specs."""

  def __init__(self, spec, name, default_variant, train_variant):
    self.name = name
    self.source = spec.source
    self.inputs = spec.get_input_info_dict(name)
    self.outputs = spec.get_output_info_dict(name)
    # The input infos of the training version (the defaults it fills in).
    self.train_inputs = self.inputs
    self.keys = sorted(self.inputs)
    self.output_keys = sorted(self.outputs)
    for key, info in list(self.inputs.items()) + list(self.outputs.items()):
      if not info.is_supported_type:
        raise ConversionError(
            "Cannot convert module %s to TF2: %r of signature %r is a %s; only"
            " Tensor, SparseTensor and RaggedTensor values convert."
            % (spec.source, key, name, info.type_spec)
        )
    self.infer = self._function(default_variant, self.inputs, self.outputs)
    # Why there is no training version, or None.
    self.no_train_reason = None
    if train_variant is None:
      # As hub.Module(trainable=True) of the default variant: its UPDATE_OPS
      # (e.g. batch norm fed a training input) run when training.
      has_updates = default_variant.runnable(
          default_variant.collection(_GraphKeys.UPDATE_OPS),
          [n for key in self.keys for n in self.inputs[key].component_names()],
      )
      self.train = (
          self._function(
              default_variant, self.inputs, self.outputs, with_updates=True
          )
          if has_updates
          else self.infer
      )
      return
    self.train = None
    if name not in spec.get_signature_names(tags_lib.TRAIN):
      self.no_train_reason = (
          "the {'train'} graph variant has no signature %r" % (name)
      )
      return
    train_inputs = spec.get_input_info_dict(name, tags_lib.TRAIN)
    train_outputs = spec.get_output_info_dict(name, tags_lib.TRAIN)
    if _describe(train_inputs) != _describe(self.inputs) or _describe(
        train_outputs
    ) != _describe(self.outputs):
      self.no_train_reason = (
          "signature %r has inputs %s and outputs %s in the default variant"
          " but %s and %s in {'train'}; one TF2 function needs the same ones"
          % (
              name,
              _describe(self.inputs),
              _describe(self.outputs),
              _describe(train_inputs),
              _describe(train_outputs),
          )
      )
      return
    self.train_inputs = train_inputs
    self.train = self._function(
        train_variant, train_inputs, train_outputs, with_updates=True
    )

  def _function(self, variant, inputs, outputs, with_updates=False):
    """Flat input components (keywords x, x_1, ...) -> dict of outputs."""
    feeds, keywords = [], []
    for key in self.keys:
      info = inputs[key]
      specs = _component_specs(info)
      # Named as TF names the components of a composite signature input.
      keywords += [key] + ["%s_%d" % (key, i) for i in range(1, len(specs))]
      feeds += list(zip(info.component_names(), specs))
    taken = sorted({k for k in keywords if keywords.count(k) > 1})
    if taken:
      raise ConversionError(
          "Cannot convert module %s to TF2: the inputs %s of signature %r"
          " need the argument names %s twice in obj.signatures: a composite"
          " input `x` takes `x`, `x_1`, ... for its components (as TF names"
          " them). Rename the inputs of the module so that no input is named"
          " like a component of another."
          % (self.source, self.keys, self.name, taken)
      )
    fetches = [
        n for key in self.output_keys for n in outputs[key].component_names()
    ]
    controls = ()
    if with_updates:
      controls = variant.runnable(
          variant.collection(_GraphKeys.UPDATE_OPS), [n for n, _ in feeds]
      )
    return variant.function(
        "signature %r" % self.name,
        feeds,
        fetches,
        controls,
        result=self.pack_outputs,
        keywords=keywords,
    )

  def specs(self, keys=None) -> Dict[str, tf.TypeSpec]:
    """TypeSpecs of the inputs `keys` (default: all), by input key."""
    result = {}
    for key in self.keys if keys is None else keys:
      info = self.inputs[key]
      if info.is_composite:
        result[key] = info.type_spec
      else:
        result[key] = tf.TensorSpec(info.get_shape(), info.dtype, name=key)
    return result

  def optional(self, key) -> bool:
    """Whether `key` has a constant default in both versions' variants."""
    return all(
        infos[key].has_default and infos[key].default_value is not None
        for infos in (self.inputs, self.train_inputs)
    )

  def required(self) -> List[str]:
    return [k for k in self.keys if not self.optional(k)]

  def flat_inputs(self, inputs, training: bool) -> List[tf.Tensor]:
    """The flat components of a dict of inputs, defaults filled in.

    The defaults are those of the graph variant that runs: a module_fn may
    give an input another default in its `{"train"}` variant (e.g. a dropout
    rate of 0.0 for inference and 0.5 for training), which TF1 uses when the
    input is not fed.

    Raises:
      ValueError: for unknown or missing keys or a value of the wrong kind.
    """
    unknown = sorted(set(inputs) - set(self.keys))
    missing = sorted(
        k for k in self.keys if k not in inputs and not self.optional(k)
    )
    if unknown or missing:
      raise ValueError(
          "Signature %r: unknown inputs %s, missing inputs %s (inputs: %s)."
          % (self.name, unknown, missing, self.keys)
      )
    flat = []
    for key in self.keys:
      info = self.inputs[key]
      if key not in inputs:
        default = (self.train_inputs if training else self.inputs)[key]
        flat.append(tf.constant(default.default_value, info.dtype))
        continue
      value = inputs[key]
      if info.is_composite:
        if not isinstance(value, info.type_spec.value_type):
          raise ValueError(
              "Signature %r: input %r takes a %s; got %s."
              % (
                  self.name,
                  key,
                  info.type_spec.value_type.__name__,
                  type(value).__name__,
              )
          )
        flat += tf.nest.flatten(value, expand_composites=True)
      else:
        flat.append(tf.convert_to_tensor(value, info.dtype))
    return flat

  def pack_outputs(self, flat) -> Dict[str, tf.Tensor]:
    """The dict of outputs made from the flat results of a function."""
    result, start = {}, 0
    for key in self.output_keys:
      info = self.outputs[key]
      count = len(info.component_names())
      parts = list(flat[start : start + count])
      start += count
      if info.is_composite:
        result[key] = tf.nest.pack_sequence_as(
            info.type_spec, parts, expand_composites=True
        )
      else:
        result[key] = parts[0]
    return result

  def run(self, flat, training: bool):
    """The dict of outputs for flat inputs, in the training version or not."""
    return (self.train if training else self.infer)(*flat)


def _describe(infos) -> Dict[str, str]:
  """{key: "float32 (None, 2)" or a composite's TypeSpec} of signature values."""
  return {
      k: (
          repr(info.type_spec)
          if info.is_composite
          else "%s %s" % (info.dtype.name, tuple(info.get_shape().as_list()))
      )
      for k, info in sorted(infos.items())
  }


def _regularization_losses(spec, variant, signatures) -> List:
  """The module's REGULARIZATION_LOSSES as zero-argument graph functions.

  Raises:
    ConversionError: naming every loss that depends on a signature input.
  """
  names = variant.collection(_GraphKeys.REGULARIZATION_LOSSES)
  inputs_of = {}  # placeholder op name -> "input 'x' of signature 's'"
  for signature in signatures.values():
    for key in signature.keys:
      for name in signature.inputs[key].component_names():
        inputs_of.setdefault(
            _op_name(name), "%r of signature %r" % (key, signature.name)
        )
  dependent = []
  for name in names:
    placeholders = variant.input_ops([name])
    if placeholders:
      dependent.append(
          "%s (input %s)"
          % (name, ", ".join(inputs_of.get(p, repr(p)) for p in placeholders))
      )
  if dependent:
    raise ConversionError(
        "Cannot convert module %s to TF2: regularization losses %s depend on"
        " signature inputs (activity regularization). A Reusable SavedModel's"
        " regularization_losses are functions of no arguments, and"
        " hub.KerasLayer takes no other losses from it, so a Keras model would"
        " silently train without them. Regularize weights only in the module"
        " (e.g. kernel_regularizer), or add the activity loss in the Keras"
        " model (e.g. activity_regularizer on a layer after the module)."
        % (spec.source, "; ".join(dependent))
    )

  def as_float32(outputs):
    return tf.cast(outputs[0], tf.float32)

  return [
      variant.function(
          "regularization loss %r" % name, [], [name], result=as_float32
      )
      for name in names
  ]


def export_tf2_saved_model(
    module_path: str, export_path: str, allowed_ops=None
) -> str:
  """Writes a TF2 Reusable SavedModel of a TF1 Hub module's weights.

  The result loads with `tf.saved_model.load(export_path)` and with
  tensorflow_hub 0.15's `hub.KerasLayer(export_path, trainable=True)`:

  - `obj(inputs, training=False)` runs the module's `default` signature:
    `inputs` is a dict keyed like its inputs or, for one required input, that
    value (a Tensor, or a tf.SparseTensor / tf.RaggedTensor where the module
    takes one); inputs with a constant default in both graph variants
    (optional inputs) may be left out: any of them when there are at most
    four, else all, none, or one alone (a warning at conversion names them;
    TF's "Could not find matching concrete function" error lists the accepted
    structures); a left-out input takes the default of the variant that runs
    (`training=True`: the `{"train"}` variant's). The result is the `default`
    output when that is the only output, else the dict of outputs. `training=True` runs the `{"train"}`
    graph variant when the module has one (batch statistics, dropout on) and
    its UPDATE_OPS (e.g. batch-norm moving statistics), else the default
    variant with its UPDATE_OPS (as `hub.Module(trainable=True)` of it has
    them: e.g. batch norm switched by a signature input).
  - `obj.train_signatures[name](**inputs)`, when the module has a `{"train"}`
    graph variant: the training version of every signature that variant has
    with the same inputs and outputs, called like `obj.signatures[name]`
    (inputs as keyword tensors, outputs as a dict) and computed in the
    `{"train"}` variant with its UPDATE_OPS. (Without a `{"train"}` variant,
    training and inference are the same: use `obj.signatures`.)
  - `obj.variables`, `obj.trainable_variables`: one set of variables shared by
    both variants, with the checkpoint's values, trainable as the `{"train"}`
    variant has them (when it has the variable); a partitioned variable is
    one variable per partition (named like the partitions, e.g.
    "emb/part_0"), which the module's graph uses as it did in TF1.
  - `obj.regularization_losses`: the REGULARIZATION_LOSSES of the module's
    `{"train"}` graph variant when it has one (the variant that trains, whose
    losses TF1's `hub.Module(tags={"train"}, trainable=True)` adds; e.g. a
    regularizer only built for training), else of the default variant; each
    a function of no arguments returning a float32 scalar.
  - `obj.signatures[name]` for every signature of the default variant
    (inference; all inputs required as keyword tensors, outputs as a dict).
    There, as in `obj.train_signatures`, a composite input `x` is passed as
    its components, named as TF names them: a SparseTensor as `x` (indices),
    `x_1` (values) and `x_2` (dense_shape), a RaggedTensor as `x`
    (flat_values) and `x_1` (row_splits); composite outputs stay composite.
  - vocabulary files (text-file tables) are copied into `export_path/assets/`.
  - graph functions of the module (v2 control flow such as `tf.cond`,
    `tf.while_loop` and `tf.map_fn` in a TF2-behaving graph, tf.function,
    Defun) are carried over renamed apart (a fresh suffix per graph variant),
    so that modules whose functions share names with each other or with the
    converting process convert and load together.

  Runs eagerly even when called under a `tf.Graph` (an exporter) or with
  eager execution disabled.

  Args:
    module_path: a TF1 Hub module directory (`tfhub_module.pb`, ...).
    export_path: the SavedModel directory to create (must not exist); it
      appears whole (written beside it, then renamed) or not at all.
    allowed_ops: the op policy of `load_module_spec` (None: the default).

  Returns:
    `export_path`.

  Raises:
    tf.errors.NotFoundError: if `module_path` is not a directory.
    ModuleFormatError: if `module_path` is not a valid TF1 Hub module.
    ConversionError: (a ModuleFormatError) if the module uses something that
      has no TF2 equivalent here: reference variables, graph functions whose
      bodies create a variable or table (a VarHandleOp, VariableV2 or hash
      table node inside a tf.function, Defun or control-flow branch), a
      Defun with a grad_func (TF2 ignores a library's gradient functions), a
      custom gradient (tf.custom_gradient, gradient_override_map) not
      registered in this process (only the process that built the module
      has it), tables not read from a vocabulary file, signature values other
      than Tensor, SparseTensor and RaggedTensor, regularization losses that
      depend on signature inputs (activity losses: a Reusable SavedModel
      hands Keras zero-argument losses only, so they would be silently lost;
      the error names every such loss and the inputs it reads), a signature
      needing a placeholder it does not take, a signature input named like
      a component of a composite input (`x_1` beside a sparse `x`), v1
      control flow that TF2 cannot differentiate inside a function (a v1
      tf.while_loop, a v1 tf.cond reading a variable in a branch:
      fine-tuning would fail); or if it has no default graph variant, no
      `default` signature, or a `{"train"}` variant whose `default`
      signature differs from the default variant's.
    FileExistsError: if `export_path` already exists.
  """
  # A throwaway default graph: TF's table code adds its initializers to the
  # default graph's collections even in eager mode, which fails when the
  # caller's graph is finalized (as an exporter's is, inside a training run).
  with tf.Graph().as_default(), context.eager_mode():
    return _export(module_path, export_path, allowed_ops)


def _export(module_path, export_path, allowed_ops):
  if tf.io.gfile.exists(export_path):
    raise FileExistsError(
        "export_tf2_saved_model: %r already exists; it writes a new folder."
        % export_path
    )
  spec = spec_lib.load_module_spec(module_path, allowed_ops=allowed_ops)
  source = spec.source
  tag_sets = [frozenset(t) for t in spec.get_tags()]
  if tags_lib.DEFAULT not in tag_sets:
    raise ConversionError(
        "Cannot convert module %s to TF2: it has no default graph variant (no"
        " tags); variants: %s." % (source, [sorted(t) for t in tag_sets])
    )
  if _DEFAULT_SIGNATURE not in spec.get_signature_names():
    raise ConversionError(
        "Cannot convert module %s to TF2: it has no %r signature (signatures:"
        " %s)."
        % (source, _DEFAULT_SIGNATURE, sorted(spec.get_signature_names()))
    )
  has_train = tags_lib.TRAIN in tag_sets
  variant_tags = [tags_lib.DEFAULT] + ([tags_lib.TRAIN] if has_train else [])
  for tags in variant_tags:
    _check_convertible(spec.graph_index(tags), source, tags)

  # Written beside the target and renamed, so export_path is whole or absent.
  staging = "%s.temp-%d-%s" % (
      export_path.rstrip("/"),
      os.getpid(),
      uuid.uuid4().hex[:8],
  )
  variables, plan = _create_variables(spec, variant_tags, staging)
  tables = _Tables(source)
  default_variant = _Variant(spec, tags_lib.DEFAULT, variables, tables)
  train_variant = (
      _Variant(spec, tags_lib.TRAIN, variables, tables) if has_train else None
  )
  signatures = {
      name: _Signature(spec, name, default_variant, train_variant)
      for name in sorted(spec.get_signature_names())
  }
  default = signatures[_DEFAULT_SIGNATURE]
  if default.train is None:
    raise ConversionError(
        "Cannot convert module %s to TF2: `obj(inputs, training=True)` needs"
        " the default signature in the {'train'} graph variant: %s."
        % (source, default.no_train_reason)
    )
  # Keras adds them when it trains (hub.KerasLayer(trainable=True) calls
  # training=True): the losses of the variant that trains, as TF1's
  # hub.Module(tags={"train"}, trainable=True) adds that variant's.
  losses = _regularization_losses(
      spec, train_variant or default_variant, signatures
  )

  root = tf.__internal__.tracking.AutoTrackable()
  root.variables = list(variables.values())
  root.trainable_variables = [v for v in root.variables if v.trainable]
  root.regularization_losses = losses
  root.tables = list(tables.by_key.values())
  root.__call__ = _call_function(default)
  root.train_signatures = {
      name: signature.train
      for name, signature in signatures.items()
      if has_train and signature.train is not None
  }
  serving = {name: signature.infer for name, signature in signatures.items()}
  try:
    if plan is None:
      tf.saved_model.save(root, staging, signatures=serving)
    else:
      tf2_checkpoint.save(
          root,
          staging,
          serving,
          plan,
          variables,
          restore=lambda: _restore_values(spec, variant_tags, variables),
      )
    tf.io.gfile.rename(staging, export_path)
  finally:
    if tf.io.gfile.exists(staging):
      tf.io.gfile.rmtree(staging)
  return export_path


def _optional_combinations(default: _Signature) -> List[tuple]:
  """The sets of optional inputs that `obj(inputs)` may be given.

  A loaded tf.function runs only the input structures traced before saving
  (TF raises "Could not find matching concrete function" for others), so each
  accepted combination of optional inputs is one trace per `training` value:
  every subset for up to `_MAX_OPTIONAL_INPUTS` optional inputs; above that
  none, all, and each one alone (logged as a warning naming them).
  """
  optional = [k for k in default.keys if default.optional(k)]
  if len(optional) <= _MAX_OPTIONAL_INPUTS:
    return [
        given
        for count in range(len(optional) + 1)
        for given in itertools.combinations(optional, count)
    ]
  combinations = [(), tuple(optional)] + [(key,) for key in optional]
  logging.warning(
      "Signature %r has %d optional inputs %s; the converted model's"
      " obj(inputs) accepts them all, none, or one alone, not other"
      " combinations (every subset is traced for up to %d).",
      default.name,
      len(optional),
      optional,
      _MAX_OPTIONAL_INPUTS,
  )
  return combinations


def _call_function(default: _Signature):
  """`__call__(inputs, training=False)` of the default signature, traced."""

  @tf.function(autograph=False)
  def call(inputs, training=False):
    if not isinstance(inputs, dict):
      required = default.required()
      if len(required) != 1 and len(default.keys) != 1:
        raise ValueError(
            "Signature %r takes a dict of inputs %s; got one value."
            % (default.name, default.keys)
        )
      inputs = {(required or default.keys)[0]: inputs}
    outputs = default.run(default.flat_inputs(inputs, training), training)
    if list(outputs) == ["default"]:
      return outputs["default"]
    return outputs

  required = default.required()
  structures = [
      default.specs(sorted(required + list(given)))
      for given in _optional_combinations(default)
  ]
  if len(required) == 1 or len(default.keys) == 1:
    structures.append(list(default.specs(required or default.keys).values())[0])
  # Traced as `tf.saved_model.save` traces (its save context is part of the
  # cache key), so that saving reuses these traces instead of redoing them.
  with save_context.save_context(tf.saved_model.SaveOptions()):
    for training in (False, True):
      for structure in structures:
        call.get_concrete_function(structure, training=training)
  return call
