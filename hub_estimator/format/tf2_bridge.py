"""Converts a TF1 Hub module into a TF2 Reusable SavedModel of the same weights.

TF2's `hub.load` reads a TF1 Hub module for inference only; tensorflow_hub
0.15's `hub.KerasLayer(path, trainable=True)` needs a *Reusable SavedModel*
(tensorflow_hub's "Reusable SavedModels" documentation): a callable object
`obj(inputs, training=False)` with `obj.variables`, `obj.trainable_variables`
and `obj.regularization_losses` (zero-argument functions returning scalars).

How the conversion works, in an eager TF2 context:

1. One `tf.Variable` per module variable, initialized from the module's
   checkpoint, shared by every graph variant.
2. Each graph variant (the default one, and `{"train"}` when present) is
   imported into a `tf.compat.v1.wrap_function` graph with every variable
   handle (`VarHandleOp`) mapped onto the captured handle of its shared
   variable, and every vocabulary table (`HashTableV2` initialized from a text
   file asset) mapped onto a TF2 `tf.lookup.StaticHashTable` whose file is a
   `tf.saved_model.Asset` (copied into the SavedModel's assets/).
3. Signatures are cut out of those graphs with `WrappedFunction.prune`; the
   `{"train"}` call also runs the variant's UPDATE_OPS (batch-norm moving
   statistics) as control outputs. REGULARIZATION_LOSSES become zero-argument
   functions.
4. `tf.saved_model.save` writes the object; its `__call__` has traces for
   `training=False` (default variant) and `training=True` (`{"train"}`
   variant, or the default one when the module has no `{"train"}` variant).
"""

import os
import uuid
from typing import List

import tensorflow as tf
from tensorflow.core.framework import variable_pb2
from tensorflow.python.eager import context

from hub_estimator.format import saved_model_io
from hub_estimator.format import spec as spec_lib
from hub_estimator.format import tags as tags_lib

_V1 = tf.compat.v1
_SCOPE = "module"
_REF_VARIABLE_OPS = ("VariableV2", "Variable", "VariableV1")
_TABLE_OPS = ("HashTableV2",)
_TEXT_FILE_INIT_OPS = ("InitializeTableFromTextFileV2",)
_DEFAULT_SIGNATURE = "default"


class ConversionError(saved_model_io.ModuleFormatError):
  """A TF1 Hub module cannot be converted into a TF2 Reusable SavedModel."""


def _node_name(tensor_name: str) -> str:
  return tensor_name.split(":")[0].lstrip("^")


def _collection(meta_graph, key: str) -> List[str]:
  if key not in meta_graph.collection_def:
    return []
  return list(meta_graph.collection_def[key].node_list.value)


def _variable_defs(meta_graph) -> List:
  """VariableDef protos of the variant's global variables."""
  key = _V1.GraphKeys.GLOBAL_VARIABLES
  if key not in meta_graph.collection_def:
    return []
  result = []
  for serialized in meta_graph.collection_def[key].bytes_list.value:
    result.append(variable_pb2.VariableDef.FromString(serialized))
  return result


def _trainable_names(meta_graph) -> set:
  key = _V1.GraphKeys.TRAINABLE_VARIABLES
  if key not in meta_graph.collection_def:
    return set()
  return {
      _node_name(variable_pb2.VariableDef.FromString(s).variable_name)
      for s in meta_graph.collection_def[key].bytes_list.value
  }


def _check_convertible(meta_graph, source: str, tags) -> None:
  """Raises ConversionError for graph features with no TF2 equivalent here."""
  variant = "graph variant %s" % (sorted(tags) or "default (no tags)")
  for node in meta_graph.graph_def.node:
    if node.op in _REF_VARIABLE_OPS:
      raise ConversionError(
          "Cannot convert module %s to TF2: node %r of its %s is a reference"
          " variable (%s); TF2 functions hold resource variables only."
          " Re-export the module from a graph built with resource variables"
          " (tf.compat.v1.enable_resource_variables())."
          % (source, node.name, variant, node.op)
      )
  for variable_def in _variable_defs(meta_graph):
    if variable_def.HasField("save_slice_info_def"):
      raise ConversionError(
          "Cannot convert module %s to TF2: variable %r of its %s is one"
          " partition of a partitioned variable; partitioned variables are not"
          " supported by the converter."
          % (source, variable_def.variable_name, variant)
      )
  if meta_graph.graph_def.library.function:
    raise ConversionError(
        "Cannot convert module %s to TF2: its %s defines graph functions (%s);"
        " the converter supports plain graphs only."
        % (
            source,
            variant,
            ", ".join(
                sorted(
                    f.signature.name
                    for f in meta_graph.graph_def.library.function
                )
            ),
        )
    )


class _Tables:
  """TF2 vocabulary tables standing in for the module's text-file tables."""

  def __init__(self, source: str):
    self._source = source
    self.by_key = {}  # (filename, key_index, ...) -> StaticHashTable

  def table_for(self, nodes, table_node, init_node, variant):
    """Returns the TF2 table for a HashTableV2 node and its initializer node."""
    filename = self._constant_string(nodes, init_node.input[1], variant)
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

  def _constant_string(self, nodes, tensor_name, variant):
    node = nodes.get(_node_name(tensor_name))
    while node is not None and node.op == "Identity":
      node = nodes.get(_node_name(node.input[0]))
    if node is None or node.op != "Const":
      raise ConversionError(
          "Cannot convert module %s to TF2: the vocabulary file name %r of its"
          " %s is computed, not a constant asset path."
          % (self._source, tensor_name, variant)
      )
    return node.attr["value"].tensor.string_val[0].decode("utf-8")


def _table_map(meta_graph, tables: _Tables, source: str, tags):
  """Maps HashTableV2 node names to TF2 tables; raises for other tables."""
  variant = "graph variant %s" % (sorted(tags) or "default (no tags)")
  nodes = {node.name: node for node in meta_graph.graph_def.node}
  initializers = {}
  for node in meta_graph.graph_def.node:
    if node.op in _TEXT_FILE_INIT_OPS:
      initializers[_node_name(node.input[0])] = node
  result = {}
  for node in meta_graph.graph_def.node:
    if "Table" not in node.op or not node.op.endswith(("TableV2", "Table")):
      continue
    if node.op not in _TABLE_OPS:
      raise ConversionError(
          "Cannot convert module %s to TF2: table %r of its %s is a %s; only"
          " hash tables initialized from a vocabulary file convert."
          % (source, node.name, variant, node.op)
      )
    init = initializers.get(node.name)
    if init is None:
      raise ConversionError(
          "Cannot convert module %s to TF2: table %r of its %s is not"
          " initialized from a vocabulary file (InitializeTableFromTextFileV2);"
          " only those convert." % (source, node.name, variant)
      )
    result[node.name] = tables.table_for(nodes, node, init, variant)
  return result


class _Variant:
  """One graph variant imported into a wrap_function, over shared state."""

  def __init__(self, spec, tags, variables, tables: _Tables):
    self.tags = tags
    meta_graph = spec.get_meta_graph(tags)
    self._meta_graph = meta_graph
    table_map = _table_map(meta_graph, tables, spec.source, tags)
    handles = {}
    for variable_def in _variable_defs(meta_graph):
      name = _node_name(variable_def.variable_name)
      handles[name] = variables[name]

    def import_graph():
      graph = _V1.get_default_graph()
      input_map = {}
      for name, variable in handles.items():
        input_map[name + ":0"] = graph.capture(variable.handle)
      for name, table in table_map.items():
        input_map[name + ":0"] = graph.capture(table.resource_handle)
      _V1.import_graph_def(
          meta_graph.graph_def, input_map=input_map, name=_SCOPE
      )

    self._wrapped = _V1.wrap_function(import_graph, signature=[])
    self._graph = self._wrapped.graph

  def tensor(self, name):
    return self._graph.get_tensor_by_name("%s/%s" % (_SCOPE, name))

  def op(self, name):
    return self._graph.get_operation_by_name(
        "%s/%s" % (_SCOPE, _node_name(name))
    )

  def prune(self, feed_names, fetch_names, control_names=()):
    """A function of the fed tensors returning the fetched ones (a dict)."""
    feeds = [self.tensor(n) for n in feed_names]
    fetches = {k: self.tensor(n) for k, n in fetch_names.items()}
    controls = [self.op(n) for n in control_names]
    if not controls:
      return self._wrapped.prune(feeds, fetches)
    pruned = self._wrapped.prune(feeds, [fetches, controls])
    return lambda *args: pruned(*args)[0]

  def collection(self, key):
    return _collection(self._meta_graph, key)

  def runnable_from(self, op_names, feed_names):
    """The ops of `op_names` that need no Placeholder outside `feed_names`."""
    nodes = {node.name: node for node in self._meta_graph.graph_def.node}
    fed = {_node_name(n) for n in feed_names}
    result = []
    for op_name in op_names:
      stack, seen, ok = [_node_name(op_name)], set(), True
      while stack and ok:
        name = stack.pop()
        if name in seen or name in fed:
          continue
        seen.add(name)
        node = nodes[name]
        if node.op == "Placeholder":
          ok = False
        stack.extend(_node_name(i) for i in node.input)
      if ok:
        result.append(op_name)
    return result


class _Signature:
  """Calls of one signature in the default and training variants."""

  def __init__(self, spec, name, default_variant, train_variant):
    self.name = name
    self.inputs = spec.get_input_info_dict(name)
    self.outputs = spec.get_output_info_dict(name)
    for key, info in list(self.inputs.items()) + list(self.outputs.items()):
      if info.is_composite:
        raise ConversionError(
            "Cannot convert module %s to TF2: %r of signature %r is a"
            " composite tensor (%s); only dense tensors convert."
            % (spec.source, key, name, info.type_spec)
        )
    self.keys = sorted(self.inputs)
    feed_names = [self.inputs[k].component_names()[0] for k in self.keys]
    fetch_names = {k: v.component_names()[0] for k, v in self.outputs.items()}
    self.infer = default_variant.prune(feed_names, fetch_names)
    # Only the default signature (what `__call__` runs) gets a training
    # version; the other signatures stay inference-only.
    self.train = None
    if name == _DEFAULT_SIGNATURE and train_variant is None:
      self.train = self.infer
    elif name == _DEFAULT_SIGNATURE:
      train_inputs = spec.get_input_info_dict(name, tags_lib.TRAIN)
      train_outputs = spec.get_output_info_dict(name, tags_lib.TRAIN)
      if sorted(train_inputs) != self.keys or sorted(train_outputs) != sorted(
          self.outputs
      ):
        raise ConversionError(
            "Cannot convert module %s to TF2: signature %r has inputs %s and"
            " outputs %s in the default variant but %s and %s in {'train'};"
            " one TF2 call needs the same ones."
            % (
                spec.source,
                name,
                self.keys,
                sorted(self.outputs),
                sorted(train_inputs),
                sorted(train_outputs),
            )
        )
      train_feeds = [train_inputs[k].component_names()[0] for k in self.keys]
      self.train = train_variant.prune(
          train_feeds,
          {k: v.component_names()[0] for k, v in train_outputs.items()},
          train_variant.runnable_from(
              train_variant.collection(_V1.GraphKeys.UPDATE_OPS), train_feeds
          ),
      )

  def specs(self):
    return {
        k: tf.TensorSpec(
            self.inputs[k].get_shape(), self.inputs[k].dtype, name=k
        )
        for k in self.keys
    }

  def feeds(self, inputs):
    """Positional feeds from a dict (or a single tensor), defaults filled."""
    if not isinstance(inputs, dict):
      required = [k for k in self.keys if not self._optional(k)]
      if len(required) != 1 and len(self.keys) != 1:
        raise ValueError(
            "Signature %r takes a dict of inputs %s; got one value."
            % (self.name, self.keys)
        )
      inputs = {(required or self.keys)[0]: inputs}
    unknown = sorted(set(inputs) - set(self.keys))
    missing = sorted(
        k for k in self.keys if k not in inputs and not self._optional(k)
    )
    if unknown or missing:
      raise ValueError(
          "Signature %r: unknown inputs %s, missing inputs %s (inputs: %s)."
          % (self.name, unknown, missing, self.keys)
      )
    return [
        inputs[k]
        if k in inputs
        else tf.constant(self.inputs[k].default_value, self.inputs[k].dtype)
        for k in self.keys
    ]

  def _optional(self, key):
    info = self.inputs[key]
    return info.has_default and info.default_value is not None

  def result(self, outputs):
    if list(outputs) == ["default"]:
      return outputs["default"]
    return outputs


def _loss_function(pruned):
  """A zero-argument tf.function returning the loss as a float32 scalar."""

  def loss():
    return tf.cast(pruned()["loss"], tf.float32)

  return tf.function(loss, input_signature=[])


def _serving_function(signature):
  """The concrete function of `signature` with all inputs, outputs as a dict."""
  specs = signature.specs()

  def serve(*args):
    return signature.infer(*args)

  return tf.function(
      serve, input_signature=[specs[k] for k in signature.keys]
  ).get_concrete_function()


def export_tf2_saved_model(
    module_path: str, export_path: str, allowed_ops=None
) -> str:
  """Writes a TF2 Reusable SavedModel of a TF1 Hub module's weights.

  The result loads with `tf.saved_model.load(export_path)` and with
  tensorflow_hub 0.15's `hub.KerasLayer(export_path, trainable=True)`:

  - `obj(inputs, training=False)` runs the module's `default` signature:
    `inputs` is a dict keyed like its inputs (inputs with a constant default
    may be left out) or, for one required input, that tensor; the result is
    the `default` output tensor when that is the only output, else the dict of
    outputs. `training=True` runs the `{"train"}` graph variant when the
    module has one (batch statistics, dropout on) and its UPDATE_OPS (e.g.
    batch-norm moving statistics), else the default variant.
  - `obj.variables`, `obj.trainable_variables`: one set of variables shared by
    both variants, with the checkpoint's values.
  - `obj.regularization_losses`: the REGULARIZATION_LOSSES of the module, each
    a function of no arguments returning a float32 scalar.
  - `obj.signatures[name]` for every signature of the default variant (all
    inputs required, outputs as a dict).
  - vocabulary files (text-file tables) are copied into `export_path/assets/`.

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
    ModuleFormatError: if `module_path` is not a valid TF1 Hub module.
    ConversionError: (a ModuleFormatError) if the module uses something that
      has no TF2 equivalent here (reference or partitioned variables, graph
      functions, tables not read from a vocabulary file, sparse or composite
      signature inputs, regularization losses that depend on inputs).
    FileExistsError: if `export_path` already exists.
  """
  with context.eager_mode():
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
  has_train = tags_lib.TRAIN in tag_sets
  variants_tags = [tags_lib.DEFAULT] + ([tags_lib.TRAIN] if has_train else [])
  for tags in variants_tags:
    _check_convertible(spec.get_meta_graph(tags), source, tags)

  reader = tf.train.load_checkpoint(spec.checkpoint_prefix)
  variables = {}
  trainable_names = set()
  for tags in variants_tags:
    meta_graph = spec.get_meta_graph(tags)
    trainable_names |= _trainable_names(meta_graph)
    for variable_def in _variable_defs(meta_graph):
      name = _node_name(variable_def.variable_name)
      if name in variables:
        continue
      if not reader.has_tensor(name):
        raise ConversionError(
            "Cannot convert module %s to TF2: variable %r of graph variant %s"
            " is not in its checkpoint %s."
            % (source, name, sorted(tags), spec.checkpoint_prefix)
        )
      variables[name] = None
  ordered = sorted(variables)
  for name in ordered:
    variables[name] = tf.Variable(
        reader.get_tensor(name), trainable=name in trainable_names, name=name
    )

  tables = _Tables(source)
  default_variant = _Variant(spec, tags_lib.DEFAULT, variables, tables)
  train_variant = (
      _Variant(spec, tags_lib.TRAIN, variables, tables) if has_train else None
  )
  if _DEFAULT_SIGNATURE not in spec.get_signature_names():
    raise ConversionError(
        "Cannot convert module %s to TF2: it has no %r signature (signatures:"
        " %s)."
        % (source, _DEFAULT_SIGNATURE, sorted(spec.get_signature_names()))
    )
  signatures = {
      name: _Signature(spec, name, default_variant, train_variant)
      for name in sorted(spec.get_signature_names())
  }
  default = signatures[_DEFAULT_SIGNATURE]

  losses = []
  for loss_name in default_variant.collection(
      _V1.GraphKeys.REGULARIZATION_LOSSES
  ):
    try:
      fn = default_variant.prune([], {"loss": loss_name})
    except (ValueError, tf.errors.OpError) as e:
      raise ConversionError(
          "Cannot convert module %s to TF2: regularization loss %r depends on"
          " signature inputs (an activity loss); TF2 Reusable SavedModels take"
          " zero-argument losses only. Cause: %s" % (source, loss_name, e)
      ) from None
    losses.append(_loss_function(fn))

  @tf.function
  def call(inputs, training=False):
    feeds = default.feeds(inputs)
    fn = default.train if training else default.infer
    return default.result(fn(*feeds))

  root = tf.__internal__.tracking.AutoTrackable()
  root.variables = [variables[n] for n in ordered]
  root.trainable_variables = [v for v in root.variables if v.trainable]
  root.regularization_losses = losses
  root.tables = list(tables.by_key.values())
  root.__call__ = call
  specs = default.specs()
  for training in (False, True):
    call.get_concrete_function(specs, training=training)
    if len([k for k in default.keys if not default._optional(k)]) == 1:
      single = [s for k, s in specs.items() if not default._optional(k)][0]
      call.get_concrete_function(single, training=training)

  serving = {}
  for name, signature in signatures.items():
    serving[name] = _serving_function(signature)
  # Written beside the target and renamed, so export_path is whole or absent.
  staging = "%s.temp-%d-%s" % (
      export_path.rstrip("/"),
      os.getpid(),
      uuid.uuid4().hex[:8],
  )
  try:
    tf.saved_model.save(root, staging, signatures=serving)
    tf.io.gfile.rename(staging, export_path)
  finally:
    if tf.io.gfile.exists(staging):
      tf.io.gfile.rmtree(staging)
  return export_path
