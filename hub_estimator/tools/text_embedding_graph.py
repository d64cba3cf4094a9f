"""The `saved_model.pb` of a text-embedding module, built without TensorFlow.

`export_text_embedding` writes a TF1 Hub module whose graph is fixed up to a
few numbers (rows, dim, OOV buckets, combiner, preprocessing, partitions), so
this module writes that graph's protos directly (with the GraphDef protos
tensorboard ships, `tensorboard.compat.proto`, wire-identical to TensorFlow's)
instead of importing TensorFlow and tracing a module_fn.

Both graph variants (tags `{"train"}` and `set()`) are the same graph:

  sentences: Placeholder string [batch]
    -> StringLower (utf-8)          (with `lowercase`)
    -> StaticRegexReplace \\pP -> "" (with preprocess="strip_punctuation")
    -> StringSplit on " \\t\\n\\r" (empty tokens skipped): tokens [n] and
       their (sentence, position) indices
    -> ids int64 [n]: the line of the token in the asset `tokens.txt`
       (HashTableV2 filled by InitializeTableFromTextFileV2), or for a token
       not in it, vocabulary size + StringToHashBucketFast(token, buckets)
       (what tf.lookup.StaticVocabularyTable computes)
    -> Unique ids -> their rows (ResourceGather from the variable
       "embeddings", or from each partition "embeddings/part_<i>" with ids
       routed by DynamicPartition and rows put back by DynamicStitch)
    -> SparseSegment{Mean,SqrtN,Sum}WithNumSegments by sentence, with batch
       segments: default, float32 [batch, dim]; a sentence without tokens
       embeds to zeros.

This computes what tensorflow/hub's example exporter computes with
`tf.nn.safe_embedding_lookup_sparse` (same ops for the lookup and the
combination), in fewer nodes. The {"train"} variant is fine-tunable: the
gradient of `default` reaches the embedding variable(s) as IndexedSlices.

The graph holds no initial values beyond a zeros constant per variable (one
float, whatever the shape); the values come from the module's checkpoint.
Default-valued attrs are left out, as TensorFlow leaves them out of a
stripped graph (`meta_info_def.stripped_default_attrs`); loaders fill them in
from their op registry.
"""

from google.protobuf import any_pb2
from tensorboard.compat.proto import attr_value_pb2
from tensorboard.compat.proto import graph_pb2
from tensorboard.compat.proto import meta_graph_pb2
from tensorboard.compat.proto import tensor_pb2
from tensorboard.compat.proto import tensor_shape_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto import variable_pb2
from tensorboard.compat.proto import versions_pb2

from hub_estimator.format import names
from hub_estimator.format import protos

VARIABLE_NAME = "embeddings"
VOCABULARY_FILENAME = "tokens.txt"
COMBINERS = ("mean", "sqrtn", "sum")
PREPROCESSORS = ("whitespace", "strip_punctuation")
SIGNATURE_NAME = "default"
TAGS = ({"train"}, set())

# TensorFlow 2.15's GRAPH_DEF_VERSION (tensorflow/core/public/version.h), the
# producer version TF 2.15 writes into every GraphDef; tests check it.
GRAPH_DEF_PRODUCER = 1645
# Collection keys of a TF1 Hub module's MetaGraphDef
# (tf.compat.v1.GraphKeys; the asset ones are in `names`).
_GLOBAL_VARIABLES = "variables"
_TRAINABLE_VARIABLES = "trainable_variables"
_TABLE_INITIALIZERS = "table_initializer"
# The type URL of an AssetFileDef in an Any; the protos here are in package
# "tensorboard", so Any.Pack would write the wrong name.
_ASSET_FILE_DEF_TYPE_URL = "type.googleapis.com/tensorflow.AssetFileDef"
_SPLIT_DELIMITERS = " \t\n\r"
_PUNCTUATION = r"\pP"
_COMBINE_OPS = {
    "mean": "SparseSegmentMeanWithNumSegments",
    "sqrtn": "SparseSegmentSqrtNWithNumSegments",
    "sum": "SparseSegmentSumWithNumSegments",
}


def partition_rows(rows: int, partitions: int) -> list:
  """Rows of each partition of the embedding variable, in order.

  The rule of `tf.compat.v1.fixed_size_partitioner` with the "div" strategy
  of `tf.nn.embedding_lookup`: the first `rows % partitions` partitions get
  one row more than the others, so no partition is empty.

  Args:
    rows: rows of the full variable (vocabulary plus OOV buckets), >= 1.
    partitions: number of partitions, 1 <= partitions <= rows.

  Returns:
    A list of `partitions` ints >= 1 summing to `rows`.

  Raises:
    ValueError: if rows < 1 or partitions is not in [1, rows].
  """
  if rows < 1:
    raise ValueError("rows must be >= 1; got %d." % rows)
  if not 1 <= partitions <= rows:
    raise ValueError(
        "partitions must be between 1 and rows (%d); got %d."
        % (rows, partitions)
    )
  base, extra = divmod(rows, partitions)
  return [base + 1] * extra + [base] * (partitions - extra)


def saved_model_bytes(
    *,
    rows: int,
    dim: int,
    num_oov_buckets: int,
    combiner: str,
    lowercase: bool,
    preprocess: str,
    partitions: int,
    table_shared_name: str,
) -> bytes:
  """The serialized SavedModel (`saved_model.pb`) of a text-embedding module.

  The module's signature "default" maps input "default", string [batch]
  (sentences), to output "default", float32 [batch, dim]. It reads the
  vocabulary from the asset `tokens.txt` (one token per line, UTF-8, line i
  has id i) and the embedding from the checkpoint: one float32 [rows, dim]
  tensor named "embeddings" (with partitions > 1, stored whole or in any row
  slices; it is restored into partitions of `partition_rows(rows,
  partitions)` rows).

  Args:
    rows: rows of the embedding: vocabulary size (lines of tokens.txt) plus
      num_oov_buckets.
    dim: values per vector, >= 1.
    num_oov_buckets: hash buckets for tokens not in the vocabulary (the last
      rows), >= 1.
    combiner: "mean", "sqrtn" (sum / sqrt(token count)) or "sum".
    lowercase: lowercase sentences (tf.strings.lower, utf-8) before
      splitting; the vocabulary must then be lowercase too.
    preprocess: "whitespace" (split on spaces, tabs, line breaks) or
      "strip_punctuation" (first remove Unicode punctuation, \\pP).
    partitions: partitions of the embedding variable (1: not partitioned).
    table_shared_name: the vocabulary table's shared_name; make it unique
      per export, so that tables of two modules loaded in one process (e.g.
      by TF2's hub.load, which keeps it as is) never coincide.

  Returns:
    The bytes of a SavedModel holding two MetaGraphDefs, tags {"train"} and
    set() (in this order), as tensorflow_hub 0.15 writes them (no saver_def;
    assets in the "saved_model_assets" collection).

  Raises:
    ValueError: for an argument out of range, naming it and its value.
  """
  _check_arguments(
      rows, dim, num_oov_buckets, combiner, preprocess, table_shared_name
  )
  parts = partition_rows(rows, partitions)
  saved_model = protos.SavedModel()
  for tags in TAGS:
    meta_graph = _meta_graph(
        tags,
        parts,
        dim,
        num_oov_buckets,
        combiner,
        lowercase,
        preprocess,
        table_shared_name,
    )
    saved_model.meta_graphs.append(meta_graph.SerializeToString())
  return saved_model.SerializeToString()


def check_options(num_oov_buckets: int, combiner: str, preprocess: str):
  """Checks the module options a user chooses (before any work is done).

  Raises:
    ValueError: naming the option, if num_oov_buckets < 1 or combiner or
      preprocess is not one of COMBINERS / PREPROCESSORS.
  """
  if num_oov_buckets < 1:
    raise ValueError("num_oov_buckets must be >= 1; got %d." % num_oov_buckets)
  if combiner not in COMBINERS:
    raise ValueError(
        "combiner must be one of %s; got %r." % (list(COMBINERS), combiner)
    )
  if preprocess not in PREPROCESSORS:
    raise ValueError(
        "preprocess must be one of %s; got %r."
        % (list(PREPROCESSORS), preprocess)
    )


def _check_arguments(
    rows, dim, num_oov_buckets, combiner, preprocess, table_shared_name
):
  check_options(num_oov_buckets, combiner, preprocess)
  if rows <= num_oov_buckets:
    raise ValueError(
        "rows must exceed num_oov_buckets (%d), leaving a vocabulary of at"
        " least one token; got %d." % (num_oov_buckets, rows)
    )
  if dim < 1:
    raise ValueError("dim must be >= 1; got %d." % dim)
  if not table_shared_name:
    raise ValueError("table_shared_name must not be empty.")


class _Graph:
  """Appends NodeDefs to a GraphDef; attr values given as protos."""

  def __init__(self):
    self.graph_def = graph_pb2.GraphDef(
        versions=versions_pb2.VersionDef(producer=GRAPH_DEF_PRODUCER)
    )

  def node(self, op, name, inputs=(), **attrs):
    """Adds a node; returns its name (its first output)."""
    node = self.graph_def.node.add(op=op, name=name, input=list(inputs))
    for key, value in attrs.items():
      node.attr[key].CopyFrom(value)
    return name

  def const(self, name, dtype, values, shape=()):
    """A Const of `dtype` holding `values` (one value fills `shape`)."""
    tensor = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=_shape(shape))
    field = {
        types_pb2.DT_STRING: tensor.string_val,
        types_pb2.DT_INT32: tensor.int_val,
        types_pb2.DT_INT64: tensor.int64_val,
        types_pb2.DT_FLOAT: tensor.float_val,
    }[dtype]
    field.extend(values)
    return self.node(
        "Const",
        name,
        value=attr_value_pb2.AttrValue(tensor=tensor),
        dtype=_type(dtype),
    )


def _shape(dims):
  return tensor_shape_pb2.TensorShapeProto(
      dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
  )


def _type(dtype):
  return attr_value_pb2.AttrValue(type=dtype)


def _int(value):
  return attr_value_pb2.AttrValue(i=value)


def _str(value):
  return attr_value_pb2.AttrValue(s=value.encode("utf-8"))


_STRING = types_pb2.DT_STRING
_INT32 = types_pb2.DT_INT32
_INT64 = types_pb2.DT_INT64
_FLOAT = types_pb2.DT_FLOAT


def _meta_graph(
    tags,
    parts,
    dim,
    num_oov_buckets,
    combiner,
    lowercase,
    preprocess,
    table_shared_name,
):
  """One graph variant's MetaGraphDef (see the module docstring)."""
  graph = _Graph()
  rows = sum(parts)
  vocabulary_size = rows - num_oov_buckets
  sentences = graph.node(
      "Placeholder",
      "sentences",
      dtype=_type(_STRING),
      shape=attr_value_pb2.AttrValue(shape=_shape([-1])),
  )
  text = sentences
  if lowercase:
    text = graph.node(
        "StringLower", "lowercase", [text], encoding=_str("utf-8")
    )
  if preprocess == "strip_punctuation":
    text = graph.node(
        "StaticRegexReplace",
        "strip_punctuation",
        [text],
        pattern=_str(_PUNCTUATION),
        rewrite=_str(""),
    )
  delimiters = graph.const(
      "split/delimiters", _STRING, [_SPLIT_DELIMITERS.encode("ascii")]
  )
  split = graph.node("StringSplit", "split", [text, delimiters])
  token_indices, tokens = split + ":0", split + ":1"

  ids, table_init, asset = _vocabulary_ids(
      graph, tokens, vocabulary_size, num_oov_buckets, table_shared_name
  )
  unique = graph.node("Unique", "lookup/unique", [ids], T=_type(_INT64))
  variables, embedded = _gather_rows(graph, unique, parts, dim)

  sentence_ids = graph.node(
      "GatherV2",
      "combine/sentence_ids",
      [
          token_indices,
          graph.const("combine/sentence_ids/index", _INT32, [0]),
          graph.const("combine/sentence_ids/axis", _INT32, [1]),
      ],
      Tparams=_type(_INT64),
      Tindices=_type(_INT32),
      Taxis=_type(_INT32),
  )
  batch_size = graph.node(
      "Size", "combine/batch_size", [sentences], T=_type(_STRING)
  )
  output = graph.node(
      _COMBINE_OPS[combiner],
      "combine/" + combiner,
      [embedded, unique + ":1", sentence_ids, batch_size],
      T=_type(_FLOAT),
      Tsegmentids=_type(_INT64),
  )

  meta_graph = meta_graph_pb2.MetaGraphDef(graph_def=graph.graph_def)
  meta_graph.meta_info_def.tags.extend(sorted(tags))
  meta_graph.meta_info_def.stripped_default_attrs = True
  signature = meta_graph.signature_def[SIGNATURE_NAME]
  signature.inputs["default"].CopyFrom(
      meta_graph_pb2.TensorInfo(
          name=sentences + ":0", dtype=_STRING, tensor_shape=_shape([-1])
      )
  )
  signature.outputs["default"].CopyFrom(
      meta_graph_pb2.TensorInfo(
          name=output + ":0", dtype=_FLOAT, tensor_shape=_shape([-1, dim])
      )
  )
  collections = meta_graph.collection_def
  for key in (_GLOBAL_VARIABLES, _TRAINABLE_VARIABLES):
    collections[key].bytes_list.value.extend(
        v.SerializeToString() for v in variables
    )
  collections[_TABLE_INITIALIZERS].node_list.value.append(table_init)
  collections[names.ASSET_FILEPATHS_KEY].node_list.value.append(asset + ":0")
  asset_file_def = meta_graph_pb2.AssetFileDef(
      tensor_info=meta_graph_pb2.TensorInfo(name=asset + ":0"),
      filename=VOCABULARY_FILENAME,
  )
  collections[names.SAVED_MODEL_ASSETS_KEY].any_list.value.append(
      any_pb2.Any(
          type_url=_ASSET_FILE_DEF_TYPE_URL,
          value=asset_file_def.SerializeToString(),
      )
  )
  return meta_graph


def _vocabulary_ids(
    graph, tokens, vocabulary_size, num_oov_buckets, table_shared_name
):
  """Adds the vocabulary lookup; returns (ids, initializer, asset const)."""
  asset = graph.const(
      "lookup/vocabulary_file", _STRING, [names.ASSET_PLACEHOLDER_VALUE]
  )
  table = graph.node(
      "HashTableV2",
      "lookup/table",
      shared_name=_str(table_shared_name),
      key_dtype=_type(_STRING),
      value_dtype=_type(_INT64),
  )
  # key_index -2: the whole line is the key; value_index -1: its line number.
  # vocab_size makes a shorter tokens.txt an error at initialization.
  init = graph.node(
      "InitializeTableFromTextFileV2",
      "lookup/table_init",
      [table, asset],
      key_index=_int(-2),
      value_index=_int(-1),
      vocab_size=_int(vocabulary_size),
  )
  missing = graph.const("lookup/missing", _INT64, [-1])
  found = graph.node(
      "LookupTableFindV2",
      "lookup/find",
      [table, tokens, missing],
      Tin=_type(_STRING),
      Tout=_type(_INT64),
  )
  bucket = graph.node(
      "StringToHashBucketFast",
      "lookup/oov_bucket",
      [tokens],
      num_buckets=_int(num_oov_buckets),
  )
  oov_id = graph.node(
      "AddV2",
      "lookup/oov_id",
      [
          bucket,
          graph.const("lookup/vocabulary_size", _INT64, [vocabulary_size]),
      ],
      T=_type(_INT64),
  )
  known = graph.node(
      "NotEqual", "lookup/known", [found, missing], T=_type(_INT64)
  )
  ids = graph.node(
      "SelectV2", "lookup/ids", [known, found, oov_id], T=_type(_INT64)
  )
  return ids, init, asset


def _variable(graph, name, shape, save_slice_info=None):
  """Adds a zeros-initialized float32 resource variable; its VariableDef."""
  zeros = graph.const(name + "/Initializer/zeros", _FLOAT, [0.0], shape)
  handle = graph.node(
      "VarHandleOp",
      name,
      shared_name=_str(name),
      dtype=_type(_FLOAT),
      shape=attr_value_pb2.AttrValue(shape=_shape(shape)),
  )
  assign = graph.node(
      "AssignVariableOp",
      name + "/Assign",
      [handle, zeros],
      dtype=_type(_FLOAT),
  )
  read = graph.node(
      "ReadVariableOp",
      name + "/Read/ReadVariableOp",
      [handle],
      dtype=_type(_FLOAT),
  )
  return variable_pb2.VariableDef(
      variable_name=handle + ":0",
      initial_value_name=zeros + ":0",
      initializer_name=assign,
      snapshot_name=read + ":0",
      save_slice_info_def=save_slice_info,
      is_resource=True,
      trainable=True,
  )


def _gather_rows(graph, ids, parts, dim):
  """Adds the variable(s) and the gather of rows `ids` (int64 [k]).

  Returns:
    (VariableDefs, name of the float32 [k, dim] rows).
  """
  rows = sum(parts)
  if len(parts) == 1:
    variable = _variable(graph, VARIABLE_NAME, [rows, dim])
    gathered = graph.node(
        "ResourceGather",
        "lookup/rows",
        [VARIABLE_NAME, ids],
        dtype=_type(_FLOAT),
        Tindices=_type(_INT64),
    )
    return [variable], gathered

  variables = []
  offset = 0
  for index, part_rows in enumerate(parts):
    variables.append(
        _variable(
            graph,
            "%s/part_%d" % (VARIABLE_NAME, index),
            [part_rows, dim],
            variable_pb2.SaveSliceInfoDef(
                full_name=VARIABLE_NAME,
                full_shape=[rows, dim],
                var_offset=[offset, 0],
                var_shape=[part_rows, dim],
            ),
        )
    )
    offset += part_rows

  # The partition of id x (see partition_rows): with `base` rows in most
  # partitions and `extra` partitions of base + 1 first,
  # max(x // (base + 1), (x - extra) // base); the id within it is x minus
  # the partition's first row.
  base, extra = divmod(rows, len(parts))

  def int64_op(op, name, x, y):
    return graph.node(op, "lookup/route/" + name, [x, y], T=_type(_INT64))

  def int64_const(name, value):
    return graph.const("lookup/route/" + name, _INT64, [value])

  part = int64_op(
      "Maximum",
      "partition",
      int64_op("FloorDiv", "in_long", ids, int64_const("long_rows", base + 1)),
      int64_op(
          "FloorDiv",
          "in_short",
          int64_op("Sub", "past_long", ids, int64_const("long_parts", extra)),
          int64_const("short_rows", base),
      ),
  )
  starts = graph.const(
      "lookup/route/starts",
      _INT64,
      [sum(parts[:i]) for i in range(len(parts))],
      [len(parts)],
  )
  start = graph.node(
      "GatherV2",
      "lookup/route/start",
      [starts, part, graph.const("lookup/route/axis", _INT32, [0])],
      Tparams=_type(_INT64),
      Tindices=_type(_INT64),
      Taxis=_type(_INT32),
  )
  local_ids = int64_op("Sub", "local_ids", ids, start)
  part32 = graph.node(
      "Cast",
      "lookup/route/partition_int32",
      [part],
      SrcT=_type(_INT64),
      DstT=_type(_INT32),
  )
  positions = graph.node(
      "Range",
      "lookup/route/positions",
      [
          graph.const("lookup/route/zero", _INT32, [0]),
          graph.node("Size", "lookup/route/count", [ids], T=_type(_INT64)),
          graph.const("lookup/route/one", _INT32, [1]),
      ],
  )
  routed_ids = graph.node(
      "DynamicPartition",
      "lookup/route/ids",
      [local_ids, part32],
      num_partitions=_int(len(parts)),
      T=_type(_INT64),
  )
  routed_positions = graph.node(
      "DynamicPartition",
      "lookup/route/by_position",
      [positions, part32],
      num_partitions=_int(len(parts)),
      T=_type(_INT32),
  )
  gathered = [
      graph.node(
          "ResourceGather",
          "lookup/rows_%d" % i,
          ["%s/part_%d" % (VARIABLE_NAME, i), "%s:%d" % (routed_ids, i)],
          dtype=_type(_FLOAT),
          Tindices=_type(_INT64),
      )
      for i in range(len(parts))
  ]
  stitched = graph.node(
      "DynamicStitch",
      "lookup/rows",
      ["%s:%d" % (routed_positions, i) for i in range(len(parts))] + gathered,
      N=_int(len(parts)),
      T=_type(_FLOAT),
  )
  return variables, stitched
