"""Signature values: building TensorInfo protos, parsing them, matching caller inputs."""

import tensorflow as tf
from tensorflow.core.protobuf import struct_pb2
from tensorflow.python.saved_model import nested_structure_coder
from tensorflow.python.saved_model import utils_impl

SUPPORTED_TYPES = (tf.Tensor, tf.SparseTensor, tf.RaggedTensor)


def type_name(value):
  """Returns the short class name of `value`, for error messages."""
  return type(value).__name__


def build_tensor_info(value):
  """Returns the TensorInfo proto describing a Tensor, SparseTensor or RaggedTensor."""
  return utils_impl.build_tensor_info_internal(value)


_NO_DEFAULT = object()


class ParsedTensorInfo:
  """What a signature declares for one input or output: type spec, dtype and shape.

  For an input made with `tf.compat.v1.placeholder_with_default` it also tells
  that callers may leave the input out (`has_default`) and, when the default
  is a constant of the module graph, its value (`default_value`).
  """

  def __init__(self, tensor_info, default=_NO_DEFAULT):
    """Parses `tensor_info`.

    Args:
      tensor_info: a TensorInfo proto.
      default: for an input with a default, the default's value as a numpy
        array, or None when the default is computed in the graph (not a
        constant); left out for values without a default.
    """
    self._tensor_info = tensor_info
    self._has_default = default is not _NO_DEFAULT
    self._default_value = None if default is _NO_DEFAULT else default
    encoding = tensor_info.WhichOneof("encoding")
    self._encoding = encoding
    if encoding == "composite_tensor":
      self._type_spec = nested_structure_coder.decode_proto(
          struct_pb2.StructuredValue(
              type_spec_value=tensor_info.composite_tensor.type_spec
          )
      )
    else:
      dtype = tf.as_dtype(tensor_info.dtype)
      shape = tf.TensorShape(tensor_info.tensor_shape)
      if encoding == "coo_sparse":
        self._type_spec = tf.SparseTensorSpec(shape, dtype)
      else:
        self._type_spec = tf.TensorSpec(shape, dtype)

  @property
  def tensor_info(self):
    """The underlying TensorInfo proto."""
    return self._tensor_info

  @property
  def dtype(self):
    """The dtype of the (values of the) tensor."""
    return self._type_spec.dtype

  def get_shape(self):
    """The static shape of the (dense form of the) tensor."""
    return self._type_spec.shape

  @property
  def is_sparse(self):
    return self._encoding == "coo_sparse"

  @property
  def has_default(self):
    """True for an input that callers may leave out (a placeholder_with_default)."""
    return self._has_default

  @property
  def default_value(self):
    """The default of an input as a numpy array of `dtype` and the input's shape.

    None when the input has no default (`has_default` is false) or when its
    default is computed in the module graph rather than a constant.
    """
    return self._default_value

  @property
  def is_composite(self):
    return self._encoding in ("coo_sparse", "composite_tensor")

  @property
  def type_spec(self):
    return self._type_spec

  @property
  def is_supported_type(self):
    return issubclass(self._type_spec.value_type, SUPPORTED_TYPES)

  def component_names(self):
    """Graph tensor names of the flat components, in `expand_composites` order."""
    info = self._tensor_info
    if self._encoding == "name":
      return [info.name]
    if self._encoding == "coo_sparse":
      return [
          info.coo_sparse.indices_tensor_name,
          info.coo_sparse.values_tensor_name,
          info.coo_sparse.dense_shape_tensor_name,
      ]
    return [c.name for c in info.composite_tensor.components]

  def build(self, get_tensor):
    """Returns the value made of the tensors that `get_tensor(name)` returns."""
    components = [get_tensor(name) for name in self.component_names()]
    if self._encoding == "name":
      return components[0]
    if self._encoding == "coo_sparse":
      return tf.SparseTensor(*components)
    return tf.nest.pack_sequence_as(
        self._type_spec, components, expand_composites=True
    )

  def __repr__(self):
    if self._encoding == "composite_tensor":
      return "<hub.ParsedTensorInfo type_spec=%s>" % self._type_spec
    default = ""
    if self._has_default:
      default = " default=%s" % describe_default(self)
    return "<hub.ParsedTensorInfo shape=%s dtype=%s is_sparse=%s%s>" % (
        self.get_shape(),
        self.dtype.name,
        self.is_sparse,
        default,
    )


def describe_default(info):
  """Returns the default of an input as short text ("computed" if not constant)."""
  value = info.default_value
  if value is None:
    return "computed"
  if value.ndim == 0:
    return str(value)
  return "%s %s" % (value.dtype.name, list(value.shape))


def parse_tensor_info_map(protomap, defaults=None):
  """Returns a dict of ParsedTensorInfo for a map of TensorInfo protos.

  Args:
    protomap: map from key to TensorInfo proto.
    defaults: dict from key to the default value (numpy array, or None when
      computed) of the inputs that have one; None means no input has one.
  """
  defaults = defaults or {}
  return {
      key: ParsedTensorInfo(info, defaults.get(key, _NO_DEFAULT))
      for key, info in protomap.items()
  }


def pack_inputs(inputs, input_info, signature, optional_keys=()):
  """Puts the caller's `inputs` into a dict keyed like the signature's inputs.

  Args:
    inputs: None, a dict, or a single value for a signature with one input (or
      one input without a default).
    input_info: dict of ParsedTensorInfo declared by the signature.
    signature: the signature name, for messages.
    optional_keys: keys of inputs that have defaults.

  Returns:
    A dict from input key to the caller's value.

  Raises:
    TypeError: if the caller's inputs do not fit the signature's keys.
  """
  if inputs is None:
    inputs = {}
  if not isinstance(inputs, dict):
    required = [key for key in input_info if key not in optional_keys]
    if len(input_info) == 1:
      inputs = {next(iter(input_info)): inputs}
    elif len(required) == 1:
      inputs = {required[0]: inputs}
    elif not input_info:
      raise TypeError(
          "Signature %r expects no inputs, but a %s was given."
          % (signature, type_name(inputs))
      )
    else:
      raise TypeError(
          "Signature %r expects multiple inputs %s. Use a dict."
          % (signature, sorted(input_info))
      )
  return dict(inputs)


def check_input_keys(inputs, input_info, optional_keys, signature):
  """Raises TypeError naming missing and unexpected input keys."""
  missing = sorted(set(input_info) - set(inputs) - set(optional_keys))
  extra = sorted(set(inputs) - set(input_info))
  if missing or extra:
    raise TypeError(
        "Cannot convert dict_inputs for signature %r: missing %s, extra given "
        "%s. The signature expects %s%s."
        % (
            signature,
            missing,
            extra,
            sorted(input_info),
            " (optional: %s)" % sorted(optional_keys) if optional_keys else "",
        )
    )


def convert_input(key, value, info, signature):
  """Converts one caller input to a graph value compatible with `info`.

  Raises:
    TypeError: if the value's kind, dtype or shape does not fit the signature.
  """
  if isinstance(value, tf.compat.v1.SparseTensorValue):
    raise TypeError(
        "Input %r of signature %r is a SparseTensorValue; pass a"
        " tf.SparseTensor instead." % (key, signature)
    )
  if not isinstance(value, (tf.SparseTensor, tf.RaggedTensor)):
    expected_dtype = (
        info.dtype if info.type_spec.value_type is tf.Tensor else None
    )
    try:
      value = tf.convert_to_tensor(value, dtype_hint=expected_dtype)
    except (TypeError, ValueError) as e:
      raise TypeError(
          "Can't convert input %r of signature %r to a tensor of %s: %s"
          % (key, signature, info.type_spec, e)
      ) from None
  if (
      info.type_spec.value_type is tf.Tensor
      and isinstance(value, tf.Tensor)
      and value.dtype != info.dtype
  ):
    raise TypeError(
        "Can't convert input %r of signature %r: got dtype %s, expected %s "
        "(spec %s)."
        % (key, signature, value.dtype.name, info.dtype.name, info.type_spec)
    )
  got_spec = tf.type_spec_from_value(value)
  if not info.type_spec.is_compatible_with(got_spec):
    raise TypeError(
        "Can't convert input %r of signature %r: got %s, expected %s."
        % (
            key,
            signature,
            _describe_spec(got_spec),
            _describe_spec(info.type_spec),
        )
    )
  return value


def _describe_spec(spec):
  if spec.value_type is tf.Tensor:
    return str(spec)
  return "%s (%s)" % (spec.value_type.__name__, spec)
