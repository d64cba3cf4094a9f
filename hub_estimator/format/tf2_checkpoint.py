"""Writes a TF2 SavedModel whose checkpoint is a byte copy of a TF1 one.

`tf.saved_model.save` reads every variable and writes it again with SaveV2
(checksumming it); for a TF1 Hub module converted to TF2 the values are
already on disk, in the module's `variables/` checkpoint. `save()` here
writes the same SavedModel as `tf.saved_model.save` (TensorFlow 2.15's
`save_and_return_nodes`, step by step) except the checkpoint: its data file
is a copy of the module's data file, the `_CHECKPOINTABLE_OBJECT_GRAPH`
string appended, and its index names each variable's bytes in that copy
under the TF2 checkpoint key (with the module's CRC32C). So the variables
are never read into memory, and need not be initialized when saving.

`CopyPlan.for_module` decides whether the copy is possible: one data shard,
every variable stored whole (or, for a partition, as exactly its slice) with
its own dtype, and the variables' bytes making up the whole data file (so the
copy holds nothing else). Otherwise the caller reads the values and saves
with `tf.saved_model.save`.
"""

import dataclasses
import os
import shutil
from typing import Dict, Optional

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.eager import context
from tensorflow.python.framework import ops
from tensorflow.python.lib.io import file_io
from tensorflow.python.ops import resource_variable_ops
from tensorflow.python.saved_model import builder_impl
from tensorflow.python.saved_model import fingerprinting_utils
from tensorflow.python.saved_model import pywrap_saved_model
from tensorflow.python.saved_model import save as save_lib
from tensorflow.python.saved_model.pywrap_saved_model import constants
from tensorflow.python.saved_model.pywrap_saved_model import metrics
from tensorflow.python.trackable import base as trackable_base

from hub_estimator.format import bundle_writer
from hub_estimator.format import protos

_DT_STRING = 7  # types.proto
# The dtypes whose tensors are their raw little-endian bytes in a checkpoint.
_FIXED_SIZE_DTYPES = frozenset(
    v for k, v in protos.DATA_TYPES.items() if k != "DT_INVALID"
)


@dataclasses.dataclass(frozen=True)
class VariableSource:
  """Where one variable's value is in a TF1 checkpoint.

  Attributes:
    key: the checkpoint key of the (full) tensor.
    slice_spec: "" for a whole tensor, else a partition's slice as SaveV2's
      shape_and_slices takes it ("<full shape> <offset>,<size>:...").
    offsets: the partition's offset per dimension (empty when whole).
    shape: the partition's shape per dimension (empty when whole).
    dtype: the variable's tf.DType.
  """

  key: str
  slice_spec: str
  offsets: tuple
  shape: tuple
  dtype: tf.DType


class CopyPlan:
  """The module checkpoint entries that the TF2 variables copy, by name."""

  def __init__(self, prefix: str, entries: Dict[str, object], data_size: int):
    self._prefix = prefix
    self.entries = entries  # variable name -> BundleEntryProto
    self._data_size = data_size

  @classmethod
  def for_module(
      cls, prefix: str, sources: Dict[str, VariableSource]
  ) -> Optional["CopyPlan"]:
    """The plan for a module checkpoint, or None if its bytes cannot be copied.

    Args:
      prefix: the module's checkpoint prefix (a local path).
      sources: variable name -> where its value is.

    Returns:
      None when the checkpoint is not local or not one shard, a variable is
      missing, has another dtype, a string or other non-numeric dtype, or a
      partition is not stored as exactly its slice, or when the variables'
      bytes do not make up the whole data file; else the plan.
    """
    data_path = bundle_writer.data_filename(prefix)
    if "://" in prefix or not os.path.isfile(data_path):
      return None
    try:
      header, index = bundle_writer.read_index(prefix)
    except (OSError, ValueError):
      return None  # tf.saved_model.save's path reports what is wrong.
    if header.num_shards != 1 or header.endianness != 0:
      return None
    entries = {}
    for name, source in sources.items():
      key = source.key.encode("utf-8")
      if source.slice_spec:
        key = bundle_writer.slice_key(
            source.key, list(zip(source.offsets, source.shape))
        )
      entry = index.get(key)
      if (
          entry is None
          or entry.slices
          or entry.shard_id
          or entry.dtype != source.dtype.as_datatype_enum
          or entry.dtype not in _FIXED_SIZE_DTYPES
      ):
        return None
      entries[name] = entry
    # The variables' bytes must tile the data file: nothing shared or left.
    end = 0
    for entry in sorted(entries.values(), key=lambda e: e.offset):
      if entry.offset != end:
        return None
      end += entry.size
    if end != os.path.getsize(data_path):
      return None
    return cls(prefix, entries, end)

  def variable(self, name: str, trainable: bool) -> tf.Variable:
    """An uninitialized variable of the entry's dtype and shape."""
    entry = self.entries[name]
    return resource_variable_ops.UninitializedVariable(
        shape=[d.size for d in entry.shape.dim],
        dtype=tf.dtypes.as_dtype(entry.dtype),
        trainable=trainable,
        name=name,
    )

  def write(self, prefix: str, keys: Dict[str, str], object_graph: bytes):
    """Writes the TF2 checkpoint `prefix` (local path).

    Args:
      prefix: the checkpoint prefix to write, e.g. `<dir>/variables/variables`.
      keys: variable name -> its TF2 checkpoint key.
      object_graph: the serialized TrackableObjectGraph.
    """
    data_path = bundle_writer.data_filename(prefix)
    shutil.copyfile(bundle_writer.data_filename(self._prefix), data_path)
    data, crc = bundle_writer.string_scalar(object_graph)
    with open(data_path, "ab") as f:
      f.write(data)
    index = {}
    for name, key in keys.items():
      entry = protos.BundleEntryProto()
      entry.CopyFrom(self.entries[name])
      index[key.encode("utf-8")] = entry
    graph_entry = protos.BundleEntryProto(
        dtype=_DT_STRING, offset=self._data_size, size=len(data), crc32c=crc
    )
    graph_entry.shape.SetInParent()
    index[trackable_base.OBJECT_GRAPH_PROTO_KEY.encode("utf-8")] = graph_entry
    bundle_writer.write_index(prefix, index)


def _copy_keys(object_saver, variables: Dict[str, tf.Variable]):
  """TF2 checkpoint keys of `variables` and the object graph, or None.

  None when the checkpoint would hold anything but the variables' values and
  the object graph (e.g. a registered saver or another trackable's state).
  """
  serialized, _, registered, graph_proto = (
      object_saver._gather_serialized_tensors(None)  # pylint: disable=protected-access
  )
  if registered:
    return None
  by_id = {id(v): name for name, v in variables.items()}
  keys = {}
  for trackable, tensors in serialized.items():
    if not tensors:  # e.g. a table or function: nothing in the checkpoint
      continue
    if trackable is None:
      if set(tensors) != {trackable_base.OBJECT_GRAPH_PROTO_KEY}:
        return None
      continue
    name = by_id.get(id(trackable))
    if name is None or len(tensors) != 1:
      return None
    (key,) = tensors
    keys[name] = key
  if set(keys) != set(variables):
    return None
  return keys, graph_proto.SerializeToString()


def save(root, export_dir: str, signatures, plan: CopyPlan, variables, restore):
  """`tf.saved_model.save(root, export_dir, signatures)`, checkpoint copied.

  Args:
    root: the trackable object to save.
    export_dir: a new local directory.
    signatures: as for `tf.saved_model.save`.
    plan: the `CopyPlan` the (uninitialized) `variables` came from.
    variables: variable name -> tf.Variable, those of `plan`.
    restore: function of no arguments that assigns the variables their
      values: called (and TensorFlow's checkpoint written instead) if the
      checkpoint would hold more than the variables.

  Raises:
    OSError: copying the data file or writing a file failed.
    The errors of `tf.saved_model.save` for what it cannot save.
  """
  options = tf.saved_model.SaveOptions()
  saved_model = saved_model_pb2.SavedModel()
  meta_graph_def = saved_model.meta_graphs.add()
  _, exported_graph, object_saver, asset_info, _, _ = (
      save_lib._build_meta_graph(  # pylint: disable=protected-access
          root, signatures, options, meta_graph_def
      )
  )
  saved_model.saved_model_schema_version = constants.SAVED_MODEL_SCHEMA_VERSION
  os.makedirs(os.path.join(export_dir, "variables"), exist_ok=True)
  prefix = os.path.join(export_dir, "variables", "variables")
  copy = _copy_keys(object_saver, variables)
  if copy is None:
    restore()
    object_saver.save(prefix)
  else:
    plan.write(prefix, *copy)
  builder_impl.copy_assets_to_destination_dir(
      asset_info.asset_filename_map, export_dir
  )
  context.async_wait()
  pywrap_saved_model.Save(export_dir)
  file_io.atomic_write_string_to_file(
      os.path.join(export_dir, constants.SAVED_MODEL_FILENAME_PB),
      saved_model.SerializeToString(deterministic=True),
  )
  fingerprinting_utils.write_fingerprint(export_dir)
  metrics.SetWritePath(saved_model_path=str(export_dir))
  ops.dismantle_graph(exported_graph)
