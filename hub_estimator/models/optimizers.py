"""Optimizers and learning-rate schedules, each a gin-configurable function.

Bind them by reference: `make_model_fn.optimizer_fn = @adam` and
`make_model_fn.learning_rate_fn = @cosine_decay`. A schedule is called with the
global step and returns the learning rate; an optimizer is called with that
rate and returns a `tf.compat.v1.train.Optimizer`.
"""

from typing import Sequence

import gin
import tensorflow as tf

from hub_estimator import checks

_v1 = tf.compat.v1


# ------------------------------------------------------------ optimizers --


@gin.configurable
def sgd(learning_rate):
  """Plain gradient descent.

  Args:
    learning_rate: a float or a scalar tensor.
  """
  return _v1.train.GradientDescentOptimizer(learning_rate)


@gin.configurable
def momentum(
    learning_rate, momentum_value: float = 0.9, use_nesterov: bool = False
):
  """Gradient descent with momentum.

  Args:
    learning_rate: a float or a scalar tensor.
    momentum_value: the momentum coefficient.
    use_nesterov: whether to use Nesterov momentum.
  """
  return _v1.train.MomentumOptimizer(
      learning_rate, momentum_value, use_nesterov=use_nesterov
  )


@gin.configurable
def adam(
    learning_rate,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
):
  """Adam.

  Args:
    learning_rate: a float or a scalar tensor.
    beta1: decay of the first-moment estimate.
    beta2: decay of the second-moment estimate.
    epsilon: numerical stability constant.
  """
  return _v1.train.AdamOptimizer(learning_rate, beta1, beta2, epsilon)


@gin.configurable
def adagrad(learning_rate, initial_accumulator_value: float = 0.1):
  """Adagrad.

  Args:
    learning_rate: a float or a scalar tensor.
    initial_accumulator_value: starting value of the accumulators (> 0).
  """
  return _v1.train.AdagradOptimizer(learning_rate, initial_accumulator_value)


@gin.configurable
def rmsprop(
    learning_rate,
    decay: float = 0.9,
    momentum_value: float = 0.0,
    epsilon: float = 1e-10,
):
  """RMSProp.

  Args:
    learning_rate: a float or a scalar tensor.
    decay: discount of the squared-gradient average.
    momentum_value: the momentum coefficient.
    epsilon: numerical stability constant.
  """
  return _v1.train.RMSPropOptimizer(
      learning_rate, decay, momentum_value, epsilon
  )


# -------------------------------------------------- learning-rate schedules --


@gin.configurable
def constant_rate(global_step, value: float = 0.001):
  """A constant learning rate.

  Args:
    global_step: the global step tensor (unused).
    value: the learning rate.
  """
  del global_step
  checks.check_positive(value, 'constant_rate.value', integer=False)
  return tf.constant(value, tf.float32)


@gin.configurable
def exponential_decay(
    global_step,
    initial: float = 0.01,
    decay_steps: int = 1000,
    decay_rate: float = 0.9,
    staircase: bool = False,
):
  """`initial * decay_rate ** (step / decay_steps)`.

  Args:
    global_step: the global step tensor.
    initial: the rate at step 0.
    decay_steps: steps per decay period.
    decay_rate: multiplier per period.
    staircase: whether to decay in whole periods.
  """
  checks.check_positive(initial, 'exponential_decay.initial', integer=False)
  checks.check_positive(
      decay_steps, 'exponential_decay.decay_steps', integer=False
  )
  return _v1.train.exponential_decay(
      initial, global_step, decay_steps, decay_rate, staircase=staircase
  )


@gin.configurable
def cosine_decay(
    global_step,
    initial: float = 0.01,
    decay_steps: int = 1000,
    alpha: float = 0.0,
):
  """Cosine decay from `initial` to `alpha * initial` over `decay_steps`.

  Args:
    global_step: the global step tensor.
    initial: the rate at step 0.
    decay_steps: steps to reach the final rate.
    alpha: final rate as a fraction of `initial`.
  """
  checks.check_positive(initial, 'cosine_decay.initial', integer=False)
  checks.check_positive(decay_steps, 'cosine_decay.decay_steps', integer=False)
  return _v1.train.cosine_decay(initial, global_step, decay_steps, alpha)


@gin.configurable
def piecewise_constant(
    global_step, boundaries: Sequence[int] = (), values: Sequence[float] = ()
):
  """Steps through `values`, changing at each of `boundaries`.

  Args:
    global_step: the global step tensor.
    boundaries: increasing step numbers.
    values: one more rate than there are boundaries.
  """
  if len(values) != len(boundaries) + 1:
    raise ValueError(
        'piecewise_constant.values must have one more entry than'
        f' piecewise_constant.boundaries; got {list(values)} and'
        f' {list(boundaries)}.'
    )
  return _v1.train.piecewise_constant(
      global_step, [int(b) for b in boundaries], [float(v) for v in values]
  )


@gin.configurable
def linear_warmup(
    global_step, schedule_fn=constant_rate, warmup_steps: int = 100
):
  """Ramps linearly from 0 to `schedule_fn` over the first `warmup_steps`.

  Args:
    global_step: the global step tensor.
    schedule_fn: the schedule used after warm-up (a gin reference).
    warmup_steps: steps of the ramp.
  """
  checks.check_positive(
      warmup_steps, 'linear_warmup.warmup_steps', integer=False
  )
  rate = schedule_fn(global_step)
  fraction = tf.minimum(
      1.0, tf.cast(global_step + 1, tf.float32) / float(warmup_steps)
  )
  return rate * fraction
