"""Protocol buffers of the TF1 Hub format, declared in a private descriptor pool.

Field numbers match tensorflow_hub's `module_def.proto`, `module_attachment.proto` and
`image_module_info.proto`, so the bytes are the same on the wire. The messages live in
their own pool so that they never clash with tensorflow_hub's classes in one process.

`SavedModel` has the field numbers of TensorFlow's `saved_model.proto`, with its
MetaGraphDefs held as serialized bytes (a message field and a bytes field are the
same on the wire): writers that build MetaGraphDefs without TensorFlow (with the
protos tensorboard ships, `tensorboard.compat.proto`) wrap them in it.

The checkpoint messages (`BundleHeaderProto`, `BundleEntryProto` and the
`TensorShapeProto`, `TensorSliceProto`, `VersionDef` and `DataType` they use)
have the field numbers and enum values of TensorFlow's `tensor_bundle.proto`,
`tensor_shape.proto`, `tensor_slice.proto`, `versions.proto` and `types.proto`,
for `format.bundle_writer`, which writes checkpoints without TensorFlow.
"""

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

_FIELD = descriptor_pb2.FieldDescriptorProto


def _build_file():
  file_proto = descriptor_pb2.FileDescriptorProto(
      name="hub_estimator/format.proto",
      package="hub_estimator",
      syntax="proto3",
  )

  module_def = file_proto.message_type.add(name="ModuleDef")
  fmt = module_def.enum_type.add(name="Format")
  fmt.value.add(name="FORMAT_UNSPECIFIED", number=0)
  fmt.value.add(name="FORMAT_V3", number=3)
  module_def.field.add(
      name="format",
      number=1,
      label=_FIELD.LABEL_OPTIONAL,
      type=_FIELD.TYPE_ENUM,
      type_name=".hub_estimator.ModuleDef.Format",
  )
  module_def.field.add(
      name="required_features",
      number=2,
      label=_FIELD.LABEL_REPEATED,
      type=_FIELD.TYPE_STRING,
  )

  attachment = file_proto.message_type.add(name="ModuleAttachment")
  attachment.field.add(
      name="key", number=1, label=_FIELD.LABEL_OPTIONAL, type=_FIELD.TYPE_STRING
  )
  attachment.field.add(
      name="value",
      number=2,
      label=_FIELD.LABEL_OPTIONAL,
      type=_FIELD.TYPE_BYTES,
  )

  image_info = file_proto.message_type.add(name="ImageModuleInfo")
  input_size = image_info.nested_type.add(name="InputSize")
  input_size.field.add(
      name="height",
      number=1,
      label=_FIELD.LABEL_OPTIONAL,
      type=_FIELD.TYPE_INT32,
  )
  input_size.field.add(
      name="width",
      number=2,
      label=_FIELD.LABEL_OPTIONAL,
      type=_FIELD.TYPE_INT32,
  )
  input_size.reserved_range.add(start=3, end=4)
  image_info.field.add(
      name="default_image_size",
      number=1,
      label=_FIELD.LABEL_OPTIONAL,
      type=_FIELD.TYPE_MESSAGE,
      type_name=".hub_estimator.ImageModuleInfo.InputSize",
  )
  saved_model = file_proto.message_type.add(name="SavedModel")
  saved_model.field.add(
      name="saved_model_schema_version",
      number=1,
      label=_FIELD.LABEL_OPTIONAL,
      type=_FIELD.TYPE_INT64,
  )
  saved_model.field.add(
      name="meta_graphs",
      number=2,
      label=_FIELD.LABEL_REPEATED,
      type=_FIELD.TYPE_BYTES,
  )
  _add_checkpoint_messages(file_proto)
  return file_proto


def _add_field(message, name, number, field_type, label=None, **kwargs):
  message.field.add(
      name=name,
      number=number,
      label=label or _FIELD.LABEL_OPTIONAL,
      type=field_type,
      **kwargs,
  )


# TensorFlow's `types.proto` DataType values of the dtypes a checkpoint entry
# may have here (fixed-size numbers; no strings, resources or variants).
DATA_TYPES = {
    "DT_INVALID": 0,
    "DT_FLOAT": 1,
    "DT_DOUBLE": 2,
    "DT_INT32": 3,
    "DT_UINT8": 4,
    "DT_INT16": 5,
    "DT_INT8": 6,
    "DT_COMPLEX64": 8,
    "DT_INT64": 9,
    "DT_BOOL": 10,
    "DT_BFLOAT16": 14,
    "DT_UINT16": 17,
    "DT_COMPLEX128": 18,
    "DT_HALF": 19,
    "DT_UINT32": 22,
    "DT_UINT64": 23,
}


def _add_checkpoint_messages(file_proto):
  """Adds the messages of a tensor bundle's `.index` (tensor_bundle.proto)."""
  data_type = file_proto.enum_type.add(name="DataType")
  for name, number in DATA_TYPES.items():
    data_type.value.add(name=name, number=number)

  shape = file_proto.message_type.add(name="TensorShapeProto")
  dim = shape.nested_type.add(name="Dim")
  _add_field(dim, "size", 1, _FIELD.TYPE_INT64)
  _add_field(dim, "name", 2, _FIELD.TYPE_STRING)
  _add_field(
      shape,
      "dim",
      2,
      _FIELD.TYPE_MESSAGE,
      label=_FIELD.LABEL_REPEATED,
      type_name=".hub_estimator.TensorShapeProto.Dim",
  )
  _add_field(shape, "unknown_rank", 3, _FIELD.TYPE_BOOL)

  tensor_slice = file_proto.message_type.add(name="TensorSliceProto")
  extent = tensor_slice.nested_type.add(name="Extent")
  extent.oneof_decl.add(name="has_length")
  _add_field(extent, "start", 1, _FIELD.TYPE_INT64)
  _add_field(extent, "length", 2, _FIELD.TYPE_INT64, oneof_index=0)
  _add_field(
      tensor_slice,
      "extent",
      1,
      _FIELD.TYPE_MESSAGE,
      label=_FIELD.LABEL_REPEATED,
      type_name=".hub_estimator.TensorSliceProto.Extent",
  )

  version = file_proto.message_type.add(name="VersionDef")
  _add_field(version, "producer", 1, _FIELD.TYPE_INT32)
  _add_field(version, "min_consumer", 2, _FIELD.TYPE_INT32)
  _add_field(
      version,
      "bad_consumers",
      3,
      _FIELD.TYPE_INT32,
      label=_FIELD.LABEL_REPEATED,
  )

  header = file_proto.message_type.add(name="BundleHeaderProto")
  endianness = header.enum_type.add(name="Endianness")
  endianness.value.add(name="LITTLE", number=0)
  endianness.value.add(name="BIG", number=1)
  _add_field(header, "num_shards", 1, _FIELD.TYPE_INT32)
  _add_field(
      header,
      "endianness",
      2,
      _FIELD.TYPE_ENUM,
      type_name=".hub_estimator.BundleHeaderProto.Endianness",
  )
  _add_field(
      header,
      "version",
      3,
      _FIELD.TYPE_MESSAGE,
      type_name=".hub_estimator.VersionDef",
  )

  entry = file_proto.message_type.add(name="BundleEntryProto")
  _add_field(
      entry, "dtype", 1, _FIELD.TYPE_ENUM, type_name=".hub_estimator.DataType"
  )
  _add_field(
      entry,
      "shape",
      2,
      _FIELD.TYPE_MESSAGE,
      type_name=".hub_estimator.TensorShapeProto",
  )
  _add_field(entry, "shard_id", 3, _FIELD.TYPE_INT32)
  _add_field(entry, "offset", 4, _FIELD.TYPE_INT64)
  _add_field(entry, "size", 5, _FIELD.TYPE_INT64)
  _add_field(entry, "crc32c", 6, _FIELD.TYPE_FIXED32)
  _add_field(
      entry,
      "slices",
      7,
      _FIELD.TYPE_MESSAGE,
      label=_FIELD.LABEL_REPEATED,
      type_name=".hub_estimator.TensorSliceProto",
  )


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_build_file())


def _message_class(full_name):
  descriptor = _POOL.FindMessageTypeByName(full_name)
  if hasattr(message_factory, "GetMessageClass"):
    return message_factory.GetMessageClass(descriptor)
  return message_factory.MessageFactory(_POOL).GetPrototype(descriptor)


ModuleDef = _message_class("hub_estimator.ModuleDef")
ModuleAttachment = _message_class("hub_estimator.ModuleAttachment")
ImageModuleInfo = _message_class("hub_estimator.ImageModuleInfo")
SavedModel = _message_class("hub_estimator.SavedModel")
TensorShapeProto = _message_class("hub_estimator.TensorShapeProto")
TensorSliceProto = _message_class("hub_estimator.TensorSliceProto")
VersionDef = _message_class("hub_estimator.VersionDef")
BundleHeaderProto = _message_class("hub_estimator.BundleHeaderProto")
BundleEntryProto = _message_class("hub_estimator.BundleEntryProto")

FORMAT_V3 = 3
