"""What a person sees while a run trains: progress lines and quiet logs.

`ProgressHook` logs step, loss and steps/sec; `quiet_tensorflow_logs` keeps
TensorFlow's own log to warnings plus the one INFO line per evaluation
(tf.estimator's "Saving dict for global step N: <metrics>"). The exporters log
what they publish; the run's result and its summary are in run_result.py.
"""

import logging as pylogging
import time

from absl import logging
import tensorflow as tf

_v1 = tf.compat.v1
# What tf.estimator logs (INFO) once per evaluation, with the metrics.
_EVAL_LINE = 'Saving dict for global step'


class ProgressHook(tf.estimator.SessionRunHook):
  """Logs step, loss and steps/sec every N steps while training."""

  def __init__(self, every_n_steps: int, max_steps: int, loss_collection: str):
    """Creates the hook.

    Args:
      every_n_steps: log every this many global steps.
      max_steps: the training target, shown as `step/max_steps`.
      loss_collection: the graph collection whose first tensor is the loss
        shown (a float32 scalar); the line shows `n/a` when it is empty.
    """
    self._every_n_steps = every_n_steps
    self._max_steps = max_steps
    self._loss_collection = loss_collection
    self._fetches = None
    self._last = None

  def begin(self):
    losses = _v1.get_collection(self._loss_collection)
    self._fetches = {'step': _v1.train.get_global_step()}
    if losses:
      self._fetches['loss'] = losses[0]

  def after_create_session(self, session, coord):
    del coord
    self._last = (session.run(self._fetches['step']), time.time())

  def before_run(self, run_context):
    del run_context
    return tf.estimator.SessionRunArgs(self._fetches)

  def after_run(self, run_context, run_values):
    del run_context
    step = int(run_values.results['step']) + 1
    last_step, last_time = self._last
    if step - last_step < self._every_n_steps and step < self._max_steps:
      return
    now = time.time()
    rate = (step - last_step) / max(now - last_time, 1e-9)
    loss = run_values.results.get('loss')
    loss_str = f'{loss:.4f}' if loss is not None else 'n/a'
    logging.info(
        'step %d/%d  loss %s  %.1f steps/sec',
        step,
        self._max_steps,
        loss_str,
        rate,
    )
    self._last = (step, now)


class _QuietFilter(pylogging.Filter):
  """Warnings (minus deprecation notices) and the per-evaluation INFO line."""

  def filter(self, record):
    message = record.getMessage()
    if record.levelno < pylogging.WARNING:
      return message.startswith(_EVAL_LINE)
    return 'is deprecated and will be removed' not in message


def quiet_tensorflow_logs() -> None:
  """Keeps TensorFlow's own log to warnings and the evaluation results.

  The progress lines and summaries (absl INFO) stay; the Estimator's INFO
  chatter and the deprecation notices every tf.estimator API carries in TF
  2.15 go, except tf.estimator's one line per evaluation with its metrics.
  For entry points; the library never calls it.
  """
  logger = tf.get_logger()
  logger.setLevel(pylogging.INFO)
  if not any(isinstance(f, _QuietFilter) for f in logger.filters):
    logger.addFilter(_QuietFilter())
