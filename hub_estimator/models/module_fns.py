"""module_fn library: MLP, text embedding and small CNN bodies for hub modules.

Each factory is gin-configurable and returns a `module_fn(is_training)` for
`hub.create_module_spec(module_fn, tags_and_args=TAGS_AND_ARGS)`: the
`{"train"}` variant applies dropout, uses batch statistics and adds the
batch-norm updates to UPDATE_OPS; the default variant is for inference. L1/L2
penalties are created with the variables, so they travel in the module's
REGULARIZATION_LOSSES.

Every module has three signatures:

* `default`: the features (`x`, `images` or a string vector) -> `default`, the
  body's output (for text, the sentence embedding).
* `hparams`: no inputs; outputs the `dropout_rate` and `bn_momentum` the
  module was built with (its defaults).
* `with_hparams`: the default inputs plus `dropout_rate` and `bn_momentum`,
  made with `placeholder_with_default`: callers of the `{"train"}` variant may
  override them per call (and, where the loader allows, omit them).
"""

import os
from typing import Callable, Optional, Sequence, Tuple

import gin
import tensorflow as tf

from hub_estimator.format import protos
from hub_estimator.format import spec as spec_lib
from hub_estimator.format import tags

_v1 = tf.compat.v1

ModuleFn = Callable[..., None]

# The graph variants every module publishes, for create_module_spec.
TAGS_AND_ARGS = tags.TRAIN_AND_DEFAULT

_ACTIVATIONS = {
    'relu': tf.nn.relu,
    'elu': tf.nn.elu,
    'selu': tf.nn.selu,
    'gelu': tf.nn.gelu,
    'swish': tf.nn.silu,
    'tanh': tf.tanh,
    'sigmoid': tf.sigmoid,
    'linear': tf.identity,
}


def get_activation(name: str, key: str) -> Callable[[tf.Tensor], tf.Tensor]:
  """Returns the activation function called `name`.

  Args:
    name: one of relu, elu, selu, gelu, swish, tanh, sigmoid, linear.
    key: the gin key that set `name`, for the error message.

  Raises:
    ValueError: `name` is unknown (the message lists the valid names).
  """
  if name not in _ACTIVATIONS:
    raise ValueError(
        f'{key} must be one of {sorted(_ACTIVATIONS)}; got {name!r}.'
    )
  return _ACTIVATIONS[name]


def make_regularizer(
    l1: float, l2: float
) -> Optional[Callable[[tf.Tensor], tf.Tensor]]:
  """Returns `w -> l1 * sum|w| + l2 * sum w^2`, or None when both are 0."""
  if l1 < 0 or l2 < 0:
    raise ValueError(f'l1 and l2 must be >= 0; got l1={l1}, l2={l2}.')
  if not l1 and not l2:
    return None

  def regularizer(w):
    terms = []
    if l1:
      terms.append(l1 * tf.reduce_sum(tf.abs(w)))
    if l2:
      terms.append(l2 * tf.reduce_sum(tf.square(w)))
    return tf.add_n(terms)

  return regularizer


def _check_rate(value: float, key: str) -> None:
  if not 0.0 <= value < 1.0:
    raise ValueError(f'{key} must be in [0, 1); got {value}.')


class _Hparams:
  """Tunable hyperparameters as placeholder_with_default tensors."""

  def __init__(self, dropout_rate: float, bn_momentum: float):
    self.dropout_rate = _v1.placeholder_with_default(
        tf.constant(float(dropout_rate)), [], name='dropout_rate'
    )
    self.bn_momentum = _v1.placeholder_with_default(
        tf.constant(float(bn_momentum)), [], name='bn_momentum'
    )

  def inputs(self):
    return {'dropout_rate': self.dropout_rate, 'bn_momentum': self.bn_momentum}

  def add_signatures(self, inputs, output):
    """Adds the default, hparams and with_hparams signatures."""
    spec_lib.add_signature('default', inputs, {'default': output})
    spec_lib.add_signature(
        'hparams',
        None,
        {
            'dropout_rate': tf.identity(self.dropout_rate),
            'bn_momentum': tf.identity(self.bn_momentum),
        },
    )
    inputs = dict(inputs) if isinstance(inputs, dict) else {'default': inputs}
    inputs.update(self.inputs())
    spec_lib.add_signature('with_hparams', inputs, {'default': output})


def dense(x, units, name, regularizer=None):
  """A dense layer (glorot-uniform kernel, zero bias) in scope `name`."""
  with _v1.variable_scope(name):
    kernel = _v1.get_variable(
        'kernel',
        [x.shape[-1], units],
        initializer=_v1.glorot_uniform_initializer(),
        regularizer=regularizer,
    )
    bias = _v1.get_variable(
        'bias', [units], initializer=_v1.zeros_initializer()
    )
  return tf.nn.bias_add(tf.matmul(x, kernel), bias)


def _batch_norm(x, is_training, momentum, epsilon, name):
  """Batch norm whose moving averages update through UPDATE_OPS in training.

  Args:
    x: the input; statistics are taken over all axes but the last.
    is_training: use batch statistics and update the moving averages.
    momentum: a scalar tensor; moving = momentum * moving + (1 - m) * batch.
    epsilon: added to the variance.
    name: variable scope name.
  """
  depth = x.shape[-1]
  with _v1.variable_scope(name):
    gamma = _v1.get_variable(
        'gamma', [depth], initializer=_v1.ones_initializer()
    )
    beta = _v1.get_variable(
        'beta', [depth], initializer=_v1.zeros_initializer()
    )
    moving_mean = _v1.get_variable(
        'moving_mean',
        [depth],
        initializer=_v1.zeros_initializer(),
        trainable=False,
    )
    moving_variance = _v1.get_variable(
        'moving_variance',
        [depth],
        initializer=_v1.ones_initializer(),
        trainable=False,
    )
    if is_training:
      axes = list(range(len(x.shape) - 1))
      mean, variance = tf.nn.moments(x, axes)
      decay = 1.0 - momentum
      for var, value in ((moving_mean, mean), (moving_variance, variance)):
        update = var.assign_sub((var - value) * decay, read_value=False)
        _v1.add_to_collection(_v1.GraphKeys.UPDATE_OPS, update)
    else:
      mean, variance = moving_mean, moving_variance
    return tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)


def _dropout(x, is_training, rate):
  if not is_training:
    return x
  return tf.nn.dropout(x, rate=rate)


# ---------------------------------------------------------------------- MLP --


@gin.configurable
def mlp(
    input_dim: int = gin.REQUIRED,
    units: Sequence[int] = (64,),
    activation: str = 'relu',
    dropout_rate: float = 0.0,
    batch_norm: bool = False,
    bn_momentum: float = 0.99,
    bn_epsilon: float = 1e-3,
    l1: float = 0.0,
    l2: float = 0.0,
) -> ModuleFn:
  """Returns the module_fn of a multi-layer perceptron body.

  Signature `default`: input `x` float32 [batch, input_dim] -> `default`
  float32 [batch, units[-1]].

  Args:
    input_dim: size of each input vector.
    units: sizes of the hidden layers, in order.
    activation: activation after each layer (relu, elu, selu, gelu, swish,
      tanh, sigmoid, linear).
    dropout_rate: dropout after each layer in the `{"train"}` variant.
    batch_norm: whether to batch-normalize each layer before its activation.
    bn_momentum: batch-norm moving-average momentum.
    bn_epsilon: batch-norm variance epsilon.
    l1: L1 penalty on the kernels.
    l2: L2 penalty on the kernels.
  """
  if not units or any(int(u) <= 0 for u in units):
    raise ValueError(f'mlp.units must be positive sizes; got {units!r}.')
  act = get_activation(activation, 'mlp.activation')
  _check_rate(dropout_rate, 'mlp.dropout_rate')
  _check_rate(bn_momentum, 'mlp.bn_momentum')
  regularizer = make_regularizer(l1, l2)

  def module_fn(is_training: bool = False) -> None:
    x = _v1.placeholder(tf.float32, [None, input_dim], name='x')
    hparams = _Hparams(dropout_rate, bn_momentum)
    net = x
    for i, size in enumerate(units):
      net = dense(net, int(size), f'dense_{i}', regularizer)
      if batch_norm:
        net = _batch_norm(
            net, is_training, hparams.bn_momentum, bn_epsilon, f'bn_{i}'
        )
      net = _dropout(act(net), is_training, hparams.dropout_rate)
    hparams.add_signatures({'x': x}, net)

  return module_fn


# -------------------------------------------------------------- small CNN --


@gin.configurable
def small_cnn(
    image_shape: Tuple[int, int, int] = (8, 8, 1),
    filters: Sequence[int] = (16, 32),
    kernel_size: int = 3,
    dense_units: int = 64,
    activation: str = 'relu',
    dropout_rate: float = 0.0,
    batch_norm: bool = True,
    bn_momentum: float = 0.99,
    bn_epsilon: float = 1e-3,
    l1: float = 0.0,
    l2: float = 0.0,
) -> ModuleFn:
  """Returns the module_fn of a small convolutional image body.

  Each block is a same-padded convolution, optional batch norm, activation
  and 2x2 max pooling; then a dense layer. Signature `default`: input `images`
  float32 [batch, height, width, channels] -> `default` float32
  [batch, dense_units]. The image size is also attached as
  `image_module_info`, so the module fits `image_embedding_column`.

  Args:
    image_shape: (height, width, channels) of the input images.
    filters: output channels of each convolution block.
    kernel_size: side of the square convolution kernels.
    dense_units: size of the final dense layer (the module's output).
    activation: activation name (see `mlp`).
    dropout_rate: dropout before the dense layer in the `{"train"}` variant.
    batch_norm: whether to batch-normalize each convolution.
    bn_momentum: batch-norm moving-average momentum.
    bn_epsilon: batch-norm variance epsilon.
    l1: L1 penalty on the kernels.
    l2: L2 penalty on the kernels.
  """
  if len(image_shape) != 3:
    raise ValueError(
        'small_cnn.image_shape must be (height, width, channels); got'
        f' {image_shape!r}.'
    )
  act = get_activation(activation, 'small_cnn.activation')
  _check_rate(dropout_rate, 'small_cnn.dropout_rate')
  _check_rate(bn_momentum, 'small_cnn.bn_momentum')
  regularizer = make_regularizer(l1, l2)

  def module_fn(is_training: bool = False) -> None:
    images = _v1.placeholder(
        tf.float32, [None] + [int(d) for d in image_shape], name='images'
    )
    hparams = _Hparams(dropout_rate, bn_momentum)
    net = images
    for i, depth in enumerate(filters):
      with _v1.variable_scope(f'conv_{i}'):
        kernel = _v1.get_variable(
            'kernel',
            [kernel_size, kernel_size, net.shape[-1], int(depth)],
            initializer=_v1.glorot_uniform_initializer(),
            regularizer=regularizer,
        )
        bias = _v1.get_variable(
            'bias', [int(depth)], initializer=_v1.zeros_initializer()
        )
      net = tf.nn.bias_add(
          tf.nn.conv2d(net, kernel, strides=1, padding='SAME'), bias
      )
      if batch_norm:
        net = _batch_norm(
            net, is_training, hparams.bn_momentum, bn_epsilon, f'bn_{i}'
        )
      net = tf.nn.max_pool2d(act(net), 2, 2, padding='SAME')
    net = tf.reshape(net, [-1, net.shape[1] * net.shape[2] * net.shape[3]])
    net = _dropout(net, is_training, hparams.dropout_rate)
    net = act(dense(net, dense_units, 'dense', regularizer))
    hparams.add_signatures({'images': images}, net)
    info = protos.ImageModuleInfo()
    info.default_image_size.height = int(image_shape[0])
    info.default_image_size.width = int(image_shape[1])
    spec_lib.attach_message('image_module_info', info)

  return module_fn


# ---------------------------------------------------------- text embedding --


_COMBINERS = ('mean', 'sqrtn', 'sum')


@gin.configurable
def text_embedding(
    vocab_file: str = gin.REQUIRED,
    embedding_dim: int = 32,
    num_oov_buckets: int = 10,
    combiner: str = 'sqrtn',
    lowercase: bool = True,
    dropout_rate: float = 0.0,
    l1: float = 0.0,
    l2: float = 0.0,
) -> ModuleFn:
  """Returns the module_fn of a bag-of-words sentence embedding.

  Sentences are split on spaces; each token is looked up in the vocabulary
  (shipped as a module asset), unknown tokens are hashed into
  `num_oov_buckets` extra rows, and the token embeddings are combined. An
  empty sentence embeds to zeros. Signature `default`: one input, string
  [batch] -> `default` float32 [batch, embedding_dim], so the module fits
  `text_embedding_column`.

  Args:
    vocab_file: text file with one token per line.
    embedding_dim: size of the embedding vectors.
    num_oov_buckets: hash buckets for out-of-vocabulary tokens (>= 1).
    combiner: how token embeddings are combined: mean, sqrtn or sum.
    lowercase: whether to lowercase sentences before splitting.
    dropout_rate: dropout on the sentence embedding in the `{"train"}`
      variant.
    l1: L1 penalty on the embedding table.
    l2: L2 penalty on the embedding table.
  """
  if not tf.io.gfile.exists(vocab_file):
    raise ValueError(
        f'text_embedding.vocab_file={vocab_file!r} does not exist'
        f' (working directory {os.getcwd()}).'
    )
  with tf.io.gfile.GFile(vocab_file) as f:
    vocab_size = sum(1 for _ in f)
  if vocab_size == 0:
    raise ValueError(f'text_embedding.vocab_file={vocab_file!r} is empty.')
  if combiner not in _COMBINERS:
    raise ValueError(
        f'text_embedding.combiner must be one of {list(_COMBINERS)}; got'
        f' {combiner!r}.'
    )
  if num_oov_buckets < 1:
    raise ValueError(
        f'text_embedding.num_oov_buckets must be >= 1; got {num_oov_buckets}.'
    )
  _check_rate(dropout_rate, 'text_embedding.dropout_rate')
  regularizer = make_regularizer(l1, l2)

  def module_fn(is_training: bool = False) -> None:
    sentences = _v1.placeholder(tf.string, [None], name='sentences')
    hparams = _Hparams(dropout_rate, 0.0)
    text = tf.strings.lower(sentences) if lowercase else sentences
    tokens = _v1.string_split(text, sep=' ')
    table = _v1.lookup.StaticVocabularyTable(
        _v1.lookup.TextFileInitializer(
            vocab_file,
            tf.string,
            _v1.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            _v1.lookup.TextFileIndex.LINE_NUMBER,
        ),
        num_oov_buckets,
    )
    ids = tf.SparseTensor(
        tokens.indices, table.lookup(tokens.values), tokens.dense_shape
    )
    embeddings = _v1.get_variable(
        'embeddings',
        [vocab_size + num_oov_buckets, embedding_dim],
        initializer=_v1.random_normal_initializer(
            stddev=1.0 / embedding_dim**0.5
        ),
        regularizer=regularizer,
    )
    embedded = tf.nn.safe_embedding_lookup_sparse(
        embeddings, ids, None, combiner=combiner
    )
    embedded = _dropout(embedded, is_training, hparams.dropout_rate)
    hparams.add_signatures(sentences, embedded)

  return module_fn
