"""Module specs: `create_module_spec`, `add_signature`, `attach_message`, `load_module_spec`."""

import os
import re

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from hub_estimator.format import graph_index as graph_index_lib
from hub_estimator.format import op_policy
from hub_estimator.format import protos
from hub_estimator.format import saved_model_io
from hub_estimator.format import tensor_info as tensor_info_lib
from hub_estimator.format import writer

_SIGNATURES_KEY = ("__hub_estimator_signatures",)
_ATTACHMENTS_KEY = ("__hub_estimator_attachments",)
ATTACHMENTS_COLLECTION = "hub_module_attachments"

_GraphKeys = tf.compat.v1.GraphKeys
SUPPORTED_COLLECTIONS = frozenset([
    _GraphKeys.GLOBAL_VARIABLES,
    _GraphKeys.TRAINABLE_VARIABLES,
    _GraphKeys.MODEL_VARIABLES,
    _GraphKeys.TABLE_INITIALIZERS,
    _GraphKeys.UPDATE_OPS,
    _GraphKeys.REGULARIZATION_LOSSES,
    _GraphKeys.ASSET_FILEPATHS,
    _GraphKeys.COND_CONTEXT,
    _GraphKeys.WHILE_CONTEXT,
    ATTACHMENTS_COLLECTION,
])

_ATTACHMENT_KEY_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")


def add_signature(name=None, inputs=None, outputs=None):
  """Declares a signature of the module being defined; call inside a `module_fn`.

  Args:
    name: signature name; None means "default".
    inputs: dict from input key to Tensor, SparseTensor or RaggedTensor, or a
      single value (keyed "default"). Inputs made with
      `tf.compat.v1.placeholder_with_default` may be left out by callers.
    outputs: dict from output key to value, or a single value (keyed "default").

  Raises:
    ValueError: if a value has an unsupported type or an input is colocated with
      another op.
  """
  name = name or "default"
  inputs = _as_dict(inputs)
  outputs = _as_dict(outputs)
  problems = []
  for kind, values in (("input", inputs), ("output", outputs)):
    for key, value in sorted(values.items()):
      if not isinstance(value, tensor_info_lib.SUPPORTED_TYPES):
        problems.append(
            "  * %s %r has type %s"
            % (kind, key, tensor_info_lib.type_name(value))
        )
  if problems:
    raise ValueError(
        "The inputs and outputs declared in add_signature() for signature %r "
        "must be Tensor, SparseTensor or RaggedTensor values.\n%s"
        % (name, "\n".join(problems))
    )
  for key, value in sorted(inputs.items()):
    for component in tf.nest.flatten(value, expand_composites=True):
      groups = component.op.colocation_groups()
      if groups != [("loc:@" + component.op.name).encode("utf-8")]:
        raise ValueError(
            "A tensor %s used as input %r of signature %r must not be subject"
            " to a tf.colocate_with(y) constraint (its colocation groups are"
            " %s)." % (component.name, key, name, groups)
        )
  graph = tf.compat.v1.get_default_graph()
  graph.add_to_collection(_SIGNATURES_KEY, (name, inputs, outputs))


def _as_dict(values):
  if values is None:
    return {}
  if isinstance(values, dict):
    return dict(values)
  return {"default": values}


def attach_message(key, message):
  """Attaches a protocol message to the module being defined; call inside a `module_fn`.

  Args:
    key: a name matching `[a-zA-Z][a-zA-Z0-9_]*`; a later message with the same
      key replaces an earlier one.
    message: a protocol message instance.

  Raises:
    ValueError: if `key` is malformed.
  """
  if not _ATTACHMENT_KEY_PATTERN.match(key or ""):
    raise ValueError(
        "attach_message() called with malformed key %r: expected "
        "a letter followed by letters, digits or '_'." % key
    )
  graph = tf.compat.v1.get_default_graph()
  graph.add_to_collection(_ATTACHMENTS_KEY, (key, message.SerializeToString()))


def _state_op_colocation_error(graph, tags_text):
  """Names a state op colocated with a non-state op (its rewrite is unknown)."""
  for op in graph.get_operations():
    if not graph_index_lib.is_state_op(op.type):
      continue
    for group in op.colocation_groups():
      other_name = group.decode("utf-8")[len("loc:@") :]
      if other_name == op.name:
        continue
      other = graph.get_operation_by_name(other_name)
      if not graph_index_lib.is_state_op(other.type):
        return (
            "A state-holding node %s of a module's graph (e.g., a Variable op) "
            "must not be subject to a tf.colocate_with(y) constraint unless y "
            "is also a state-holding node (y = %s, an op of type %s; the "
            "colocation groups of %s are %s)%s."
            % (
                op.name,
                other_name,
                other.type,
                op.name,
                [g.decode("utf-8") for g in op.colocation_groups()],
                tags_text,
            )
        )
  return None


def _multi_output_input_colocation_error(graph, signatures, tags_text):
  """Names nodes colocated with a multi-output op that signature inputs come from.

  A call replaces signature inputs tensor by tensor, so a `loc:@op` constraint
  on such an op has no single op to follow once some of its outputs are fed
  (from ops placed anywhere) and the others are not.
  """
  inputs_by_op = {}
  for name, (inputs, _) in sorted(signatures.items()):
    for key, value in sorted(inputs.items()):
      for component in tf.nest.flatten(value, expand_composites=True):
        if len(component.op.outputs) > 1:
          inputs_by_op.setdefault(component.op.name, []).append(
              "%r of signature %r (%s)" % (key, name, component.name)
          )
  if not inputs_by_op:
    return None
  problems = []
  for op in graph.get_operations():
    for group in op.colocation_groups():
      target = group.decode("utf-8")[len("loc:@") :]
      if target != op.name and target in inputs_by_op:
        problems.append(
            "node %s has colocation group loc:@%s, and %s has several outputs"
            " of which signature inputs use some: %s"
            % (op.name, target, target, ", ".join(inputs_by_op[target]))
        )
  if not problems:
    return None
  return (
      "Colocation with an op whose outputs are signature inputs cannot be"
      " rewritten when the module is applied%s: %s. Make those inputs"
      " placeholders, or drop the tf.colocate_with() on that op."
      % (tags_text, "; ".join(problems))
  )


def _meta_graph_from_module_fn(
    module_fn, tags, kwargs, drop_collections, tags_text
):
  graph = tf.Graph()
  with graph.as_default():
    with tf.compat.v1.variable_scope("", use_resource=True):
      module_fn(**kwargs)
    for key in drop_collections:
      del graph.get_collection_ref(key)[:]
    signatures = {}
    for name, inputs, outputs in graph.get_collection(_SIGNATURES_KEY):
      signatures[name] = (inputs, outputs)
    if not signatures:
      raise ValueError(
          "No signatures present%s: call add_signature(...) at least "
          "once in the module_fn." % tags_text
      )
    attachments = {}
    for key, value in graph.get_collection(_ATTACHMENTS_KEY):
      attachments[key] = value
    error = _state_op_colocation_error(
        graph, tags_text
    ) or _multi_output_input_colocation_error(graph, signatures, tags_text)
    if error:
      raise ValueError(error)
    meta_graph = tf.compat.v1.train.export_meta_graph(
        graph=graph, strip_default_attrs=True, clear_devices=False
    )
  meta_graph.meta_info_def.tags[:] = sorted(tags)
  for name, (inputs, outputs) in signatures.items():
    signature_def = meta_graph.signature_def[name]
    for key, value in inputs.items():
      signature_def.inputs[key].CopyFrom(
          tensor_info_lib.build_tensor_info(value)
      )
    for key, value in outputs.items():
      signature_def.outputs[key].CopyFrom(
          tensor_info_lib.build_tensor_info(value)
      )
  if attachments:
    bytes_list = meta_graph.collection_def[ATTACHMENTS_COLLECTION].bytes_list
    for key, value in attachments.items():
      bytes_list.value.append(
          protos.ModuleAttachment(key=key, value=value).SerializeToString()
      )
  return meta_graph


def create_module_spec(module_fn, tags_and_args=None, drop_collections=None):
  """Creates a ModuleSpec from a function that builds the module's graph.

  Args:
    module_fn: builds the module in the default graph: placeholders as inputs,
      variables, tables, and at least one `add_signature` call.
    tags_and_args: list of (tags, kwargs): one graph variant per entry, built by
      `module_fn(**kwargs)` and looked up by exactly `tags`. None means one
      variant with no tags and no arguments.
    drop_collections: names of graph collections to empty before saving (e.g.
      "summaries", "losses").

  Returns:
    A ModuleSpec without a checkpoint: instances use the initializers of
    `module_fn`.

  Raises:
    ValueError: on a variant without signatures, duplicate tag sets, or a
      collection the format cannot store.
  """
  reported_tags = bool(tags_and_args)
  tags_and_args = tags_and_args or [(set(), {})]
  drop_collections = list(drop_collections or [])
  saved_model = saved_model_pb2.SavedModel()
  for tags, kwargs in tags_and_args:
    tags_text = (
        " in the graph for tags %s" % sorted(tags) if reported_tags else ""
    )
    meta_graph = _meta_graph_from_module_fn(
        module_fn, set(tags or ()), kwargs or {}, drop_collections, tags_text
    )
    saved_model.meta_graphs.add().CopyFrom(meta_graph)
  return ModuleSpec(
      saved_model,
      checkpoint_prefix=None,
      source="module_fn %s" % getattr(module_fn, "__name__", module_fn),
  )


def load_module_spec(path, allowed_ops=None):
  """Loads the ModuleSpec of a module directory, vetted by the op policy.

  A module is a graph that runs with the consumer's rights, so by default a
  module whose graph reaches outside it (Python callbacks, file reads other
  than its own assets, file writes or listings, foreign checkpoints, printing
  to files, network, unregistered ops) is refused; see `op_policy`.

  Args:
    path: a module directory (any filesystem `tf.io.gfile` knows).
    allowed_ops: None for the default policy; a list of op type names (e.g.
      `["PyFunc"]`) to allow those ops; `hub_estimator.TRUST_ALL_OPS` to trust
      every op of the module.

  Returns:
    A ModuleSpec whose instances restore their variables from `path`.

  Raises:
    tf.errors.NotFoundError: if `path` does not exist.
    ModuleFormatError: (a ValueError) if it is not a valid TF1 Hub module,
      an asset resolves outside the module (symlink), or a variables data
      file is missing, truncated or corrupt (the message names the file).
    UnsafeModuleError: (a ModuleFormatError) if it has ops that reach outside
      the module and `allowed_ops` does not allow them; the message names each
      op type, node, graph variant and why.
    ValueError: if `allowed_ops` is malformed.
  """
  allowed_ops = op_policy.check_allowed_ops(allowed_ops)
  if isinstance(path, (bytes, os.PathLike)):
    path = tf.compat.as_str_any(os.fspath(path))
  if not isinstance(path, str):
    raise ValueError(
        "load_module_spec() expects a module directory path, got %s."
        % tensor_info_lib.type_name(path)
    )
  if "://" not in path:
    path = os.path.abspath(path)  # graphs keep asset and checkpoint paths
  saved_model_io.read_module_def(path)
  saved_model = saved_model_io.read_saved_model(path)
  op_policy.check(saved_model, path, allowed_ops)
  problem = saved_model_io.find_variables_error(path)
  if problem:
    raise saved_model_io.ModuleFormatError(problem)
  return ModuleSpec(
      saved_model,
      checkpoint_prefix=saved_model_io.variables_prefix(path),
      source=path,
  )


# Collections of a TF1 SavedModel that a module ignores: the global step, and
# the ops that initialize a serving session (a module's instances initialize
# like any graph under tf.compat.v1.train.MonitoredSession). As in
# tensorflow_hub 0.15's create_module_spec_from_saved_model.
_SAVED_MODEL_DROPPED_COLLECTIONS = (
    tf.compat.v1.GraphKeys.GLOBAL_STEP,
    tf.compat.v1.saved_model.constants.LEGACY_INIT_OP_KEY,
    tf.compat.v1.saved_model.constants.MAIN_OP_KEY,
)


def create_module_spec_from_saved_model(
    saved_model_path, drop_collections=None, allowed_ops=None
):
  """Creates a ModuleSpec from a TF1 SavedModel directory.

  Each MetaGraphDef becomes a graph variant (looked up by its tags) and its
  SignatureDefs the module's signatures; variables come from the SavedModel's
  `variables/variables` checkpoint. Its SaverDef, init op and main op are
  ignored: instances initialize as any module does. Exporting the spec writes
  a module, not a SavedModel.

  Args:
    saved_model_path: the SavedModel directory (any `tf.io.gfile`
      filesystem).
    drop_collections: names of further collections to drop (e.g. ones the
      format cannot store, which ModuleSpec otherwise refuses by name).
    allowed_ops: as for `load_module_spec`.

  Returns:
    A ModuleSpec.

  Raises:
    ModuleFormatError: (a ValueError) if `saved_model.pb` is missing or
      corrupt.
    UnsafeModuleError: as for `load_module_spec`.
    ValueError: for collections the format cannot store, naming them.
  """
  allowed_ops = op_policy.check_allowed_ops(allowed_ops)
  path = tf.compat.as_str_any(os.fspath(saved_model_path))
  if "://" not in path:
    path = os.path.abspath(path)
  saved_model = saved_model_io.read_saved_model(path)
  dropped = set(_SAVED_MODEL_DROPPED_COLLECTIONS) | set(drop_collections or ())
  for meta_graph in saved_model.meta_graphs:
    for key in dropped:
      if key in meta_graph.collection_def:
        del meta_graph.collection_def[key]
  op_policy.check(saved_model, path, allowed_ops)
  return ModuleSpec(
      saved_model,
      checkpoint_prefix=saved_model_io.variables_prefix(path),
      source=path,
  )


def _tags_key(tags):
  return frozenset(tags or ())


class ModuleSpec:
  """The definition of a module: its graph variants, signatures and (optionally) weights."""

  def __init__(self, saved_model, checkpoint_prefix, source):
    self._saved_model = saved_model
    self._checkpoint_prefix = checkpoint_prefix
    self._source = source
    self._meta_graphs = {}
    for meta_graph in saved_model.meta_graphs:
      key = frozenset(meta_graph.meta_info_def.tags)
      if key in self._meta_graphs:
        raise ValueError(
            "Tags %s used repeatedly in %s." % (sorted(key), source)
        )
      self._meta_graphs[key] = meta_graph
      unsupported = sorted(
          set(meta_graph.collection_def) - SUPPORTED_COLLECTIONS
      )
      if unsupported:
        raise ValueError(
            "Unsupported collections in graph%s of %s: %s\nUse "
            "create_module_spec(..., drop_collections=[...]) as appropriate."
            % (" for tags %s" % sorted(key) if key else "", source, unsupported)
        )
      if (
          ATTACHMENTS_COLLECTION in meta_graph.collection_def
          and meta_graph.collection_def[ATTACHMENTS_COLLECTION].WhichOneof(
              "kind"
          )
          != "bytes_list"
      ):
        raise ValueError(
            "Collection %r of %s must be a bytes_list."
            % (ATTACHMENTS_COLLECTION, source)
        )
    self._graph_indexes = {}

  @property
  def source(self):
    """Where the spec came from: a module directory or the module_fn's name."""
    return self._source

  @property
  def checkpoint_prefix(self):
    """Checkpoint prefix of the weights, or None for a spec from `module_fn`."""
    return self._checkpoint_prefix

  @property
  def saved_model(self):
    """The SavedModel proto holding every graph variant (do not modify)."""
    return self._saved_model

  def get_tags(self):
    """Returns the tag sets of the graph variants, as a list of frozensets.

    The list is exactly tensorflow_hub 0.15's: `sorted()` over the tag sets in
    the order of the SavedModel's MetaGraphDefs (the order given to
    `create_module_spec`), which keeps that order except where one tag set is
    a subset of another.
    """
    return sorted(
        frozenset(meta_graph.meta_info_def.tags)
        for meta_graph in self._saved_model.meta_graphs
    )

  def get_meta_graph(self, tags=None):
    """Returns the MetaGraphDef of the variant with exactly `tags`.

    Raises:
      KeyError: naming the available tag sets if there is no such variant.
    """
    key = _tags_key(tags)
    meta_graph = self._meta_graphs.get(key)
    if meta_graph is None:
      raise KeyError(
          "Module %s has no graph variant with tags %s; available: %s."
          % (self._source, sorted(key), [sorted(t) for t in self.get_tags()])
      )
    return meta_graph

  def get_signature_names(self, tags=None):
    """Returns the signature names of the variant with `tags`."""
    return list(self.get_meta_graph(tags).signature_def.keys())

  def get_signature_def(self, signature=None, tags=None):
    """Returns the SignatureDef proto of `signature` (None means "default").

    Raises:
      ValueError: naming the available signatures if there is no such signature.
    """
    signature = signature or "default"
    meta_graph = self.get_meta_graph(tags)
    if signature not in meta_graph.signature_def:
      raise ValueError(
          "Signature %r is missing from module %s (tags %s); available "
          "signatures: %s."
          % (
              signature,
              self._source,
              sorted(_tags_key(tags)),
              sorted(meta_graph.signature_def),
          )
      )
    return meta_graph.signature_def[signature]

  def get_input_info_dict(self, signature=None, tags=None):
    """Returns a dict of ParsedTensorInfo describing the signature's inputs.

    Inputs made with `placeholder_with_default` have `has_default` set and
    their constant default in `default_value`.
    """
    inputs = self.get_signature_def(signature, tags).inputs
    return tensor_info_lib.parse_tensor_info_map(
        inputs, self.graph_index(tags).input_defaults(inputs)
    )

  def get_output_info_dict(self, signature=None, tags=None):
    """Returns a dict of ParsedTensorInfo describing the signature's outputs."""
    return tensor_info_lib.parse_tensor_info_map(
        self.get_signature_def(signature, tags).outputs
    )

  def get_attached_message(self, key, message_type, tags=None, required=False):
    """Returns the message attached under `key` to the variant with `tags`.

    Args:
      key: the attachment key.
      message_type: the message class to parse into.
      tags: the graph variant.
      required: raise KeyError instead of returning None when absent.

    Returns:
      A new `message_type` instance, or None if nothing is attached under `key`.
    """
    meta_graph = self.get_meta_graph(tags)
    if ATTACHMENTS_COLLECTION in meta_graph.collection_def:
      for serialized in meta_graph.collection_def[
          ATTACHMENTS_COLLECTION
      ].bytes_list.value:
        attachment = protos.ModuleAttachment.FromString(serialized)
        if attachment.key == key:
          return message_type.FromString(attachment.value)
    if required:
      raise KeyError(
          "No attached message for key %r in graph version %s of module %s."
          % (key, sorted(_tags_key(tags)), self._source)
      )
    return None

  def graph_index(self, tags=None):
    """Returns the (cached) GraphIndex of a variant, used to prune imports."""
    key = _tags_key(tags)
    if key not in self._graph_indexes:
      self._graph_indexes[key] = graph_index_lib.GraphIndex(
          self.get_meta_graph(key)
      )
    return self._graph_indexes[key]

  def export(
      self, path, _sentinel=None, checkpoint_path=None, name_transform_fn=None
  ):  # pylint: disable=invalid-name
    """Writes this module to `path` with weights taken from a checkpoint.

    The variables of the default graph variant are copied straight from the
    checkpoint (no graph of the module is built or run).

    Args:
      path: the module directory to create.
      checkpoint_path: checkpoint holding the module's variables.
      name_transform_fn: maps a module variable name to its checkpoint key;
        None means the names are equal.

    Raises:
      ValueError: if `checkpoint_path` is missing or lacks a variable (or
        stores it with another dtype or shape), or an argument after `path` is
        passed by position.
      KeyError: if the module has no default graph variant.
    """
    if _sentinel is not None:
      raise ValueError("Pass checkpoint_path and name_transform_fn by keyword.")
    if not checkpoint_path:
      raise ValueError("Missing mandatory `checkpoint_path` parameter.")
    name_transform_fn = name_transform_fn or (lambda name: name)
    entries = [
        entry._replace(checkpoint_key=name_transform_fn(entry.module_key))
        for entry in _variable_entries(self.graph_index())
    ]
    copy = writer.CheckpointCopy(entries, "module %s" % self._source)
    try:
      copy.write_module(self, path, checkpoint_path)
    finally:
      copy.close()

  def __repr__(self):
    return "<hub_estimator.ModuleSpec %s tags=%s>" % (
        self._source,
        [sorted(t) for t in self.get_tags()],
    )


def _variable_entries(index):
  """The VariableEntry of every variable (or partition) of a graph variant.

  Keys are module-relative names (a partitioned variable's full name), as in
  `Module.variable_map` and the module's `variables/` checkpoint.
  """
  entries = []
  for variable_def in index.variable_defs():
    node = index.nodes[graph_index_lib.op_name(variable_def.variable_name)]
    dtype = tf.as_dtype(node.attr["dtype"].type).base_dtype
    shape = tf.TensorShape(node.attr["shape"].shape)
    shape = tuple(shape.as_list()) if shape.rank is not None else (None,)
    slice_info = variable_def.save_slice_info_def
    if slice_info.full_name:
      key = slice_info.full_name
      full_shape = tuple(slice_info.full_shape)
      slice_spec = "%s %s" % (
          " ".join("%d" % d for d in slice_info.full_shape),
          ":".join(
              "%d,%d" % (offset, size)
              for offset, size in zip(
                  slice_info.var_offset, slice_info.var_shape
              )
          ),
      )
    else:
      key, full_shape, slice_spec = node.name, shape, ""
    entries.append(
        writer.VariableEntry(key, key, slice_spec, dtype, full_shape)
    )
  return sorted(entries, key=lambda e: (e.module_key, e.slice_spec))


def copy_meta_graph(meta_graph):
  """Returns a deep copy of a MetaGraphDef."""
  result = meta_graph_pb2.MetaGraphDef()
  result.CopyFrom(meta_graph)
  return result
