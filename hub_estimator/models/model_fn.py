"""model_fn factory: a hub module body plus a head, as a plain model_fn.

`make_model_fn` is the gin-configurable edge; what it returns is an ordinary
`model_fn(features, labels, mode, config)` closure, so tf.estimator sees its
real arguments (a decorated model_fn would hide them).
"""

from typing import Callable, Optional, Sequence

import gin
import tensorflow as tf

from hub_estimator.models import heads as heads_lib
from hub_estimator.models import module_fns
from hub_estimator.models import optimizers

_v1 = tf.compat.v1
_ModeKeys = tf.estimator.ModeKeys

# The progress lines read the total loss here (experiment passes this key to
# progress.ProgressHook).
TOTAL_LOSS_COLLECTION = 'hub_estimator_total_loss'


@gin.configurable
def make_model_fn(
    module_source=gin.REQUIRED,
    head: heads_lib.Head = gin.REQUIRED,
    optimizer_fn: Callable[..., _v1.train.Optimizer] = optimizers.adam,
    learning_rate_fn: Callable[
        [tf.Tensor], tf.Tensor
    ] = optimizers.constant_rate,
    hidden_units: Sequence[int] = (),
    activation: str = 'relu',
    dropout_rate: float = 0.0,
    gradient_clip_norm: Optional[float] = None,
) -> Callable[..., tf.estimator.EstimatorSpec]:
  """Returns a model_fn applying a hub module, then a head.

  In every mode the module is instantiated (variant and trainability from the
  source) and registered for export, so exporters find it in PREDICT graphs.
  Training minimizes the head's loss plus the graph's REGULARIZATION_LOSSES
  (the module's, when trainable) and runs UPDATE_OPS (e.g. the module's
  batch-norm updates) with the train op.

  Args:
    module_source: where the module comes from (a
      `hub_estimator.consume.sources.ModuleSource`).
    head: the task head, e.g. `@ClassificationHead()`.
    optimizer_fn: called with the learning rate, returns an optimizer.
    learning_rate_fn: called with the global step, returns the learning rate.
    hidden_units: sizes of new dense layers between module and logits; empty
      means logits directly on the module output.
    activation: activation of the hidden layers.
    dropout_rate: dropout after each hidden layer while training.
    gradient_clip_norm: clip gradients to this global norm; None means no
      clipping.

  Returns:
    `model_fn(features, labels, mode, config)`.
  """
  if module_source is None or head is None:
    raise ValueError('make_model_fn needs module_source and head.')
  act = module_fns.get_activation(activation, 'make_model_fn.activation')
  if not 0.0 <= dropout_rate < 1.0:
    raise ValueError(
        f'make_model_fn.dropout_rate must be in [0, 1); got {dropout_rate}.'
    )
  if gradient_clip_norm is not None and gradient_clip_norm <= 0:
    raise ValueError(
        'make_model_fn.gradient_clip_norm must be positive or None; got'
        f' {gradient_clip_norm}.'
    )
  hidden_units = [int(u) for u in hidden_units]

  def model_fn(features, labels, mode, config):
    del config  # Unused.
    training = mode == _ModeKeys.TRAIN
    module = module_source.instantiate(mode)
    net = module_source.apply(module, features)
    with _v1.variable_scope('head'):
      for i, units in enumerate(hidden_units):
        net = act(module_fns.dense(net, units, f'hidden_{i}'))
        if training and dropout_rate:
          net = tf.nn.dropout(net, rate=dropout_rate)
      logits = module_fns.dense(net, head.logits_dimension, 'logits')
    predictions = head.predictions(logits)
    if mode == _ModeKeys.PREDICT:
      return tf.estimator.EstimatorSpec(
          mode,
          predictions=predictions,
          export_outputs={
              'serving_default': tf.estimator.export.PredictOutput(predictions)
          },
      )

    data_loss = head.loss(logits, labels)
    regularization = _v1.losses.get_regularization_loss()
    loss = tf.identity(data_loss + regularization, name='total_loss')
    if mode == _ModeKeys.EVAL:
      return tf.estimator.EstimatorSpec(
          mode,
          loss=loss,
          predictions=predictions,
          eval_metric_ops=head.eval_metric_ops(predictions, labels),
      )

    _v1.add_to_collection(TOTAL_LOSS_COLLECTION, loss)
    global_step = _v1.train.get_or_create_global_step()
    learning_rate = learning_rate_fn(global_step)
    _v1.summary.scalar('learning_rate', learning_rate)
    _v1.summary.scalar('loss/data', data_loss)
    _v1.summary.scalar('loss/regularization', regularization)
    optimizer = optimizer_fn(learning_rate)
    grads_and_vars = optimizer.compute_gradients(loss)
    if gradient_clip_norm is not None:
      grads, variables = zip(*grads_and_vars)
      grads, norm = tf.clip_by_global_norm(grads, gradient_clip_norm)
      _v1.summary.scalar('gradient_norm', norm)
      grads_and_vars = list(zip(grads, variables))
    update_ops = _v1.get_collection(_v1.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
      train_op = optimizer.apply_gradients(
          grads_and_vars, global_step=global_step
      )
    return tf.estimator.EstimatorSpec(
        mode, loss=loss, train_op=train_op, predictions=predictions
    )

  return model_fn
