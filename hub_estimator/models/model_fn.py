"""model_fn factory: a hub module body plus a head, as a plain model_fn.

`make_model_fn` is the gin-configurable edge; what it returns is an ordinary
`model_fn(features, labels, mode, config)` closure, so tf.estimator sees its
real arguments (a decorated model_fn would hide them).
"""

import contextlib
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

  The source's `fine_tuning` settings (`hub_estimator.consume.fine_tuning.
  FineTuning`), when given, apply here in TRAIN mode: the module's
  regularization losses are weighted; the module's variables train with a
  second optimizer from `optimizer_fn` at `learning_rate *
  learning_rate_multiplier`; while the global step is below `frozen_steps`
  the module is frozen (applied in its default variant, no UPDATE_OPS, no
  optimizer update, zero gradients: its penalty is a constant then, so it
  adds nothing to the `gradient_clip_norm` norm; see that module's
  docstring).

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
    `model_fn(features, labels, mode, config)`, with the head as its
    attribute `head` (so a run can check labels against it before training).
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

  fine_tuning = getattr(module_source, 'fine_tuning', None)

  def model_fn(features, labels, mode, config):
    training = mode == _ModeKeys.TRAIN
    losses = _v1.get_collection_ref(_v1.GraphKeys.REGULARIZATION_LOSSES)
    first_module_loss = len(losses)
    module = module_source.instantiate(mode)
    frozen = None
    if training and fine_tuning is not None and fine_tuning.frozen_steps:
      _check_no_call_losses(
          module_source, len(losses) - first_module_loss, fine_tuning
      )
      global_step = _v1.train.get_or_create_global_step()
      frozen = tf.less(
          global_step, fine_tuning.frozen_steps, name='module_frozen'
      )
      net = _apply_frozen_until_step(module_source, module, features, frozen)
    else:
      net = module_source.apply(module, features)
    module_losses = losses[first_module_loss:]  # Made and called above.
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
    if fine_tuning is None or (
        fine_tuning.regularization_weight == 1 and frozen is None
    ):
      regularization = _v1.losses.get_regularization_loss()
    else:
      regularization = _regularization_loss(
          module_losses, fine_tuning.regularization_weight, frozen
      )
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
      if fine_tuning is None or (
          fine_tuning.learning_rate_multiplier == 1 and frozen is None
      ):
        train_op = optimizer.apply_gradients(
            grads_and_vars, global_step=global_step
        )
      else:
        train_op, module_optimizer = _apply_two_rates(
            optimizer,
            lambda: optimizer_fn(
                learning_rate * fine_tuning.learning_rate_multiplier
            ),
            grads_and_vars,
            module,
            frozen,
            global_step,
        )
        _check_checkpoint_has_module_optimizer(
            getattr(config, 'model_dir', None), module_optimizer, fine_tuning
        )
    return tf.estimator.EstimatorSpec(
        mode, loss=loss, train_op=train_op, predictions=predictions
    )

  model_fn.head = head
  return model_fn


@contextlib.contextmanager
def _control_flow_v1():
  """Builds `tf.compat.v1.cond` as TF1 did while the block runs.

  Module signatures apply inside a v1 cond context (the module's graph is
  imported into the branch, its inputs enter through the context); a v2
  cond's branch is a separate function graph, which a module instance of the
  outer graph cannot apply in.
  """
  was_enabled = _v1.control_flow_v2_enabled()
  _v1.disable_control_flow_v2()
  try:
    yield
  finally:
    if was_enabled:
      _v1.enable_control_flow_v2()


def _check_no_call_losses(module_source, made, fine_tuning):
  """Fails if the training variant has losses a call inside a cond would drop.

  A module's input-dependent REGULARIZATION_LOSSES (activity penalties) come
  with each call, but not with a call inside a cond branch (they would have no
  value outside it), which is how `frozen_steps` switches variants.

  Args:
    module_source: the source of the module just instantiated.
    made: how many losses the instantiation added (its state-only ones).
    fine_tuning: the FineTuning settings.

  Raises:
    ValueError: the variant declares more losses than the instance made,
      unless `regularization_weight` is 0 (they would not count anyway).
  """
  if not fine_tuning.regularization_weight:
    return
  tags = module_source.tags(_ModeKeys.TRAIN)
  meta_graph = module_source.module_spec().get_meta_graph(tags)
  collection = meta_graph.collection_def.get(
      _v1.GraphKeys.REGULARIZATION_LOSSES
  )
  declared = len(collection.node_list.value) if collection else 0
  if declared > made:
    raise ValueError(
        f'FineTuning.frozen_steps={fine_tuning.frozen_steps}: the graph'
        f' variant {sorted(tags)} of {module_source.describe()} has'
        f' {declared - made} input-dependent regularization losses, which'
        ' cannot apply when frozen steps switch variants inside a cond. Set'
        ' FineTuning.frozen_steps = 0 (or regularization_weight = 0 to drop'
        " the module's penalties)."
    )


def _apply_frozen_until_step(module_source, module, features, frozen):
  """The module output: default variant while `frozen`, else the training one.

  The UPDATE_OPS the training variant brings (batch-norm moving averages) are
  taken out of the graph's collection and made to run inside the training
  branch only, with its output; any the frozen branch's variant brings are
  dropped (frozen: no updates), and that branch stops the gradient. Any
  input-dependent REGULARIZATION_LOSSES a call brings (`_check_no_call_losses`
  refuses modules whose variant has them; the format layer leaves them out of
  calls inside a branch) leave the branch as one more cond output (0 while
  frozen), which joins the collection.

  Args:
    module_source: the ModuleSource (its `apply` takes the variant's tags).
    module: the module instance (made with the training variant).
    features: the model_fn's features.
    frozen: a scalar bool tensor, true while the module is frozen.

  Returns:
    The module output tensor.
  """
  update_ops = _v1.get_collection_ref(_v1.GraphKeys.UPDATE_OPS)
  losses = _v1.get_collection_ref(_v1.GraphKeys.REGULARIZATION_LOSSES)

  def call(tags):
    """Applies the module; returns (output, the losses and updates it adds)."""
    updates_before, losses_before = len(update_ops), len(losses)
    net = module_source.apply(module, features, tags=tags)
    call_losses, updates = losses[losses_before:], update_ops[updates_before:]
    del update_ops[updates_before:], losses[losses_before:]
    return net, call_losses, updates

  training_losses = []

  def frozen_branch():
    net, _, _ = call(module_source.tags(_ModeKeys.EVAL))
    return tf.stop_gradient(net), tf.constant(0.0)

  def training_branch():
    net, own_losses, updates = call(None)
    training_losses.extend(own_losses)
    loss = tf.add_n(own_losses) if own_losses else tf.constant(0.0)
    with tf.control_dependencies(updates):
      return tf.identity(net), tf.identity(loss)

  with _control_flow_v1():
    net, loss = _v1.cond(frozen, frozen_branch, training_branch, name='module')
  if training_losses:
    losses.append(loss)
  return net


def _regularization_loss(module_losses, module_weight, frozen=None):
  """REGULARIZATION_LOSSES summed, `module_losses` times `module_weight`.

  Args:
    module_losses: the module's REGULARIZATION_LOSSES (scalar tensors).
    module_weight: their weight (a Python number >= 0).
    frozen: None, or a scalar bool tensor: while it is true, the module's
      weighted penalty counts in the loss as a constant (its gradient is
      exactly zero), so a frozen module's penalty neither reaches its
      variables nor inflates the norm `gradient_clip_norm` clips the head's
      gradients by.

  Returns:
    A float32 scalar tensor named `regularization_loss`.
  """
  own = list(module_losses)
  mine = {id(l) for l in own}
  others = [
      l
      for l in _v1.get_collection(_v1.GraphKeys.REGULARIZATION_LOSSES)
      if id(l) not in mine
  ]
  total = tf.constant(0.0)
  if own:
    module_total = module_weight * tf.add_n(own)
    if frozen is not None:
      module_total = tf.where(
          frozen, tf.stop_gradient(module_total), module_total
      )
    total += module_total
  if others:
    total += tf.add_n(others)
  return tf.identity(total, name='regularization_loss')


def _apply_two_rates(
    optimizer, module_optimizer_fn, grads_and_vars, module, frozen, global_step
):
  """Applies the head's gradients and, at their own rate, the module's.

  Args:
    optimizer: the optimizer of every variable but the module's.
    module_optimizer_fn: returns the optimizer of the module's variables.
    grads_and_vars: (gradient, variable) pairs of all trainable variables.
    module: the module instance (its variables, partitions included).
    frozen: None, or a scalar bool tensor: the module's update is skipped
      (made inside a cond branch) while it is true.
    global_step: incremented once per step, by the first optimizer.

  Returns:
    (the train op, the module's optimizer or None when the module has no
    gradients). The module optimizer's own variables (e.g. Adam's beta
    powers) are named under `module_update/` whether or not `frozen` is
    given, so a run may change `frozen_steps` between restarts.
  """
  module_variables = {id(v) for v in module.variables}
  head_pairs = [
      (g, v) for g, v in grads_and_vars if id(v) not in module_variables
  ]
  module_pairs = [
      (g, v)
      for g, v in grads_and_vars
      if id(v) in module_variables and g is not None
  ]
  train_op = optimizer.apply_gradients(head_pairs, global_step=global_step)
  if not module_pairs:
    return train_op, None
  module_optimizer = module_optimizer_fn()
  if frozen is None:
    with _v1.name_scope('module_update'):
      module_op = module_optimizer.apply_gradients(module_pairs)
  else:
    with _control_flow_v1():
      module_op = _v1.cond(
          frozen,
          tf.no_op,
          lambda: module_optimizer.apply_gradients(module_pairs),
          name='module_update',
      )
  return tf.group(train_op, module_op, name='train_op'), module_optimizer


def _check_checkpoint_has_module_optimizer(
    model_dir, module_optimizer, fine_tuning
):
  """Fails if the run's checkpoint was written without the module optimizer.

  `learning_rate_multiplier` != 1 and `frozen_steps` give the module its own
  optimizer. A run resumed with them from a checkpoint written without them
  would fail to restore that optimizer's state (Adam's beta powers, ...) with
  a long TensorFlow error; this says why, before training.

  Args:
    model_dir: the run's model_dir (None: nothing to check).
    module_optimizer: the module's optimizer, or None.
    fine_tuning: the FineTuning settings.

  Raises:
    ValueError: the newest checkpoint lacks the module optimizer's variables.
  """
  if not model_dir or module_optimizer is None:
    return
  checkpoint = tf.train.latest_checkpoint(model_dir)
  if checkpoint is None:
    return
  saved = {name for name, _ in tf.train.list_variables(checkpoint)}
  missing = sorted(
      v.op.name for v in module_optimizer.variables() if v.op.name not in saved
  )
  if missing:
    raise ValueError(
        'FineTuning.learning_rate_multiplier='
        f'{fine_tuning.learning_rate_multiplier} and FineTuning.frozen_steps='
        f'{fine_tuning.frozen_steps} give the module its own optimizer, but'
        f' checkpoint {checkpoint} was written without it (it lacks'
        f' {missing[:3]}{" ..." if len(missing) > 3 else ""}): the run began'
        ' with other fine-tuning settings. Resume it with those, or start a'
        ' new model_dir.'
    )
