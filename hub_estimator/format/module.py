"""`Module`: instantiating a module spec in a consumer graph and applying its signatures."""

import contextlib
import inspect
import os
import weakref

from absl import logging
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2
from tensorflow.python.framework import meta_graph as meta_graph_lib

from hub_estimator.format import graph_index as graph_index_lib
from hub_estimator.format import saved_model_io
from hub_estimator.format import spec as spec_lib
from hub_estimator.format import tensor_info as tensor_info_lib
from hub_estimator.format import writer

_GraphKeys = tf.compat.v1.GraphKeys
_UPDATE_OPS = _GraphKeys.UPDATE_OPS
_APPLY_COLLECTIONS = [_GraphKeys.ASSET_FILEPATHS]


def as_module_spec(spec, allowed_ops=None):
  """Returns `spec` itself, or the spec loaded from a module directory path.

  Args:
    spec: a ModuleSpec or a module directory path.
    allowed_ops: for a path, as in `load_module_spec`; must be None for a
      ModuleSpec (it was vetted when loaded, or built in-process).

  Raises:
    ValueError: for another type, or `allowed_ops` given with a ModuleSpec.
    UnsafeModuleError: as in `load_module_spec`.
  """
  if isinstance(spec, spec_lib.ModuleSpec):
    if allowed_ops is not None:
      raise ValueError(
          "allowed_ops=%r applies when loading a module from a path; %s is a"
          " ModuleSpec already (pass allowed_ops to load_module_spec instead)."
          % (allowed_ops, spec.source)
      )
    return spec
  if isinstance(spec, (str, bytes, os.PathLike)):
    return spec_lib.load_module_spec(spec, allowed_ops=allowed_ops)
  raise ValueError(
      "Unknown module spec type: %s (expected a ModuleSpec or a module "
      "directory path)."
      % tensor_info_lib.type_name(spec)
  )


def _prefix_shared_names(graph_def, scope):
  for node in graph_def.node:
    shared_name = node.attr.get("shared_name")
    if shared_name is not None and shared_name.s:
      node.attr["shared_name"].s = ("%s/" % scope).encode(
          "utf-8"
      ) + shared_name.s


class Module:
  """A module instantiated in the current graph: its own variables, tables and assets.

  Calls apply a signature; every call shares the instance's state. Each instance
  made from one spec has separate state (scopes `module`, `module_1`, ...).

  The state lives in the outermost graph that owns variables (see
  `_state_owner_graph`), even when the Module is made inside a function graph
  (tf.function, Defun, wrap_function, v2 control flow) or a TPU replicate
  context; calls may be made in that graph or any function graph inside it, and
  capture the state.
  """

  def __init__(
      self, spec, trainable=False, name="module", tags=None, allowed_ops=None
  ):
    """Instantiates a module in the default graph.

    Args:
      spec: a ModuleSpec or the path of a module directory.
      trainable: whether the module's variables join TRAINABLE_VARIABLES and its
        REGULARIZATION_LOSSES and UPDATE_OPS join the consumer graph's.
      name: the variable scope to create the state in (made unique).
      tags: the graph variant to use; None means the variant without tags.
      allowed_ops: when `spec` is a path, the op types to allow beyond the
        default op policy, or `hub_estimator.TRUST_ALL_OPS` (see
        `load_module_spec`); None means the default policy.

    Raises:
      RuntimeError: in eager mode, or if the name scope is already taken.
      ValueError: for an unknown spec type or tag set.
      UnsafeModuleError: if the module at `spec` has ops the op policy
        refuses.
    """
    if tf.executing_eagerly():
      raise RuntimeError(
          "hub_estimator.Module needs graph mode (TF1): call it inside `with"
          " tf.Graph().as_default():` or after"
          " tf.compat.v1.disable_eager_execution()."
      )
    self._spec = as_module_spec(spec, allowed_ops)
    self._tags = set(tags or [])
    if self._tags not in self._spec.get_tags():
      raise ValueError(
          "No such graph variant: tags=%s in module %s; available: %s."
          % (
              sorted(self._tags),
              self._spec.source,
              [sorted(t) for t in self._spec.get_tags()],
          )
      )
    self._trainable = trainable
    self._graph = _state_owner_graph()
    self._index = self._spec.graph_index(self._tags)
    if self._index.missing_ops:
      raise tf.errors.NotFoundError(
          None,
          None,
          "Module %s uses ops that this TensorFlow does not have: %s. Load the"
          " library that registers them (tf.load_op_library) or use the"
          " TensorFlow version the module was made with (%s)."
          % (
              self._spec.source,
              self._index.missing_ops,
              self._index.meta_graph.meta_info_def.tensorflow_version
              or "unknown",
          ),
      )
    self._signature_infos = {}
    self._state_tensors = {}
    self._ref_reads = {}  # ref-typed state tensor name -> its read
    self._variable_map = {}
    with _in_state_owner_graph(self._graph):
      self._scope = self._claim_state_scope(name)
      self._name = self._scope.split("/")[-1]
      self._create_state()
    _warn_if_made_again_by_a_retrace(self._graph, self._scope, name)

  def _claim_state_scope(self, name):
    """Returns a new absolute scope for the state, unique as variable and name scope.

    The scope is made inside the current variable scope, whatever the current
    name scope is (a Keras layer or a `tf.name_scope` around the call).
    """
    parent = tf.compat.v1.get_variable_scope().name
    with self._graph.name_scope(parent + "/" if parent else None):
      with tf.compat.v1.variable_scope(
          None, default_name=name, auxiliary_name_scope=False
      ) as variable_scope:
        scope = variable_scope.name
      name_scope = self._graph.unique_name(name, mark_as_used=True)
    if name_scope != scope:
      raise RuntimeError(
          "variable_scope %s/ was unused but the corresponding "
          "name_scope was already taken." % scope
      )
    return scope

  def _create_state(self):
    state_meta_graph = spec_lib.copy_meta_graph(
        self._index.state_meta_graph(self._trainable)
    )
    _prefix_shared_names(state_meta_graph.graph_def, self._scope)
    with self._graph.name_scope(None):
      meta_graph_lib.import_scoped_meta_graph_with_return_elements(
          state_meta_graph, import_scope=self._scope + "/"
      )
      prefix = self._scope + "/"
      for name in self._index.state_ops:
        self._state_tensors[name] = self._graph.get_tensor_by_name(
            prefix + name + ":0"
        )
      variables = tf.compat.v1.global_variables(prefix)
      for variable in variables:
        if not hasattr(variable, "_distribute_strategy"):
          # Variables rebuilt from a VariableDef lack the attribute that Keras
          # optimizers consult; they belong to no distribution strategy.
          variable._distribute_strategy = None  # pylint: disable=protected-access
      self._variable_map = _variable_map(variables, prefix)
      if self._spec.checkpoint_prefix and self._variable_map:
        self._init_from_module_checkpoint()

  def _init_from_module_checkpoint(self):
    checkpoint = self._spec.checkpoint_prefix
    if not tf.io.gfile.exists(checkpoint + ".index"):
      raise saved_model_io.ModuleFormatError(
          "Module %s is missing its variables: %s.index does not exist."
          % (self._spec.source, checkpoint)
      )
    missing_shards = _missing_data_shards(checkpoint)
    if missing_shards:
      raise saved_model_io.ModuleFormatError(
          "Module %s is missing variable data: %s."
          % (self._spec.source, ", ".join(missing_shards))
      )
    try:
      stored = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as e:
      raise saved_model_io.ModuleFormatError(
          "Cannot read the variables of module %s from %s: %s"
          % (self._spec.source, checkpoint, e)
      ) from None
    problems = []
    for key, value in sorted(self._variable_map.items()):
      expected = _full_shape(value)
      if key not in stored:
        problems.append("%s is missing" % key)
      elif list(stored[key]) != expected:
        problems.append(
            "%s has shape %s, expected %s" % (key, stored[key], expected)
        )
    if problems:
      raise saved_model_io.ModuleFormatError(
          "Variables checkpoint %s of module %s does not fit its graph: %s."
          % (checkpoint, self._spec.source, "; ".join(problems))
      )
    tf.compat.v1.train.init_from_checkpoint(
        checkpoint, dict(self._variable_map)
    )

  @property
  def spec(self):
    """The ModuleSpec this instance was made from."""
    return self._spec

  @property
  def name(self):
    """The absolute variable scope of this instance's state."""
    return self._scope

  @property
  def variable_map(self):
    """Dict from module-relative variable name to Variable (or list of partitions)."""
    return dict(self._variable_map)

  @property
  def variables(self):
    """All variables of the instance, partitions flattened, in sorted-name order."""
    result = []
    for _, value in sorted(self._variable_map.items()):
      result.extend(value if isinstance(value, list) else [value])
    return result

  def get_signature_names(self):
    """Signature names of this instance's graph variant."""
    return self._spec.get_signature_names(self._tags)

  def get_input_info_dict(self, signature=None):
    """ParsedTensorInfo of a signature's inputs (None means "default")."""
    return self._spec.get_input_info_dict(signature, self._tags)

  def get_output_info_dict(self, signature=None):
    """ParsedTensorInfo of a signature's outputs (None means "default")."""
    return self._spec.get_output_info_dict(signature, self._tags)

  def get_attached_message(self, key, message_type, required=False):
    """The message attached under `key` to this instance's graph variant, or None."""
    return self._spec.get_attached_message(
        key, message_type, tags=self._tags, required=required
    )

  def _signature_info(self, signature, tags):
    key = (signature, frozenset(tags))
    if key not in self._signature_infos:
      inputs = self._spec.get_input_info_dict(signature, tags)
      outputs = self._spec.get_output_info_dict(signature, tags)
      optional = [key for key, info in inputs.items() if info.has_default]
      self._signature_infos[key] = (inputs, outputs, optional)
    return self._signature_infos[key]

  def _variant_index(self, tags):
    """The GraphIndex of variant `tags`, checked to run on this instance's state.

    Raises:
      ValueError: no such variant, or its state ops differ from the instance's.
    """
    tags = set(tags or ())
    if tags == self._tags:
      return self._index
    if tags not in self._spec.get_tags():
      raise ValueError(
          "No such graph variant: tags=%s in module %s; available: %s."
          % (
              sorted(tags),
              self._spec.source,
              [sorted(t) for t in self._spec.get_tags()],
          )
      )
    index = self._spec.graph_index(tags)
    problems = ["uses ops missing here: %s" % op for op in index.missing_ops]
    for name in sorted(index.state_ops):
      mine = self._index.nodes.get(name)
      theirs = index.nodes[name]
      if mine is None or name not in self._state_tensors:
        problems.append("%s is missing" % name)
        continue
      for attr in ("dtype", "shape"):
        if mine.op != theirs.op or mine.attr.get(attr) != theirs.attr.get(attr):
          problems.append("%s differs (op or %s)" % (name, attr))
          break
    if problems:
      raise ValueError(
          "Graph variant tags=%s of module %s cannot run on the state of an"
          " instance made with tags=%s: %s."
          % (
              sorted(tags),
              self._spec.source,
              sorted(self._tags),
              "; ".join(problems),
          )
      )
    return index

  def call_variant(self, tags, inputs=None, signature=None, as_dict=None):
    """Applies a signature of another graph variant to this instance's state.

    E.g. an instance made with `tags={"train"}` and `trainable=True` applies
    its default (inference) variant with `call_variant(set(), x)`: the same
    variables, read with the inference graph (no dropout, batch-norm moving
    statistics, no UPDATE_OPS). This call adds no REGULARIZATION_LOSSES (the
    instance did, once, when made). Trainability of the instance still
    decides whether UPDATE_OPS of variant `tags` join the consumer graph.

    Args:
      tags: the graph variant whose signature to apply; None or an empty set
        means the variant without tags.
      inputs: as for `__call__`.
      signature: as for `__call__`.
      as_dict: as for `__call__`.

    Returns:
      As `__call__`.

    Raises:
      ValueError: no such variant, or it needs state (variables, tables) that
        the instance does not have, of the same op, dtype and shape; and as
        `__call__` does.
      RuntimeError, TypeError: as `__call__` does.
    """
    return self._call(
        self._variant_index(tags), set(tags or ()), inputs, signature, as_dict
    )

  def __call__(self, inputs=None, _sentinel=None, signature=None, as_dict=None):  # pylint: disable=invalid-name
    """Applies a signature of the module.

    Args:
      inputs: a dict from input key to value, or one value for a one-input
        signature. Inputs declared with a default may be left out.
      _sentinel: forces the other arguments to be passed by keyword.
      signature: the signature name; None means "default".
      as_dict: return every output in a dict; otherwise the "default" output.

    Returns:
      The "default" output, or a dict of all outputs when `as_dict` is true.

    A call made inside a branch or loop body (v1 or v2 control flow) or a
    function graph of a trainable instance runs its UPDATE_OPS with its
    outputs instead of adding them to the UPDATE_OPS collection (so they run
    whenever some output value is computed, and only then), and brings no
    input-dependent REGULARIZATION_LOSSES (they would have no value outside;
    a warning names them). Inside a function graph, state held in ref
    variables (VariableV2) is read from a snapshot taken in the state's graph.

    Raises:
      RuntimeError: if called outside the graph that holds the instance's
        state and the function graphs built inside it, or inside a function
        graph when the call would write ref-variable state (e.g. an Assign
        among the UPDATE_OPS of a {"train"} variant).
      ValueError: for an unknown signature.
      TypeError: for inputs of wrong keys, kinds, dtypes or shapes.
    """
    if _sentinel is not None:
      raise ValueError("Pass signature and as_dict by keyword.")
    return self._call(self._index, self._tags, inputs, signature, as_dict)

  def _call(self, index, tags, inputs, signature, as_dict):
    if not _is_within(tf.compat.v1.get_default_graph(), self._graph):
      raise RuntimeError(
          "Module must be applied in the graph it was instantiated for (or a"
          " function graph inside it: a tf.cond or tf.while_loop branch,"
          " tf.map_fn, tf.function, wrap_function)."
      )
    signature = signature or "default"
    input_infos, output_infos, optional = self._signature_info(signature, tags)
    values = tensor_info_lib.pack_inputs(
        inputs, input_infos, signature, optional
    )
    tensor_info_lib.check_input_keys(values, input_infos, optional, signature)
    feed = {}
    for key, value in values.items():
      value = tensor_info_lib.convert_input(
          key, value, input_infos[key], signature
      )
      values[key] = value
      components = tf.nest.flatten(value, expand_composites=True)
      feed.update(zip(input_infos[key].component_names(), components))
    if not as_dict and "default" not in output_infos:
      raise TypeError(
          "There is no output named 'default' in signature %r (outputs: %s). "
          "Use as_dict=True." % (signature, sorted(output_infos))
      )
    try:
      outputs = self._apply(index, signature, feed, output_infos)
    except (KeyError, ValueError) as e:
      # The signature and inputs were checked above: what fails here is the
      # module's own graph (a dangling input, a bad constant, a signature
      # naming a tensor the graph lacks).
      raise saved_model_io.ModuleFormatError(
          "Module %s: graph variant tags=%s cannot be applied for signature "
          "%r; its saved_model.pb is malformed: %s: %s"
          % (self._spec.source, sorted(tags), signature, type(e).__name__, e)
      ) from e
    return outputs if as_dict else outputs["default"]

  def _apply(self, index, signature, feed, output_infos):
    # Every value the call provides, by module tensor name: the signature
    # inputs, and the instance's state in place of the module's state ops.
    values = {
        graph_index_lib.tensor_name(name): value for name, value in feed.items()
    }
    for name, tensor in self._state_tensors.items():
      values.setdefault(name + ":0", tensor)
    fed = set(values)
    cut = index.cut_ops(fed)
    value_of_op = {}  # a value fed for each cut op, its output 0 if fed
    for name in sorted(values, reverse=True):
      if graph_index_lib.op_name(name) in cut:
        value_of_op[graph_index_lib.op_name(name)] = values[name]
    seeds = [
        graph_index_lib.op_name(name)
        for info in output_infos.values()
        for name in info.component_names()
        if graph_index_lib.tensor_name(name) not in fed
    ]
    # Each call registers the module's asset paths again, as tensorflow_hub's
    # calls do (exporters of the consumer graph read ASSET_FILEPATHS).
    seeds += [
        graph_index_lib.op_name(n)
        for n in index.node_list(_GraphKeys.ASSET_FILEPATHS)
    ]
    graph = tf.compat.v1.get_default_graph()
    inside_branch = _inside_branch(graph, self._graph)
    collections = {}
    if self._trainable:
      collections = self._runnable_collections(index, fed, cut)
      if inside_branch:  # a loss made there has no value outside
        left_out = collections.pop(_GraphKeys.REGULARIZATION_LOSSES, None)
        if left_out:
          logging.warning(
              "Module %s, signature %r: the call is made inside %s (a branch,"
              " loop body or function graph), so its %d input-dependent"
              " REGULARIZATION_LOSSES (%s) are left out: they would have no"
              " value outside it. Make the call outside the branch to have"
              " them.",
              self._spec.source,
              signature,
              graph.name if graph is not self._graph else "a v1 cond or while",
              len(left_out),
              ", ".join(left_out),
          )
      for names in collections.values():
        seeds += [graph_index_lib.op_name(n) for n in names]
    keep, kept_contexts, stand_ins = index.call_closure(seeds, fed, cut)
    if self._trainable and graph.building_function:
      self._warn_of_v1_control_flow(
          graph, signature, index.context_kinds(kept_contexts)
      )
    # Fed ops that a kept control-flow context names stay, as placeholders.
    placeholders = {}
    for name in stand_ins:
      placeholders[name] = (
          tf.dtypes.resource.as_datatype_enum
          if name in self._state_tensors
          else values[name + ":0"].dtype.as_datatype_enum
      )
    apply_meta_graph, colocation_refs = index.subgraph(
        keep, _APPLY_COLLECTIONS, kept_contexts, placeholders=placeholders
    )
    for key, names in collections.items():
      names = [n for n in names if graph_index_lib.op_name(n) in keep]
      if names:
        apply_meta_graph.collection_def[key].node_list.value.extend(names)

    input_map = {}
    for node in apply_meta_graph.graph_def.node:
      for name in node.input:
        if name.startswith("^"):
          if name[1:] in cut:
            input_map[name] = value_of_op[name[1:]]  # a tensor of its op
        else:
          name = graph_index_lib.tensor_name(name)
          if name in fed:
            input_map[name] = values[name]
    groups_by_name = {
        name: value_of_op[name].op.colocation_groups()
        for names in colocation_refs.values()
        for name in names
        if name in cut
    }
    self._check_no_ref_writes(graph, input_map, apply_meta_graph, signature)
    input_map = {k: self._captured(graph, v) for k, v in input_map.items()}
    context = graph._get_control_flow_context()  # pylint: disable=protected-access
    if context is not None:
      input_map = {
          k: v if k.startswith("^") else context.AddValue(v)
          for k, v in input_map.items()
      }

    apply_name = "%s_apply_%s" % (self._name, signature.replace(":", "_"))
    with tf.compat.v1.name_scope(apply_name) as scope:
      _prefix_shared_names(apply_meta_graph.graph_def, scope.rstrip("/"))
      with graph.name_scope(None):  # `scope` is absolute already
        meta_graph_lib.import_scoped_meta_graph_with_return_elements(
            apply_meta_graph, import_scope=scope, input_map=input_map
        )
    _colocate_with_fed_tensors(graph, scope, colocation_refs, groups_by_name)

    def get_tensor(name):
      if graph_index_lib.tensor_name(name) in fed:
        return self._captured(graph, values[graph_index_lib.tensor_name(name)])
      return graph.get_tensor_by_name(scope + name)

    outputs = {
        key: info.build(get_tensor) for key, info in output_infos.items()
    }
    if _UPDATE_OPS in collections and inside_branch:
      outputs = _run_with_outputs(
          graph, [scope + name for name in collections[_UPDATE_OPS]], outputs
      )
    return outputs

  def _captured(self, graph, tensor):
    """`tensor` as seen from `graph`, a function graph inside `tensor.graph`.

    Function graphs take no ref-typed values: a ref-typed state tensor (a
    VariableV2, as TF1 code without resource variables makes them) is read
    in the graph that owns it, as TF1 code reading such a variable inside a
    function graph does, and the read is captured.
    """
    if tensor.graph is not graph and _is_ref(tensor):
      read = self._ref_reads.get(tensor.name)
      if read is None:
        with _in_state_owner_graph(self._graph):
          with (
              self._graph.name_scope(None),
              tf.compat.v1.colocate_with(tensor.op),
          ):
            read = tf.identity(
                tensor, name=tensor.op.name + "/read_for_function_graphs"
            )
        self._ref_reads[tensor.name] = read
      tensor = read
    return _capture(graph, tensor)

  def _warn_of_v1_control_flow(self, graph, signature, context_kinds):
    """Warns of v1 control flow in a function graph that TensorFlow cannot differentiate.

    TensorFlow 2.15 builds gradients of neither a v1 while_loop nor a v1 cond
    reading resource variables inside a function graph (tf.gradients fails
    there with an internal error); the forward pass works.
    """
    reads_resources = any(
        tensor.dtype == tf.resource for tensor in self._state_tensors.values()
    )
    if _GraphKeys.WHILE_CONTEXT in context_kinds:
      what = "a v1 tf.while_loop"
    elif _GraphKeys.COND_CONTEXT in context_kinds and reads_resources:
      what = "a v1 tf.cond with resource variables"
    else:
      return
    logging.warning(
        "Module %s, signature %r: the call is made inside the function graph"
        " %s and runs %s of the module graph; TensorFlow cannot build"
        " gradients through that inside a function graph (tf.gradients fails)."
        " To train through it, make the call outside the function graph or"
        " build v1 control flow (tf.compat.v1.disable_control_flow_v2()).",
        self._spec.source,
        signature,
        graph.name,
        what,
    )

  def _check_no_ref_writes(self, graph, input_map, apply_meta_graph, signature):
    """Refuses a call that would take ref-typed state by reference in a function graph.

    Raises:
      RuntimeError: naming the ops of the call that take a ref-typed state
        tensor by reference (e.g. the Assign of a batch-norm moving mean held
        in a VariableV2, or the LookupTableFind of a v1 HashTable), when the
        call is made in a function graph.
    """
    refs = {
        name
        for name, value in input_map.items()
        if not name.startswith("^")
        and value.graph is not graph
        and _is_ref(value)
    }
    if not refs:
      return
    writes = sorted(
        "%s (%s) on %s" % (node.name, node.op, graph_index_lib.op_name(name))
        for node in apply_meta_graph.graph_def.node
        for name in graph_index_lib.ref_inputs(node)
        if name in refs
    )
    if writes:
      raise RuntimeError(
          "Module %s, signature %r: the call is made inside the function graph"
          " %s (a tf.cond or tf.while_loop branch or body built as control"
          " flow v2, tf.map_fn, tf.function or Defun), which cannot take"
          " ref-typed values, but the module graph takes ref-typed state (a"
          " VariableV2 variable or v1 table, as TF1 code made them) by"
          " reference in: %s. Make the call outside the function graph, build"
          " v1 control flow (tf.compat.v1.disable_control_flow_v2()), call a"
          " graph variant that does not write that state (e.g. trainable=False"
          " or tags=None brings no UPDATE_OPS), or use a module made with"
          " resource variables and v2 tables."
          % (self._spec.source, signature, graph.name, "; ".join(writes))
      )

  def _runnable_collections(self, index, fed, cut):
    """UPDATE_OPS and input-dependent REGULARIZATION_LOSSES this call can run.

    Regularization losses come only with calls of the instance's own variant
    (`index`), as its state-only losses came with the instance.

    Returns:
      Dict from collection key to the node_list entries whose ops need no
      placeholder that the call leaves unfed (reasoning per tensor).
    """
    blocked = index.blocked_ops(fed, cut, index.unfed_placeholders(fed))
    input_dependent = index.input_dependent_ops()
    result = {}
    keys = [_GraphKeys.UPDATE_OPS]
    if index is self._index:
      keys.append(_GraphKeys.REGULARIZATION_LOSSES)
    for key in keys:
      names = [
          n
          for n in index.node_list(key)
          if graph_index_lib.op_name(n) not in blocked
          and graph_index_lib.op_name(n) not in cut
          and (
              key == _GraphKeys.UPDATE_OPS
              or graph_index_lib.op_name(n) in input_dependent
          )
      ]
      if names:
        result[key] = names
    return result

  def _write_variables(self, session, prefix):
    """Writes this instance's variable values from `session` as a checkpoint at `prefix`."""
    entries = _checkpoint_entries(self._variable_map)
    values = session.run([variable for _, _, variable in entries])
    writer.write_checkpoint(
        prefix,
        [
            (key, slice_spec, variable.dtype.base_dtype, value)
            for (key, slice_spec, variable), value in zip(entries, values)
        ],
    )

  def export(self, path, session):
    """Writes the module, with this instance's variable values, to `path`.

    Args:
      path: the module directory to create.
      session: a session of this instance's graph holding its variable values.

    Raises:
      RuntimeError: if the default graph or the session's graph is not the one
        this instance lives in.
    """
    if tf.compat.v1.get_default_graph() is not self._graph:
      raise RuntimeError(
          "default graph differs from the graph where the module was "
          "instantiated."
      )
    if session.graph is not self._graph:
      raise RuntimeError(
          "session graph differs from the graph where the module was "
          "instantiated."
      )
    write_variables_fn = None
    if self._variable_map:
      write_variables_fn = lambda prefix: self._write_variables(session, prefix)
    writer.write_module(self._spec, path, write_variables_fn)


# Per graph that owns module state: (name of the function graph a Module was
# made in, call site, requested name) -> (that function graph, state scope).
_MADE_IN_FUNCTION_GRAPHS = weakref.WeakKeyDictionary()


def _warn_if_made_again_by_a_retrace(owner, scope, name):
  """Warns when a Module made in a function graph looks made again by a retrace.

  A tf.function traced again (e.g. for another input shape) runs its Python
  code again: a Module made inside it gets a second state, which the new trace
  uses. That is told by a function graph of the same name as an earlier one,
  but another object, making a Module from the same line with the same name.
  """
  graph = tf.compat.v1.get_default_graph()
  if graph is owner or not graph.building_function:
    return
  while _outer_graph(graph) is not None and _outer_graph(graph) is not owner:
    graph = _outer_graph(graph)  # the function traced in the state's graph
  caller = _user_frame()
  key = (graph.name, caller.filename, caller.lineno, name)
  made = _MADE_IN_FUNCTION_GRAPHS.setdefault(owner, {})
  earlier = made.get(key)
  if earlier is None:
    made[key] = (weakref.ref(graph), scope)
  elif earlier[0]() is not graph:
    logging.warning(
        "Module state %s made while tracing the function %s again, whose"
        " earlier trace made state %s from the same line: a tf.function traced"
        " again (e.g. for inputs of another shape) makes another copy of the"
        " module's state for the new trace, and training updates the copies"
        " separately. Make the Module outside the function and call it inside"
        " to share one state.",
        scope,
        graph.name,
        earlier[1],
    )


def _user_frame():
  """The innermost stack frame outside this package and TensorFlow.

  Under autograph that is a frame of the converted function (one generated
  file per converted function, the same for all its traces).
  """
  skipped = (
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
      os.path.dirname(os.path.abspath(tf.__file__)) + os.sep,
  )
  frames = inspect.stack(context=0)
  for frame in frames:
    if not os.path.abspath(frame.filename).startswith(skipped):
      return frame
  return frames[-1]


def _outer_graph(graph):
  """The graph a function graph is built in (None for other graphs)."""
  if not graph.building_function:
    return None
  # FuncGraph (tf.function, v2 control flow, wrap_function) or Defun's graph.
  return getattr(graph, "outer_graph", None) or getattr(
      graph, "_outer_graph", None
  )


def _is_within(graph, owner):
  """True if `graph` is `owner` or a function graph built inside it."""
  while graph is not None and graph is not owner:
    graph = _outer_graph(graph)
  return graph is owner


def _state_owner_graph():
  """The graph where a module made now keeps its state.

  That is the outermost graph that owns variables: the graph `tf.init_scope`
  enters in graph mode (an Estimator's or a Session's graph, also from inside
  tf.function, Defun, v2 control flow or a TPU replicate context), or, when the
  code runs under eager execution (`tf.compat.v1.wrap_function` called
  eagerly), the outermost function graph, whose variables wrap_function lifts.
  """
  graph = tf.compat.v1.get_default_graph()
  with tf.init_scope():
    if not tf.executing_eagerly():
      return tf.compat.v1.get_default_graph()
  while (
      _outer_graph(graph) is not None and _outer_graph(graph).building_function
  ):
    graph = _outer_graph(graph)
  return graph


@contextlib.contextmanager
def _in_state_owner_graph(owner):
  """Makes `owner` the default graph, outside any control dependencies and
  control-flow context, keeping the current name and variable scopes."""
  if not owner.building_function:
    with tf.init_scope():
      yield
  else:
    with owner.as_default(), tf.control_dependencies(None):
      yield


def _capture(graph, tensor):
  """`tensor` as seen from `graph`, a function graph inside `tensor.graph`."""
  if tensor.graph is graph:
    return tensor
  return graph.capture(tensor)


def _is_ref(tensor):
  return tensor.dtype._is_ref_dtype  # pylint: disable=protected-access


def _inside_branch(graph, owner):
  """True if ops made now run only in some iterations or branches.

  That is inside a function graph (v2 control flow, tf.function) within the
  graph `owner` of the state, or inside a v1 cond or while context.
  """
  if graph is not owner:
    return True
  context = graph._get_control_flow_context()  # pylint: disable=protected-access
  while context is not None:
    if context.IsCondContext() or context.IsWhileContext():
      return True
    context = context.outer_context
  return False


def _run_with_outputs(graph, update_op_names, outputs):
  """Makes the outputs of a call wait for its update ops.

  Update ops made inside a branch or loop body cannot run from outside it, so
  they leave the UPDATE_OPS collection and run whenever the call's outputs are
  computed, i.e. under the same branch, once per iteration.
  """
  update_ops = [
      graph.get_operation_by_name(n.split(":")[0]) for n in update_op_names
  ]
  collection = graph.get_collection_ref(_UPDATE_OPS)
  collection[:] = [
      item for item in collection if getattr(item, "op", item) not in update_ops
  ]
  with tf.control_dependencies(update_ops):
    return tf.nest.map_structure(tf.identity, outputs, expand_composites=True)


def _missing_data_shards(checkpoint):
  """Names the data files of a V2 checkpoint that are not there."""
  shards = tf.io.gfile.glob(checkpoint + ".data-*-of-*")
  if not shards:
    return [checkpoint + ".data-00000-of-00001"]
  total = int(shards[0].rsplit("-of-", 1)[1])
  expected = [
      "%s.data-%05d-of-%05d" % (checkpoint, i, total) for i in range(total)
  ]
  present = set(shards)
  return [name for name in expected if name not in present]


def _variable_map(variables, prefix):
  """Groups variables by module-relative name; partitions go in offset order."""
  singles = {}
  partitioned = {}
  for variable in variables:
    slice_info = getattr(variable, "_save_slice_info", None)
    if slice_info is not None:
      key = slice_info.full_name[len(prefix) :]
      partitioned.setdefault(key, []).append(variable)
    else:
      singles[variable.op.name[len(prefix) :]] = variable
  for key, parts in partitioned.items():
    offsets = [part._save_slice_info.var_offset for part in parts]  # pylint: disable=protected-access
    first = [offset[0] for offset in offsets]
    if len(set(first)) != len(first) or any(any(o[1:]) for o in offsets):
      raise RuntimeError(
          "Variable map contains duplicate offset 0 for variable [%s]: "
          "only partitioning along axis 0 is supported." % key
      )
    partitioned[key] = [
        part for _, part in sorted(zip(first, parts), key=lambda p: p[0])
    ]
  singles.update(partitioned)
  return singles


def _full_shape(value):
  if isinstance(value, list):
    return list(value[0]._save_slice_info.full_shape)  # pylint: disable=protected-access
  return value.shape.as_list()


def _checkpoint_entries(variable_map):
  """Returns (checkpoint key, slice spec, variable) for every variable."""
  entries = []
  for key, value in sorted(variable_map.items()):
    if isinstance(value, list):
      entries.extend((key, part._save_slice_info.spec, part) for part in value)  # pylint: disable=protected-access
    else:
      entries.append((key, "", value))
  return entries


def _colocate_with_fed_tensors(graph, scope, colocation_refs, groups_by_name):
  """Re-points colocation constraints on dropped nodes at the tensors fed for them.

  An imported op that was colocated with, say, a variable of the module is
  colocated with the instance's variable instead, and placed on its device.
  In a function graph, groups naming ops of an outer graph (the instance's
  state, a captured input) are left out: a function body can only colocate
  its own ops.
  """
  for name, targets in colocation_refs.items():
    op = graph.get_operation_by_name(scope + name)
    try:
      groups = list(op.get_attr("_class"))
    except ValueError:
      groups = []
    for target in targets:
      groups.extend(groups_by_name.get(target, []))
    groups = sorted(
        group
        for group in set(groups)
        if _has_op(graph, group.decode("utf-8")[len("loc:@") :])
    )
    if not groups:
      if "_class" in op.node_def.attr:
        op._clear_attr("_class")  # pylint: disable=protected-access
      continue
    op._set_attr(
        "_class",
        attr_value_pb2.AttrValue(  # pylint: disable=protected-access
            list=attr_value_pb2.AttrValue.ListValue(s=groups)
        ),
    )
    if not op.device:
      for group in groups:
        other = graph.get_operation_by_name(
            group.decode("utf-8")[len("loc:@") :]
        )
        if other.device:
          op._set_device(other.device)  # pylint: disable=protected-access
          break


def _has_op(graph, name):
  try:
    graph.get_operation_by_name(name)
  except KeyError:
    return False
  return True


@contextlib.contextmanager
def eval_function_for_module(spec, tags=None, allowed_ops=None):
  """Yields a function that runs a module's signatures on numpy values.

  The module is instantiated in its own graph and session, which close when the
  context exits.

  Args:
    spec: a ModuleSpec or module directory path.
    tags: the graph variant; None means the variant without tags.
    allowed_ops: for a path, as in `load_module_spec`.

  Yields:
    `fn(inputs=None, signature=None, as_dict=None)` returning numpy values.
  """
  spec = as_module_spec(spec, allowed_ops)
  with tf.Graph().as_default():
    module = Module(spec, tags=tags)
    signatures = {}
    for signature in spec.get_signature_names(tags):
      placeholders = {}
      for key, info in spec.get_input_info_dict(signature, tags).items():
        placeholders[key] = _placeholder_for(info, "%s_%s" % (signature, key))
      outputs = module(placeholders, signature=signature, as_dict=True)
      signatures[signature] = (placeholders, outputs)
    with tf.compat.v1.train.SingularMonitoredSession() as session:

      def run(inputs=None, _sentinel=None, signature=None, as_dict=None):  # pylint: disable=invalid-name
        signature = signature or "default"
        if signature not in signatures:
          raise ValueError(
              "Signature %r is missing; available: %s."
              % (signature, sorted(signatures))
          )
        placeholders, outputs = signatures[signature]
        values = tensor_info_lib.pack_inputs(inputs, placeholders, signature)
        tensor_info_lib.check_input_keys(values, placeholders, (), signature)
        feed_dict = {}
        for key, value in values.items():
          placeholder = placeholders[key]
          if isinstance(placeholder, tf.RaggedTensor):
            components = [value.flat_values] + list(value.nested_row_splits)
            feed_dict.update(
                zip(
                    tf.nest.flatten(placeholder, expand_composites=True),
                    components,
                )
            )
          else:
            feed_dict[placeholder] = value
        if not as_dict and "default" not in outputs:
          raise TypeError(
              "There is no output named 'default'. Use as_dict=True."
          )
        fetches = outputs if as_dict else outputs["default"]
        return session.run(fetches, feed_dict=feed_dict)

      yield run


def _placeholder_for(info, name):
  spec = info.type_spec
  name = name.replace(":", "_")
  if spec.value_type is tf.SparseTensor:
    return tf.compat.v1.sparse_placeholder(spec.dtype, spec.shape, name=name)
  if spec.value_type is tf.RaggedTensor:
    return tf.compat.v1.ragged.placeholder(
        spec.dtype,
        spec.ragged_rank,
        spec.shape[spec.ragged_rank + 1 :],
        name=name,
    )
  return tf.compat.v1.placeholder(spec.dtype, spec.shape, name=name)
