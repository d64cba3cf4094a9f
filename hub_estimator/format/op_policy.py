"""The op policy for untrusted modules: which graph ops may reach outside a module.

A TF1 Hub module is a graph, and running a graph runs its ops with the rights
of the process. Most ops compute on tensors; a few reach outside the module:
Python callbacks, file reads, writes and listings, checkpoint save/restore,
printing to files, network and cross-device communication, graphs or
programs held as data (a serialized dataset graph run by `DatasetFromGraph`,
which the policy cannot see into), calls of functions the module's function
library does not define (they would run the loading graph's function of that
name), state of the loading process reached by name (see below), and ops this
TensorFlow does not register (native code from an op library). `load_module_spec` refuses a module whose
graph variants (or the functions in their function libraries) contain such an
op, unless the caller allows its op type with `allowed_ops`.

Two uses are the module's own business and stay allowed:

* reading one of the module's own assets (`ReadFile` or a text-file table
  initializer whose file name is a constant inside `<module>/assets/`, e.g. a
  vocabulary), and
* the module's own saver (`MetaGraphDef.saver_def`): save/restore ops that only
  the saver reaches, reading or writing the file name the saver is fed.

State by name. TensorFlow finds a variable, table, queue, iterator, barrier,
accumulator or staging area by its `(container, shared_name)` in the
session's resource manager, so a module op naming the consumer's resource
would read or change it. `Module` (like tensorflow_hub) prefixes every
graph-level `shared_name` with the module instance's scope at load (a table
from `index_table_from_file` carries e.g. `hash_table_<vocab path>_-1_-2_-1`
and becomes `module/hash_table_...`), so graph-level resource ops only reach
the module's own state and stay allowed, whatever their `container`. Refused
as `SHARED_STATE`: resource ops inside library functions (function bodies
are not renamed at load, and an empty `shared_name` falls back to the node
name), `_VarHandlesOp` (its `shared_names` list is not renamed either),
`TemporaryVariable` with a `var_name`, ops that turn a string into a handle
of the consumer's iterator or session tensor (`IteratorFromStringHandle`,
`GetSessionTensor`, ...), and handles forged from bytes: constants of dtype
resource or variant (a variant can hold a handle) and deserializing ops
(`ParseTensor`, ...) producing them. Stacks and tensor arrays get a
process-unique name at run time whatever their name attr says, and are not
refused.

The policy only reads the graph protos; it never runs or imports them.
"""

import collections
import os

from tensorflow.core.framework import types_pb2
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import control_flow_pb2
from tensorflow.python.framework import op_def_registry

from hub_estimator.format import saved_model_io


class _TrustAllOps:
  """The type of `TRUST_ALL_OPS`."""

  def __repr__(self):
    return "hub_estimator.TRUST_ALL_OPS"

  def __reduce__(self):
    return "TRUST_ALL_OPS"


TRUST_ALL_OPS = _TrustAllOps()
"""`allowed_ops=TRUST_ALL_OPS` trusts every op of a module (no vetting)."""

# Why an op type reaches outside the module, by kind.
PYTHON = "python callback"
FILE_WRITE = "file write"
FILE_READ = "file read"
FILE_LISTING = "file listing"
CHECKPOINT = "checkpoint save/restore"
PRINT_TO_FILE = "print to file"
NETWORK = "network"
PROGRAM_AS_DATA = "program as data"
UNREGISTERED = "unregistered op"
FOREIGN_FUNCTION = "foreign function"
SHARED_STATE = "shared state"

_WHY = {
    PYTHON: (
        "runs a Python function of the loading process (any function"
        " registered there, with its rights)"
    ),
    FILE_WRITE: "writes files",
    FILE_READ: "reads a file that is not one of the module's assets",
    FILE_LISTING: "lists files and folders",
    CHECKPOINT: (
        "saves or restores a checkpoint other than the module's own saver"
        " reading its variables/"
    ),
    PRINT_TO_FILE: "prints to a file",
    NETWORK: "talks to other processes, hosts or devices",
    PROGRAM_AS_DATA: (
        "runs a graph, dataset, function or compiled program that it reads"
        " from a tensor or attribute, where the policy cannot vet it"
    ),
    FOREIGN_FUNCTION: (
        "calls a function that is not in the module's function library (it"
        " would run a function of the graph the module is loaded into)"
    ),
    UNREGISTERED: (
        "is not registered in this TensorFlow (native code from an op library)"
    ),
    SHARED_STATE: (
        "can reach a variable, table, queue, iterator or other resource of the"
        " loading process by its name"
    ),
}


def _kinds(kind, names):
  return {name: kind for name in names.split()}


# Op types by kind (TensorFlow 2.15's registered ops, read from their OpDefs).
_REFUSED_OP_TYPES = {
    **_kinds(PYTHON, "PyFunc PyFuncStateless EagerPyFunc"),
    **_kinds(
        FILE_WRITE,
        """WriteFile DatasetToTFRecord ExperimentalDatasetToTFRecord
        SaveDataset SaveDatasetV2 DistributedSave CacheDataset CacheDatasetV2
        SnapshotDataset SnapshotDatasetV2 CreateSummaryFileWriter
        CreateSummaryDbWriter SummaryWriter WriteSummary WriteScalarSummary
        WriteHistogramSummary WriteImageSummary WriteAudioSummary
        WriteGraphSummary WriteRawProtoSummary ImportEvent FlushSummaryWriter
        CloseSummaryWriter StatsAggregatorSetSummaryWriter DumpTensor
        FileSystemSetConfiguration SerializeTRTResource""",
    ),
    **_kinds(
        FILE_READ,
        """ReadFile ImmutableConst InitializeTableFromTextFile
        InitializeTableFromTextFileV2 WholeFileReader WholeFileReaderV2
        TextLineReader TextLineReaderV2 FixedLengthRecordReader
        FixedLengthRecordReaderV2 TFRecordReader TFRecordReaderV2 LMDBReader
        RecordInput TFRecordDataset TFRecordDatasetV2 TextLineDataset
        FixedLengthRecordDataset FixedLengthRecordDatasetV2 CSVDataset
        CSVDatasetV2 ExperimentalCSVDataset LMDBDataset ExperimentalLMDBDataset
        SqlDataset ExperimentalSqlDataset LoadDataset SnapshotDatasetReader
        SnapshotNestedDatasetReader SnapshotChunkDataset GenerateVocabRemapping
        LoadAndRemapMatrix Skipgram FixedUnigramCandidateSampler
        InitializeTRTResource""",
    ),
    **_kinds(
        FILE_LISTING,
        "MatchingFiles MatchingFilesDataset ExperimentalMatchingFilesDataset",
    ),
    **_kinds(
        CHECKPOINT,
        """Save SaveSlices SaveV2 MergeV2Checkpoints Restore RestoreSlice
        RestoreV2 DTensorRestoreV2""",
    ),
    **_kinds(
        NETWORK,
        """RpcClient RpcServer RpcServerRegister RpcServerStart RpcCall
        RemoteCall DataServiceDataset DataServiceDatasetV2
        DataServiceDatasetV3 DataServiceDatasetV4 RegisterDataset
        RegisterDatasetV2 Send Recv _Send _Recv _HostSend _HostRecv XlaSend
        XlaRecv XlaSendToHost XlaRecvFromHost _XlaSendFromHost
        _XlaSendFromHostV2 _XlaRecvAtHost _XlaRecvAtHostV2 XlaHostCompute
        CollectiveReduce CollectiveReduceV2 CollectiveReduceV3
        CollectiveReduceScatterV2 CollectiveGather CollectiveGatherV2
        CollectiveBcastSend CollectiveBcastSendV2 CollectiveBcastRecv
        CollectiveBcastRecvV2 CollectiveAllToAllV2 CollectiveAllToAllV3
        CollectivePermute CollectiveAssignGroupV2
        CollectiveInitializeCommunicator NcclAllReduce NcclReduce
        NcclBroadcast _NcclReduceSend _NcclReduceRecv _NcclBroadcastSend
        _NcclBroadcastRecv AllToAll XlaAllReduce DTensorAllReduce
        DTensorAllToAll InfeedEnqueue InfeedEnqueueTuple
        InfeedEnqueuePrelinearizedBuffer InfeedDequeue InfeedDequeueTuple
        OutfeedEnqueue OutfeedEnqueueTuple OutfeedDequeue OutfeedDequeueTuple
        OutfeedDequeueV2 OutfeedDequeueTupleV2 SendTPUEmbeddingGradients
        RecvTPUEmbeddingActivations XlaSendTPUEmbeddingGradients
        XlaRecvTPUEmbeddingActivations XlaRecvTPUEmbeddingDeduplicationData
        ConfigureTPUEmbeddingHost ConnectTPUEmbeddingHosts
        _InitializeHostForDistributedTPU _DisconnectHostFromDistributedTPUSystem
        RpcGetValue RpcCheckStatus DeleteRpcFutureResource""",
    ),
    **_kinds(
        SHARED_STATE,
        """IteratorFromStringHandle IteratorFromStringHandleV2
        MultiDeviceIteratorFromStringHandle GetSessionTensor
        DeleteSessionTensor _VarHandlesOp CreateTRTResourceHandle""",
    ),
    **_kinds(
        PROGRAM_AS_DATA,
        """DatasetFromGraph DeserializeIterator XlaCallModule XlaCustomCall
        XlaCustomCallV2 TfLiteSubgraphExecute TRTEngineOp _TPUCompileMlir
        MlirPassthroughOp _XlaHostComputeMlir""",
    ),
}

# The census of file-like names (checked by a test against every op this
# TensorFlow registers, so that an upgrade cannot add an unvetted file op): an
# op with a string attr or an input whose name matches `FILE_LIKE_NAME` is
# either refused above, refused depending on that attr's value (`_kind_of`),
# or listed here with why that name is not a file.
FILE_LIKE_NAME = (
    r"file|path|dir|pattern|vocab|url|dump|output_stream|prefix|graph|module"
    r"|program|serialized|subgraph|descriptor"
)
NOT_A_FILE = {
    **_kinds(
        "direction: a word (unidirectional, bidirectional, ascending)",
        """CudnnRNN CudnnRNNBackprop CudnnRNNBackpropV2 CudnnRNNBackpropV3
        CudnnRNNCanonicalToParams CudnnRNNCanonicalToParamsV2
        CudnnRNNParamsSize CudnnRNNParamsToCanonical
        CudnnRNNParamsToCanonicalV2 CudnnRNNV2 CudnnRNNV3 RiscSort""",
    ),
    **_kinds(
        "pattern: a regular expression applied to tensors",
        "RegexFullMatch RegexReplace StaticRegexFullMatch StaticRegexReplace",
    ),
    **_kinds(
        "counter_prefix: a name prefix of statistics counters",
        "SetStatsAggregatorDataset ExperimentalSetStatsAggregatorDataset",
    ),
    **_kinds(
        "serialized: a data record parsed into tensors (Example, tensor, sparse"
        " tensor, tree ensemble, dataset options, summary metadata), not code",
        """ParseExample ParseExampleV2 ParseSingleExample ParseSequenceExample
        ParseSequenceExampleV2 ParseSingleSequenceExample ParseTensor
        DeserializeSparse DeserializeManySparse BoostedTreesCreateEnsemble
        BoostedTreesDeserializeEnsemble OptionsDataset TensorSummaryV2""",
    ),
}
# Op types whose file reach depends on an attr value (see `_kind_of`).
FILE_BY_ATTR_VALUE = frozenset(
    """PrintV2 DebugIdentity DebugIdentityV2 DebugIdentityV3 DebugNanCount
    DebugNumericSummary DecodeProtoV2 EncodeProto""".split()
)

# The census of communication (checked by a test against every registered op,
# like the file census): an op whose type name matches `COMMUNICATION_LIKE_NAME`
# is refused above or listed here with why it does not communicate.
COMMUNICATION_LIKE_NAME = (
    r"Send|Recv|Collective|Nccl|Infeed|Outfeed|AllReduce|AllToAll|Rpc|Remote"
    r"|Rendezvous|Permute"
)
NOT_COMMUNICATION = {
    "DataFormatVecPermute": "permutes a shape vector between data layouts",
}

# The census of resource handles (checked by a test against every registered
# op): an op with an output of dtype resource either names its resource with
# a `shared_name`/`container` attr (`NAMED_RESOURCE_ATTRS`: renamed at load in
# the graph, refused inside functions), is refused above, or is listed here
# with why its handle cannot be the loading process's.
NAMED_RESOURCE_ATTRS = ("shared_name", "container")
HANDLE_NOT_BY_NAME = {
    **_kinds(
        "anonymous: a new resource with a process-unique name at every run",
        """AnonymousHashTable AnonymousIterator AnonymousIteratorV2
        AnonymousIteratorV3 AnonymousMemoryCache AnonymousMultiDeviceIterator
        AnonymousMultiDeviceIteratorV3 AnonymousMutableDenseHashTable
        AnonymousMutableHashTable AnonymousMutableHashTableOfTensors
        AnonymousRandomSeedGenerator AnonymousSeedGenerator
        DummyIterationCounter DummyMemoryCache DummySeedGenerator""",
    ),
    **_kinds(
        "per run: its name attr is made process-unique by a counter at run"
        " time (TensorFlow's stack and tensor array kernels)",
        "StackV2 TensorArrayV3",
    ),
    **_kinds(
        "derived: a handle of a resource given as an input, or of the tensor"
        " it stores",
        """TensorArrayGradV3 TensorArrayGradWithShape MakeWeakResourceHandle
        GetSessionHandleV2""",
    ),
}
# Ops that make a tensor of a type attr's dtype from bytes (a constant or a
# deserialized string): a resource handle made so names any resource, and a
# variant can hold one.
HANDLE_FROM_BYTES = {
    "Const": ("dtype",),
    "HostConst": ("dtype",),
    "ParseTensor": ("out_type",),
    "DeserializeSparse": ("dtype",),
    "DeserializeManySparse": ("dtype",),
    "DecodeProtoV2": ("output_types",),
    "UncompressElement": ("output_types",),
}
_CONSTANT_OPS = frozenset(["Const", "HostConst"])
_HANDLE_DTYPES = frozenset([types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT])

# File reads that are allowed when their file name (input 0 for ReadFile,
# input 1 for the table initializers) is one of the module's asset files.
_ASSET_READ_INPUT = {
    "ReadFile": 0,
    "InitializeTableFromTextFile": 1,
    "InitializeTableFromTextFileV2": 1,
}
_VARIABLE_KEYS = ("variables", "trainable_variables", "model_variables")
_RESTORE_OPS = ("Restore", "RestoreSlice", "RestoreV2")
_CONTEXT_TYPES = {
    "cond_context": control_flow_pb2.CondContextDef,
    "while_context": control_flow_pb2.WhileContextDef,
}
# Ops that pass their first input through unchanged.
_PASS_THROUGH_OPS = ("Identity", "Snapshot", "StopGradient")
# Debug ops write files only when given a URL or dump folder.
_DEBUG_FILE_ATTRS = ("debug_urls", "dump_root")
# Proto ops read a descriptor file unless the source is built in or bytes.
_PROTO_OPS = ("DecodeProtoV2", "EncodeProto")


Finding = collections.namedtuple(
    "Finding",
    ["tags", "function", "node", "op", "kind", "detail"],
    defaults=(None,),
)
Finding.__doc__ = """One op that reaches outside the module.

Attributes:
  tags: sorted list of the graph variant's tags.
  function: name of the library function holding the node; None for a node
    of the graph itself.
  node: the node name.
  op: the op type.
  kind: why it is refused, one of the kind constants of this module (e.g.
    `FILE_READ`).
  detail: the attr value that makes it refused, e.g. "shared_name
    'dense/kernel' inside a function", or None when the op type alone does.
"""


def why(kind):
  """Returns the sentence fragment explaining a finding kind, e.g. "writes files"."""
  return _WHY[kind]


def explain(finding):
  """Returns why a `Finding` is refused: `why(kind)`, then its detail if any."""
  if finding.detail is None:
    return why(finding.kind)
  return "%s (%s)" % (why(finding.kind), finding.detail)


def check_allowed_ops(allowed_ops):
  """Validates an `allowed_ops` argument and returns it normalized.

  Args:
    allowed_ops: None (the default policy), `TRUST_ALL_OPS`, or an iterable of
      op type names (str) to allow.

  Returns:
    None, `TRUST_ALL_OPS`, or a frozenset of op type names.

  Raises:
    ValueError: for a single string or anything that is not a name.
  """
  if allowed_ops is None or allowed_ops is TRUST_ALL_OPS:
    return allowed_ops
  if isinstance(allowed_ops, (str, bytes)):
    raise ValueError(
        "allowed_ops must be a list of op type names or"
        " hub_estimator.TRUST_ALL_OPS, not the string %r; did you mean [%r]?"
        % (allowed_ops, allowed_ops)
    )
  try:
    names = list(allowed_ops)
  except TypeError:
    raise ValueError(
        "allowed_ops must be a list of op type names or"
        " hub_estimator.TRUST_ALL_OPS; got %r." % (allowed_ops,)
    ) from None
  bad = [n for n in names if not isinstance(n, str) or not n]
  if bad:
    raise ValueError(
        "allowed_ops must hold op type names (non-empty strings) such as"
        " 'PyFunc'; got %r." % (bad,)
    )
  return frozenset(names)


class Report:
  """What the policy finds in a module: every op that reaches outside it.

  Attributes:
    source: the module directory (or other description) the report is about.
    findings: list of `Finding`, in graph variant, then graph order.
  """

  def __init__(self, source, findings):
    self.source = source
    self.findings = list(findings)

  def refused(self, allowed_ops=None):
    """Returns the findings `allowed_ops` does not allow (see `check_allowed_ops`)."""
    allowed_ops = check_allowed_ops(allowed_ops)
    if allowed_ops is TRUST_ALL_OPS:
      return []
    allowed_ops = allowed_ops or frozenset()
    return [f for f in self.findings if f.op not in allowed_ops]

  def error(self, allowed_ops=None):
    """Returns an UnsafeModuleError for the refused findings, or None."""
    refused = self.refused(allowed_ops)
    if not refused:
      return None
    return UnsafeModuleError(self.source, refused)


class UnsafeModuleError(saved_model_io.ModuleFormatError):
  """A module's graph has ops that reach outside the module (see `op_policy`).

  Attributes:
    path: the module directory.
    findings: the refused `Finding`s.
  """

  def __init__(self, path, findings):
    self.path = path
    self.findings = list(findings)
    super().__init__(self._message())

  def _message(self):
    lines = [
        "Module %s is refused by the op policy for untrusted modules: its"
        " graph has ops that reach outside the module."
        % self.path
    ]
    for finding in self.findings:
      where = "node %r" % finding.node
      if finding.function is not None:
        where += " in function %r" % finding.function
      lines.append(
          "  * graph variant %s: op %s (%s) %s [%s]."
          % (finding.tags, finding.op, where, explain(finding), finding.kind)
      )
    ops = sorted({f.op for f in self.findings})
    lines.append(
        "If you trust this module, allow exactly these op types:"
        " load_module_spec(path, allowed_ops=%r) (also Module(path, ...,"
        " allowed_ops=...), the module sources' and hub feature columns'"
        " allowed_ops); allowed_ops=hub_estimator.TRUST_ALL_OPS trusts every"
        " op. `python -m hub_estimator.tools.inspect_module %s` shows what the"
        " module holds." % (ops, self.path)
    )
    return "\n".join(lines)


def vet(saved_model, module_dir):
  """Finds every op of a module that reaches outside it.

  Args:
    saved_model: the module's SavedModel proto, as `saved_model_io.
      read_saved_model` returns it (asset constants point into `assets/`).
    module_dir: the module directory; asset reads must name files in its
      `assets/` folder.

  Returns:
    A `Report` listing every finding, whatever `allowed_ops` a caller uses.
  """
  assets_dir = os.path.join(module_dir, saved_model_io.ASSETS_DIRNAME)
  findings = []
  for meta_graph in saved_model.meta_graphs:
    findings.extend(_vet_meta_graph(meta_graph, assets_dir))
  return Report(module_dir, findings)


def vet_module(module_dir):
  """Reads a module directory's graphs and vets them; never runs them.

  Args:
    module_dir: a module directory.

  Returns:
    The `Report` of `vet`.

  Raises:
    ModuleFormatError: if `saved_model.pb` is missing, corrupt or names
      missing assets.
  """
  return vet(saved_model_io.read_saved_model(module_dir), module_dir)


def check(saved_model, module_dir, allowed_ops=None):
  """Raises UnsafeModuleError unless every op of the module is allowed.

  Args:
    saved_model: as for `vet`.
    module_dir: as for `vet`.
    allowed_ops: None (the default policy), `TRUST_ALL_OPS`, or op type names
      to allow.

  Raises:
    UnsafeModuleError: naming each refused op, its node and graph variant.
    ValueError: if `allowed_ops` is malformed.
  """
  allowed_ops = check_allowed_ops(allowed_ops)
  if allowed_ops is TRUST_ALL_OPS:
    return
  error = vet(saved_model, module_dir).error(allowed_ops)
  if error is not None:
    raise error


_registered = {}


def _is_registered(op_type):
  if op_type not in _registered:
    _registered[op_type] = op_def_registry.get(op_type) is not None
  return _registered[op_type]


_function_attrs = {}


def _function_attr_names(op_type):
  """Names of the attrs of type func or list(func) of a registered op type."""
  if op_type not in _function_attrs:
    op_def = op_def_registry.get(op_type)
    _function_attrs[op_type] = tuple(
        attr.name
        for attr in (op_def.attr if op_def is not None else ())
        if attr.type in ("func", "list(func)")
    )
  return _function_attrs[op_type]


def _foreign_functions(node, function_names):
  """Functions a node's attrs name that the module's library does not define."""
  names = []
  for attr_name in _function_attr_names(node.op):
    if attr_name in node.attr:
      value = node.attr[attr_name]
      names.extend(f.name for f in value.list.func)
      if value.HasField("func"):
        names.append(value.func.name)
  return [name for name in names if name and name not in function_names]


_named_resource_attrs = {}


def _named_resource_attr_names(op_type):
  """The `NAMED_RESOURCE_ATTRS` a registered op type has."""
  if op_type not in _named_resource_attrs:
    op_def = op_def_registry.get(op_type)
    names = {attr.name for attr in (op_def.attr if op_def else ())}
    _named_resource_attrs[op_type] = tuple(
        name for name in NAMED_RESOURCE_ATTRS if name in names
    )
  return _named_resource_attrs[op_type]


def _may_reach_outside(op_type, function_names, in_function):
  """False for op types that never reach outside (most of them), by type alone."""
  return (
      op_type in _REFUSED_OP_TYPES
      or bool(_function_attr_names(op_type))
      or op_type == "PrintV2"
      or op_type.startswith("Debug")
      or op_type in _PROTO_OPS
      or op_type in HANDLE_FROM_BYTES
      or op_type == "TemporaryVariable"
      or (in_function and bool(_named_resource_attr_names(op_type)))
      or (op_type not in function_names and not _is_registered(op_type))
  )


def _dtype_name(dtype):
  return types_pb2.DataType.Name(dtype)[len("DT_") :].lower()


def _handle_from_bytes(node):
  """The detail if `node` makes a resource or variant tensor from bytes.

  Checks the type attrs only (a Const's value must have its dtype attr's
  type, or the kernel refuses to run), so that the many constants of a graph
  cost one attr lookup each.
  """
  attrs = node.attr
  for attr_name in HANDLE_FROM_BYTES[node.op]:
    if attr_name not in attrs:
      continue
    value = attrs[attr_name]
    types = [value.type]
    if value.HasField("list"):
      types.extend(value.list.type)
    handles = _HANDLE_DTYPES.intersection(types)
    if handles:
      names = "/".join(sorted(_dtype_name(t) for t in handles))
      if node.op in _CONSTANT_OPS:
        return "a constant of dtype %s" % names
      return "%s %s made from bytes" % (attr_name, names)
  return None


def _kind_of(node, function_names, in_function):
  """Returns (kind, detail) of a NodeDef's reach, or None if it stays inside."""
  op = node.op
  if op in _CONSTANT_OPS:  # The most common suspects: first, and cheap.
    detail = _handle_from_bytes(node)
    return (SHARED_STATE, detail) if detail else None
  kind = _REFUSED_OP_TYPES.get(op)
  if kind is not None:
    return kind, None
  if op == "PrintV2":
    stream = (
        node.attr["output_stream"].s if "output_stream" in node.attr else b""
    )
    return (PRINT_TO_FILE, None) if stream.startswith(b"file://") else None
  if op.startswith("Debug"):
    for name in _DEBUG_FILE_ATTRS:
      if name in node.attr:
        value = node.attr[name]
        if value.s or value.list.s:
          return FILE_WRITE, None
    return None
  if op in _PROTO_OPS and "descriptor_source" in node.attr:
    source = node.attr["descriptor_source"].s
    if source not in (b"", b"local://") and not source.startswith(b"bytes://"):
      return FILE_READ, None
  if op in HANDLE_FROM_BYTES:
    detail = _handle_from_bytes(node)
    return (SHARED_STATE, detail) if detail else None
  if op == "TemporaryVariable":
    var_name = node.attr["var_name"].s if "var_name" in node.attr else b""
    if var_name:
      return SHARED_STATE, "var_name %r" % var_name.decode("utf-8", "replace")
    return None
  if op in function_names:
    return None
  if not _is_registered(op):
    return UNREGISTERED, None
  if _foreign_functions(node, function_names):
    return FOREIGN_FUNCTION, None
  if in_function:
    named = [
        "%s %r" % (name, node.attr[name].s.decode("utf-8", "replace"))
        for name in _named_resource_attr_names(op)
        if name in node.attr
    ]
    if _named_resource_attr_names(op):
      return SHARED_STATE, (
          "%s inside a function: names in function bodies are not prefixed"
          " with the module's scope at load"
          % (", ".join(named) or "a resource named by its node")
      )
  return None


def _candidates(node_defs, function_names, in_function):
  """(node, (kind, detail)) of the nodes that reach outside, looking at each op type once."""
  node_defs = list(node_defs)
  op_types = [node.op for node in node_defs]
  suspects = {
      op_type
      for op_type in set(op_types)
      if _may_reach_outside(op_type, function_names, in_function)
  }
  result = []
  if suspects:
    for node, op_type in zip(node_defs, op_types):
      if op_type in suspects:
        kind = _kind_of(node, function_names, in_function)
        if kind is not None:
          result.append((node, kind))
  return result


def _vet_meta_graph(meta_graph, assets_dir):
  graph_def = meta_graph.graph_def
  tags = sorted(meta_graph.meta_info_def.tags)
  function_names = {f.signature.name for f in graph_def.library.function}
  candidates = [
      (None, node, kind)
      for node, kind in _candidates(graph_def.node, function_names, False)
  ]
  for function in graph_def.library.function:
    candidates.extend(
        (function.signature.name, node, kind)
        for node, kind in _candidates(function.node_def, function_names, True)
    )
  if not candidates:
    return []
  nodes = {node.name: node for node in graph_def.node}
  own_checkpoint_ops = None
  findings = []
  for function, node, (kind, detail) in candidates:
    if function is None and _reads_own_asset(node, nodes, assets_dir):
      continue
    if function is None and kind == CHECKPOINT:
      if own_checkpoint_ops is None:
        own_checkpoint_ops = _own_checkpoint_ops(meta_graph, nodes)
      if node.name in own_checkpoint_ops:
        continue
    findings.append(Finding(tags, function, node.name, node.op, kind, detail))
  return findings


def _input_node(nodes, input_name):
  if input_name.startswith("^"):
    return None
  return nodes.get(input_name.split(":")[0])


def _source_node(nodes, node, index):
  """The node producing input `index` of `node`, through pass-through ops."""
  inputs = [i for i in node.input if not i.startswith("^")]
  if index >= len(inputs):
    return None
  source = _input_node(nodes, inputs[index])
  seen = set()
  while (
      source is not None
      and source.op in _PASS_THROUGH_OPS
      and source.name not in seen
  ):
    seen.add(source.name)
    data_inputs = [i for i in source.input if not i.startswith("^")]
    source = _input_node(nodes, data_inputs[0]) if data_inputs else None
  return source


def _reads_own_asset(node, nodes, assets_dir):
  """True if `node` reads a file of `assets_dir` named by a string constant."""
  index = _ASSET_READ_INPUT.get(node.op)
  if index is None:
    return False
  source = _source_node(nodes, node, index)
  if source is None or source.op != "Const":
    return False
  tensor = source.attr["value"].tensor
  if len(tensor.string_val) != 1 or tensor.tensor_shape.dim:
    return False
  try:
    filename = tensor.string_val[0].decode("utf-8")
  except UnicodeDecodeError:
    return False
  return is_inside(filename, assets_dir)


def is_inside(filename, folder):
  """True if `filename` names a file strictly inside `folder`.

  Both are normalized; local paths are compared after resolving symbolic
  links, so an asset that is a link to a file elsewhere is not inside.
  """
  if "://" not in filename and "://" not in folder:
    filename, folder = os.path.realpath(filename), os.path.realpath(folder)
  filename, folder = os.path.normpath(filename), os.path.normpath(folder)
  return filename.startswith(folder.rstrip("/") + "/")


def _closure(nodes, seeds):
  seen = set()
  pending = [s for s in seeds if s in nodes]
  while pending:
    name = pending.pop()
    if name in seen:
      continue
    seen.add(name)
    for input_name in nodes[name].input:
      input_name = input_name.lstrip("^").split(":")[0]
      if input_name not in seen and input_name in nodes:
        pending.append(input_name)
  return seen


def _op_name(tensor_name):
  return tensor_name.lstrip("^").split(":")[0]


def _roots(meta_graph):
  """Names of the nodes a consumer may run, as (initializer roots, other roots).

  Initializer roots are the initializers and initial values of variables;
  the others are signature tensors, collection entries, variables and their
  snapshots, and every name a control-flow context mentions.
  """
  initializers, others = set(), set()
  for signature in meta_graph.signature_def.values():
    for infos in (signature.inputs, signature.outputs):
      for info in infos.values():
        others.add(info.name)
        others.add(info.coo_sparse.indices_tensor_name)
        others.add(info.coo_sparse.values_tensor_name)
        others.add(info.coo_sparse.dense_shape_tensor_name)
        others.update(c.name for c in info.composite_tensor.components)
  for key, collection in meta_graph.collection_def.items():
    kind = collection.WhichOneof("kind")
    if kind == "node_list":
      others.update(collection.node_list.value)
    elif kind == "bytes_list" and key in _VARIABLE_KEYS:
      for value in collection.bytes_list.value:
        variable_def = variable_pb2.VariableDef.FromString(value)
        initializers.add(variable_def.initializer_name)
        initializers.add(variable_def.initial_value_name)
        others.add(variable_def.variable_name)
        others.add(variable_def.snapshot_name)
    elif kind == "bytes_list" and key in _CONTEXT_TYPES:
      for value in collection.bytes_list.value:
        others.update(_strings_in(_CONTEXT_TYPES[key].FromString(value)))
  initializers = {_op_name(n) for n in initializers} - {""}
  others = {_op_name(n) for n in others} - {""}
  return initializers, others


def _strings_in(message):
  """Every string in a proto message (conservatively, names it refers to)."""
  result = []
  pending = [message]
  while pending:
    message = pending.pop()
    for field, value in message.ListFields():
      if (
          field.message_type is not None
          and field.message_type.GetOptions().map_entry
      ):
        for map_key, map_value in value.items():
          result += [map_key, map_value]
      elif field.message_type is not None:
        pending.extend(
            value if field.label == field.LABEL_REPEATED else [value]
        )
      elif field.type == field.TYPE_STRING:
        result.extend(value if field.label == field.LABEL_REPEATED else [value])
  return result


def _own_checkpoint_ops(meta_graph, nodes):
  """Save/restore nodes that never touch another checkpoint than the module's.

  Two kinds:

  * the module's own saver (`saver_def`): save/restore nodes that only the
    saver reaches and whose checkpoint name comes from the file name the saver
    is fed;
  * restores that only compute variables' initial values (a module built
    around another loaded module keeps the restore that initialized those
    variables): a module loaded from a directory always replaces every
    variable's initial value with the value in its own `variables/`.
  """
  initializer_roots, other_roots = _roots(meta_graph)
  others = _closure(nodes, other_roots)
  initializers_only = _closure(nodes, initializer_roots) - others
  result = {
      name for name in initializers_only if nodes[name].op in _RESTORE_OPS
  }
  saver_def = meta_graph.saver_def
  if meta_graph.HasField("saver_def") and saver_def.filename_tensor_name:
    filename_op = _op_name(saver_def.filename_tensor_name)
    saver = _closure(
        nodes,
        [
            _op_name(saver_def.save_tensor_name),
            _op_name(saver_def.restore_op_name),
        ],
    )
    reached = others | _closure(nodes, initializer_roots)
    for name in saver - reached:
      node = nodes[name]
      if _REFUSED_OP_TYPES.get(node.op) != CHECKPOINT:
        continue
      prefix = _source_node(nodes, node, 0)
      if prefix is not None and filename_op in _closure(nodes, [prefix.name]):
        result.add(name)
  return result
