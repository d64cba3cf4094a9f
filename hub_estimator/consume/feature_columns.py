"""Feature columns that embed text or images with a TF1 Hub module.

`text_embedding_column`, `sparse_text_embedding_column` and
`image_embedding_column` return dense columns that work with both feature
column APIs in graph mode:

* v1 (`_DenseColumn`): `tf.compat.v1.feature_column.input_layer`,
  `tf.compat.v1.estimator.*` canned estimators;
* v2 (`DenseColumn`): `tf.keras.layers.DenseFeatures`, `tf.estimator.*` canned
  estimators, `tf.feature_column.make_parse_example_spec`.

Each column instantiates its module once per state manager (v2) or once per
graph (v1), so repeated calls share the module's variables and tables. The
module's variables are trainable only if the column says `trainable=True` *and*
the caller trains (the `trainable` argument of `input_layer`, the `trainable`
flag of the DenseFeatures layer). Fine-tuned variables of a v2 layer are
reported by `layer.trainable_weights`, which is what `tf.estimator`'s v2 canned
estimators optimize.

A module is checked when the column is created; every problem with its
"default" signature is reported in one ValueError naming the module.
"""

import abc
import collections
import os

import tensorflow as tf

# Custom feature columns can only be written against TensorFlow's internal base
# classes (tensorflow_hub 0.15 does the same).
from tensorflow.python.feature_column import feature_column as fc_v1  # pylint: disable=g-direct-tensorflow-import
from tensorflow.python.feature_column import feature_column_v2 as fc_v2  # pylint: disable=g-direct-tensorflow-import

from hub_estimator.format import module as module_lib
from hub_estimator.format import op_policy
from hub_estimator.format import protos
from hub_estimator.format import spec as spec_lib

IMAGE_MODULE_INFO_KEY = "image_module_info"
_COMBINERS = ("mean", "sqrtn", "sum")
_RESOURCE_NAME = "hub_module"
# The graph attribute holding {(column, trainable): Module}, the modules the v1 API
# instantiated in that graph (kept on the graph so that they die with it).
_GRAPH_ATTRIBUTE = "_hub_estimator_feature_column_modules"


def _spec_and_source(module_spec, allowed_ops=None):
  """Returns (ModuleSpec, description for messages) of a spec or a path."""
  spec = module_lib.as_module_spec(module_spec, allowed_ops)
  return spec, spec.source


def _allowed_ops_field(allowed_ops):
  """`allowed_ops` as a hashable column field: None, TRUST_ALL_OPS or a tuple."""
  allowed_ops = op_policy.check_allowed_ops(allowed_ops)
  if isinstance(allowed_ops, frozenset):
    return tuple(sorted(allowed_ops))
  return allowed_ops


def _describe(info):
  """Describes a ParsedTensorInfo as e.g. `Tensor(float32, [None, 3])`."""
  kind = info.type_spec.value_type.__name__
  return "%s(%s, %s)" % (kind, info.dtype.name, _shape_text(info.get_shape()))


def _dims(shape):
  """The dimensions of a TensorShape as ints or None (under either TensorShape behaviour)."""
  return None if shape.rank is None else shape.as_list()


def _shape_text(shape):
  dims = _dims(shape)
  return "unknown rank" if dims is None else str(dims)


def _default_signature_infos(spec, issues):
  """Returns (inputs, outputs) of the default signature, or None after noting why not."""
  try:
    return spec.get_input_info_dict(), spec.get_output_info_dict()
  except (KeyError, ValueError) as e:
    issues.append(
        "it has no usable 'default' signature in its graph variant "
        "without tags: %s" % (e.args[0] if e.args else e)
    )
    return None


def _embedding_output_issues(outputs):
  """Problems of the "default" output of an embedding signature."""
  if "default" not in outputs:
    return [
        "the 'default' signature must have an output named 'default' (it has "
        "%s)"
        % sorted(outputs)
    ]
  info = outputs["default"]
  dims = _dims(info.get_shape())
  # The batch dimension is unknown (or 0, as some exporters write it).
  if (
      info.type_spec.value_type is not tf.Tensor
      or info.dtype != tf.float32
      or dims is None
      or len(dims) != 2
      or dims[0]
      or not dims[1]
  ):
    return [
        "output 'default' must be Tensor(float32, [None, K]) with a known "
        "K > 0, but it is %s"
        % _describe(info)
    ]
  return []


def _raise_if_issues(what, source, issues):
  if issues:
    raise ValueError(
        "Module is not %s: %s\n%s"
        % (what, source, "\n".join("  * " + issue for issue in issues))
    )


def check_text_embedding_module(module_spec, allowed_ops=None):
  """Raises ValueError unless the module maps Tensor(string, [None]) to [None, K] floats.

  Args:
    module_spec: a ModuleSpec or a module directory path.
    allowed_ops: for a path, the op types to allow beyond the default op
      policy (see `load_module_spec`); None means the default policy.

  Returns:
    The ModuleSpec.

  Raises:
    ValueError: listing every problem of the module's "default" signature.
  """
  spec, source = _spec_and_source(module_spec, allowed_ops)
  issues = []
  infos = _default_signature_infos(spec, issues)
  if infos:
    inputs, outputs = infos
    if len(inputs) != 1:
      issues.append(
          "the 'default' signature must require only one input, but it "
          "has %d: %s" % (len(inputs), sorted(inputs))
      )
    else:
      ((key, info),) = inputs.items()
      if (
          info.type_spec.value_type is not tf.Tensor
          or info.dtype != tf.string
          or _dims(info.get_shape()) != [None]
      ):
        issues.append(
            "input %r must be Tensor(string, [None]), but it is %s"
            % (key, _describe(info))
        )
    issues.extend(_embedding_output_issues(outputs))
  _raise_if_issues("a text-embedding", source, issues)
  return spec


def check_image_embedding_module(
    module_spec, image_size=None, allowed_ops=None
):
  """Raises ValueError unless the module maps float32 "images" to [None, K] floats.

  Args:
    module_spec: a ModuleSpec or a module directory path.
    image_size: the (height, width) the caller will use, or None to require that
      `get_expected_image_size` can tell it.
    allowed_ops: as in `check_text_embedding_module`.

  Returns:
    The ModuleSpec.

  Raises:
    ValueError: listing every problem of the module's "default" signature.
  """
  spec, source = _spec_and_source(module_spec, allowed_ops)
  issues = []
  infos = _default_signature_infos(spec, issues)
  if infos:
    inputs, outputs = infos
    info = inputs.get("images")
    if sorted(inputs) != ["images"]:
      issues.append(
          "the 'default' signature must have a single input named "
          "'images', but it has %s"
          % sorted(inputs)
      )
    if info is not None:
      shape = info.get_shape()
      if (
          info.type_spec.value_type is not tf.Tensor
          or info.dtype != tf.float32
          or shape.rank not in (None, 4)
      ):
        issues.append(
            "input 'images' must be Tensor(float32, [batch, height, width, "
            "channels]), but it is %s"
            % _describe(info)
        )
      elif image_size is None:
        try:
          get_expected_image_size(spec)
        except ValueError as e:
          issues.append(
              "no image size is given and get_expected_image_size() "
              "cannot tell it: %s" % e
          )
      else:
        dims = _dims(shape)
        if dims is not None and any(
            d is not None and d != want
            for d, want in zip(dims[1:3], image_size)
        ):
          issues.append(
              "image_size %s does not fit input 'images' of shape %s"
              % (list(image_size), dims)
          )
    issues.extend(_embedding_output_issues(outputs))
  _raise_if_issues("usable as an image embedding", source, issues)
  return spec


def get_image_module_info(module_or_spec, required=False):
  """Returns the ImageModuleInfo attached to a Module or ModuleSpec, or None."""
  return module_or_spec.get_attached_message(
      IMAGE_MODULE_INFO_KEY, protos.ImageModuleInfo, required=required
  )


def _image_input_shape(module_or_spec, signature, input_name):
  """The static shape of an input of a signature (None means "default")."""
  signature = signature or "default"
  inputs = module_or_spec.get_input_info_dict(signature)
  if input_name not in inputs:
    raise ValueError(
        "Module is missing input %r in signature %r (it has %s)."
        % (input_name, signature, sorted(inputs))
    )
  return inputs[input_name].get_shape()


def attach_image_module_info(image_module_info):
  """Attaches an ImageModuleInfo to the module being defined; call in a module_fn.

  `get_expected_image_size` (and so `image_embedding_column`) reads the image
  size from it, under the key "image_module_info" (tensorflow_hub's).

  Args:
    image_module_info: an `ImageModuleInfo` message.
  """
  spec_lib.attach_message(IMAGE_MODULE_INFO_KEY, image_module_info)


def get_num_image_channels(module_or_spec, signature=None, input_name=None):
  """Returns the number of channels of a module's image input.

  Args:
    module_or_spec: a Module, a ModuleSpec or a module directory path.
    signature: the signature whose input to inspect; None means "default".
    input_name: the image input; None means "images".

  Returns:
    An int: the static size of the last dimension of the input, whose shape is
    [batch_size, height, width, num_channels].

  Raises:
    ValueError: if the input is missing or its number of channels unknown.
  """
  if isinstance(module_or_spec, (str, os.PathLike)):
    module_or_spec = module_lib.as_module_spec(module_or_spec)
  input_name = input_name or "images"
  shape = _image_input_shape(module_or_spec, signature, input_name)
  dims = _dims(shape)
  if dims is None or len(dims) != 4 or not dims[3]:
    raise ValueError(
        "Shape of module input %r is %s, expected [batch_size, height, width,"
        " num_channels] with known num_channels."
        % (input_name, _shape_text(shape))
    )
  return dims[3]


def get_expected_image_size(module_or_spec, signature=None, input_name=None):
  """Returns the [height, width] of the images a module expects.

  The attached "image_module_info" message wins if it gives both a height and a
  width; otherwise they come from the static shape of the image input.

  Args:
    module_or_spec: a Module, a ModuleSpec or a module directory path.
    signature: the signature whose input to inspect; None means "default".
    input_name: the image input; None means "images".

  Returns:
    A list of two ints: `[height, width]`.

  Raises:
    ValueError: if the size cannot be determined.
  """
  if isinstance(module_or_spec, (str, os.PathLike)):
    module_or_spec = module_lib.as_module_spec(module_or_spec)
  info = get_image_module_info(module_or_spec)
  if info is not None:
    size = info.default_image_size
    if size.height and size.width:
      return [int(size.height), int(size.width)]
  input_name = input_name or "images"
  shape = _image_input_shape(module_or_spec, signature, input_name)
  dims = _dims(shape)
  if dims is None or len(dims) != 4 or not dims[1] or not dims[2]:
    raise ValueError(
        "Shape of module input %r is %s, expected [batch_size, height, width, "
        "num_channels] with known height and width (and no image_module_info "
        "attachment gives them)." % (input_name, _shape_text(shape))
    )
  return [dims[1], dims[2]]


def _num_image_channels(spec):
  """The module's static channel count, else 3 (RGB)."""
  dims = _dims(spec.get_input_info_dict()["images"].get_shape())
  if dims is not None and len(dims) == 4 and dims[3]:
    return dims[3]
  return 3


def _key_name(key):
  return key if isinstance(key, str) else key.name


def _parse_spec(key, feature):
  """{key: feature} for a feature key; a key that is a column brings its own spec."""
  if isinstance(key, str):
    return {key: feature}
  return dict(key.parse_example_spec)


class _HubColumn(fc_v1._DenseColumn, fc_v2.DenseColumn):  # pylint: disable=protected-access
  """What the three columns share: naming, state handling and the two APIs.

  Subclasses are namedtuples with a `key` field (and a `trainable` field if the
  module may be fine-tuned) and set `self._spec` on construction; they implement
  `_embed(module, value)`.
  """

  @property
  def module_spec(self):
    """The ModuleSpec the column applies."""
    return self._spec

  @property
  def dtype(self):
    return tf.float32

  @property
  def _is_v2_column(self):
    return True

  @property
  def parents(self):
    return [self.key]

  @property
  def name(self):
    return "%s_hub_module_embedding" % _key_name(self.key)

  @property
  def _parse_example_spec(self):
    return self.parse_example_spec

  @property
  def variable_shape(self):
    return self._spec.get_output_info_dict()["default"].get_shape()[1:]

  @property
  def _variable_shape(self):
    return self.variable_shape

  def _transform_feature(self, inputs):
    return inputs.get(self.key)

  def transform_feature(self, transformation_cache, state_manager):
    return transformation_cache.get(self.key, state_manager)

  def _column_trainable(self):
    return bool(getattr(self, "trainable", False))

  def _new_module(self, trainable):
    with tf.control_dependencies(None):
      return module_lib.Module(self._spec, trainable=trainable)

  def _module_for_graph(self, trainable):
    """The module this column uses in the default graph (v1 API): made once per graph."""
    graph = tf.compat.v1.get_default_graph()
    modules = getattr(graph, _GRAPH_ATTRIBUTE, None)
    if modules is None:
      modules = {}
      setattr(graph, _GRAPH_ATTRIBUTE, modules)
    if (self, trainable) not in modules:
      modules[(self, trainable)] = self._new_module(trainable)
    return modules[(self, trainable)]

  # -- v2 API --

  def create_state(self, state_manager):
    if state_manager.has_resource(self, _RESOURCE_NAME):
      return
    caller_trains = getattr(state_manager, "_trainable", True)
    trainable = self._column_trainable() and bool(caller_trains)
    module = self._new_module(trainable)
    state_manager.add_resource(self, _RESOURCE_NAME, module)
    layer = getattr(state_manager, "_layer", None)
    if trainable and layer is not None:
      _track_trainable_variables(layer, module)

  def get_dense_tensor(self, transformation_cache, state_manager):
    value = transformation_cache.get(self, state_manager)
    if state_manager is not None and state_manager.has_resource(
        self, _RESOURCE_NAME
    ):
      module = state_manager.get_resource(self, _RESOURCE_NAME)
    else:
      module = self._module_for_graph(self._column_trainable())
    return self._embed(module, value)

  # -- v1 API --

  def _get_dense_tensor(self, inputs, weight_collections=None, trainable=None):
    del weight_collections  # The module's variables live in its own collections.
    value = inputs.get(self)
    module = self._module_for_graph(
        self._column_trainable() and bool(trainable)
    )
    return self._embed(module, value)

  @abc.abstractmethod
  def _embed(self, module, value):
    """Applies `module` to the column's input `value`; returns [batch, dim] float32."""

  # -- config --

  def get_config(self):
    if not isinstance(self.module_spec_path, (str, os.PathLike)):
      raise NotImplementedError(
          "%s can produce a config only when created with a module directory"
          " path, not a %s."
          % (type(self).__name__, type(self.module_spec_path).__name__)
      )
    config = dict(zip(self._fields, self))
    config["module_spec_path"] = os.fspath(self.module_spec_path)
    return config

  @classmethod
  def from_config(cls, config, custom_objects=None, columns_by_name=None):
    del custom_objects, columns_by_name
    return cls(**config)


def _track_trainable_variables(layer, module):
  """Lets a Keras layer report the module's trainable variables as its own.

  tf.estimator's v2 canned estimators optimize `model.trainable_variables`, not
  the TRAINABLE_VARIABLES collection, so a fine-tuned module must be visible there.
  """
  weights = getattr(layer, "_trainable_weights", None)
  if weights is None:
    return
  prefix = module.name + "/"
  known = {id(v) for v in weights}
  for variable in tf.compat.v1.trainable_variables(prefix):
    if id(variable) not in known:
      weights.append(variable)


class _TextEmbeddingColumn(
    _HubColumn,
    collections.namedtuple(
        "_TextEmbeddingColumn",
        ("key", "module_spec_path", "trainable", "allowed_ops"),
    ),
):
  """A dense column embedding one string per example; see `text_embedding_column`."""

  def __new__(cls, key, module_spec_path, trainable=False, allowed_ops=None):
    allowed_ops = _allowed_ops_field(allowed_ops)
    spec = check_text_embedding_module(module_spec_path, allowed_ops)
    self = super().__new__(
        cls, key, module_spec_path, bool(trainable), allowed_ops
    )
    self._spec = spec
    return self

  @property
  def parse_example_spec(self):
    return _parse_spec(self.key, tf.io.FixedLenFeature([1], tf.string))

  def _embed(self, module, value):
    if isinstance(value, tf.SparseTensor):
      raise ValueError(
          "Column %s expects a dense string feature %r (one text per example),"
          " got a SparseTensor; use sparse_text_embedding_column for token"
          " lists." % (self.name, _key_name(self.key))
      )
    value = tf.convert_to_tensor(value)
    dims = _dims(value.shape) or []
    if any(d is not None and d != 1 for d in dims[1:]):
      raise ValueError(
          "Column %s expects one text per example, but feature %r has shape %s."
          % (self.name, _key_name(self.key), value.shape)
      )
    return module(tf.reshape(value, [-1]))


class _SparseTextEmbeddingColumn(
    _HubColumn,
    collections.namedtuple(
        "_SparseTextEmbeddingColumn",
        (
            "key",
            "module_spec_path",
            "combiner",
            "default_value",
            "trainable",
            "allowed_ops",
        ),
    ),
):
  """A dense column combining token embeddings; see `sparse_text_embedding_column`."""

  def __new__(
      cls,
      key,
      module_spec_path,
      combiner,
      default_value,
      trainable=False,
      allowed_ops=None,
  ):
    allowed_ops = _allowed_ops_field(allowed_ops)
    spec = check_text_embedding_module(module_spec_path, allowed_ops)
    if combiner not in _COMBINERS:
      raise ValueError(
          "combiner must be one of %s, got %r." % (list(_COMBINERS), combiner)
      )
    self = super().__new__(
        cls,
        key,
        module_spec_path,
        combiner,
        default_value,
        bool(trainable),
        allowed_ops,
    )
    self._spec = spec
    return self

  @property
  def parse_example_spec(self):
    return _parse_spec(self.key, tf.io.VarLenFeature(tf.string))

  def _embed(self, module, value):
    if not isinstance(value, tf.SparseTensor):
      raise ValueError(
          "Column %s expects a SparseTensor of string tokens for feature "
          "%r (e.g. parsed with tf.io.VarLenFeature), got %s."
          % (self.name, _key_name(self.key), type(value).__name__)
      )
    if self.default_value is not None:
      value, _ = tf.sparse.fill_empty_rows(value, self.default_value)
    token_embeddings = module(value.values)
    positions = tf.SparseTensor(
        indices=value.indices,
        values=tf.range(tf.shape(value.values, out_type=tf.int64)[0]),
        dense_shape=value.dense_shape,
    )
    # The safe variant keeps one row per example (zeros for an example without
    # tokens) where the plain lookup would drop trailing empty rows.
    return tf.nn.safe_embedding_lookup_sparse(
        token_embeddings, positions, sparse_weights=None, combiner=self.combiner
    )


class _ImageEmbeddingColumn(
    _HubColumn,
    collections.namedtuple(
        "_ImageEmbeddingColumn",
        ("key", "module_spec_path", "image_size", "allowed_ops"),
    ),
):
  """A dense column embedding decoded images; see `image_embedding_column`."""

  def __new__(cls, key, module_spec_path, image_size=None, allowed_ops=None):
    allowed_ops = _allowed_ops_field(allowed_ops)
    if image_size is not None:
      image_size = tuple(image_size)
      if len(image_size) != 2 or not all(
          isinstance(d, int) and not isinstance(d, bool) and d > 0
          for d in image_size
      ):
        raise ValueError(
            "image_size must be (height, width) with positive ints, got %r."
            % (image_size,)
        )
    spec = check_image_embedding_module(
        module_spec_path, image_size, allowed_ops
    )
    self = super().__new__(cls, key, module_spec_path, image_size, allowed_ops)
    self._spec = spec
    return self

  @property
  def parse_example_spec(self):
    if self.image_size:
      height, width = self.image_size
    else:
      height, width = get_expected_image_size(self._spec)
    shape = [height, width, _num_image_channels(self._spec)]
    return _parse_spec(self.key, tf.io.FixedLenFeature(shape, tf.float32))

  def _embed(self, module, value):
    return module({"images": value})


def text_embedding_column(key, module_spec, trainable=False, allowed_ops=None):
  """A dense feature column embedding a text feature with a text-embedding module.

  The module's "default" signature must take exactly one Tensor(string, [None])
  and have a "default" output Tensor(float32, [None, K]) with known K. The
  feature holds one string per example (parse spec `FixedLenFeature([1],
  tf.string)`); the column's output is `module(texts)`.

  Args:
    key: the feature key (a string) or a feature column providing the text.
    module_spec: a ModuleSpec or the path of a module directory.
    trainable: whether to fine-tune the module's variables (when the caller
      trains); by default the pre-trained weights are frozen.
    allowed_ops: when `module_spec` is a path, the op types to allow beyond
      the default op policy, or `hub_estimator.TRUST_ALL_OPS` (see
      `load_module_spec`); None means the default policy.

  Returns:
    A dense column for the v1 and v2 feature column APIs, named
    "<key>_hub_module_embedding".

  Raises:
    ValueError: if the module is not a text embedding.
    UnsafeModuleError: if the op policy refuses the module at the path.
  """
  return _TextEmbeddingColumn(key, module_spec, trainable, allowed_ops)


def sparse_text_embedding_column(
    key, module_spec, combiner, default_value, trainable=False, allowed_ops=None
):
  """A dense feature column combining the embeddings of a variable number of tokens.

  The module must be a text embedding (see `text_embedding_column`). It embeds
  every token of the SparseTensor feature (parse spec `VarLenFeature(tf.string)`)
  and the column combines each example's token embeddings as a bag of words.

  Args:
    key: the feature key (a string) or a feature column providing the tokens.
    module_spec: a ModuleSpec or the path of a module directory.
    combiner: "mean", "sqrtn" or "sum".
    default_value: a token to use for examples without tokens, or None to embed
      such examples as zeros.
    trainable: whether to fine-tune the module's variables (when the caller
      trains).
    allowed_ops: when `module_spec` is a path, the op types to allow beyond
      the default op policy, or `hub_estimator.TRUST_ALL_OPS` (see
      `load_module_spec`); None means the default policy.

  Returns:
    A dense column for the v1 and v2 feature column APIs.

  Raises:
    ValueError: if the module is not a text embedding or `combiner` is unknown.
    UnsafeModuleError: if the op policy refuses the module at the path.
  """
  return _SparseTextEmbeddingColumn(
      key, module_spec, combiner, default_value, trainable, allowed_ops
  )


def image_embedding_column(key, module_spec, image_size=None, allowed_ops=None):
  """A dense feature column embedding images with an image module.

  The module's "default" signature must take a single input "images"
  (Tensor(float32, [batch, height, width, channels]), values in [0, 1]) and have
  a "default" output Tensor(float32, [None, K]). The module is never trained.

  Args:
    key: the feature key (a string) or a feature column providing the images.
    module_spec: a ModuleSpec or the path of a module directory.
    image_size: (height, width) to use; None means `get_expected_image_size`.
    allowed_ops: when `module_spec` is a path, the op types to allow beyond
      the default op policy, or `hub_estimator.TRUST_ALL_OPS` (see
      `load_module_spec`); None means the default policy.

  Returns:
    A dense column for the v1 and v2 feature column APIs.

  Raises:
    ValueError: if the module is not usable as an image embedding.
    UnsafeModuleError: if the op policy refuses the module at the path.
  """
  return _ImageEmbeddingColumn(key, module_spec, image_size, allowed_ops)
