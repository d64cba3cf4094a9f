"""Protocol buffers of the TF1 Hub format, declared in a private descriptor pool.

Field numbers match tensorflow_hub's `module_def.proto`, `module_attachment.proto` and
`image_module_info.proto`, so the bytes are the same on the wire. The messages live in
their own pool so that they never clash with tensorflow_hub's classes in one process.

`SavedModel` has the field numbers of TensorFlow's `saved_model.proto`, with its
MetaGraphDefs held as serialized bytes (a message field and a bytes field are the
same on the wire): writers that build MetaGraphDefs without TensorFlow (with the
protos tensorboard ships, `tensorboard.compat.proto`) wrap them in it.
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
  return file_proto


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

FORMAT_V3 = 3
