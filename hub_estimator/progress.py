"""What a person sees while a run trains: progress lines and quiet logs.

`ProgressHook` logs step, loss and steps/sec; `quiet_tensorflow_logs` keeps
TensorFlow's own log to warnings and turns tf.estimator's per-evaluation
record into one line `evaluation at step N: <metrics>`. The exporters log
what they publish; the run's result and its summary are in run_result.py.
"""

import logging as pylogging
import time

from absl import logging
import tensorflow as tf

_v1 = tf.compat.v1
# What tf.estimator 2.15 logs (INFO, estimator.py) once per evaluation, with
# the global step and the metrics as arguments.
_EVAL_LINE = 'Saving dict for global step %d: %s'


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
  """Drops TensorFlow's INFO records and deprecation notices.

  tf.estimator's per-evaluation record is logged again, once, as an absl INFO
  line `evaluation at step N: <metrics>` (TensorFlow's logger may have a
  handler of its own besides the root one, which would show it twice).
  """

  def filter(self, record):
    if record.levelno < pylogging.WARNING:
      if record.msg == _EVAL_LINE and len(record.args or ()) == 2:
        logging.info('evaluation at step %d: %s', *record.args)
      return False
    return 'is deprecated and will be removed' not in record.getMessage()


def quiet_tensorflow_logs() -> None:
  """Keeps TensorFlow's own log to warnings, plus one line per evaluation.

  The progress lines and summaries (absl INFO) stay; the Estimator's INFO
  chatter and the deprecation notices every tf.estimator API carries in TF
  2.15 go, except the metrics of each evaluation (as an absl INFO line).
  For entry points; the library never calls it.
  """
  logger = tf.get_logger()
  logger.setLevel(pylogging.INFO)
  if not any(isinstance(f, _QuietFilter) for f in logger.filters):
    logger.addFilter(_QuietFilter())
