"""Preemption: SIGTERM / SIGINT stop a run cleanly, and a re-run resumes it.

SIGTERM is what Kubernetes, preemptible VMs and batch schedulers send before
they kill a process (after a grace period, 30 s by default on Kubernetes);
SIGINT is Ctrl-C. While `handle_signals()` is active:

* A training task (chief, worker, or a local run) finishes the step in
  flight; the chief then writes a checkpoint of that step (workers' steps are
  already in the ps variables the chief checkpoints), and the run raises
  `Preempted`. Nothing trained is lost: a re-run of the same command resumes
  from that checkpoint.
* An evaluation (on an evaluator task, or between training steps of a local
  run) stops at its next batch; an evaluator waiting for a checkpoint stops at
  once. Either raises `Preempted`.
* An export in flight when a training task is preempted completes first (it
  is atomic and short); on an evaluator it is abandoned (nothing is
  published).

Before evaluating a checkpoint the run records it in
`<eval dir>/pending_evaluation.json`; the last exporter of the evaluation
(`EvalCompleted`) removes that record once every exporter has handled the
checkpoint. A run that finds the record on start (the evaluation or an
export was interrupted, by a signal or a kill) evaluates that checkpoint again
and runs every exporter on it before anything else. The exporters skip a
checkpoint they already published (they read it back from the
export_metadata.json of their versions), so nothing is published twice.

A resumed run logs `Resuming from global step N (checkpoint ...)`, and with
`RunSettings.save_checkpoints_steps` (every N steps) keeps checkpoints, and
so evaluations and exports, on the grid of multiples of N that the run had
before it was preempted (`GridCheckpointSaverHook`): stopped at step 1234
with N=500, it goes on at 1500, 2000, ..., not 1734, 2234.

Entry points exit with `PREEMPTED_EXIT_CODE` (75, EX_TEMPFAIL from
sysexits.h: "a temporary failure; retry later") on `Preempted`.
"""

import contextlib
import json
import os
import signal
import threading
from typing import Any, Iterator, Optional

from absl import logging
import tensorflow as tf

_v1 = tf.compat.v1

PREEMPTED_EXIT_CODE = 75
PENDING_FILENAME = 'pending_evaluation.json'
EVAL_COMPLETED_NAME = 'eval_completed'
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(BaseException):
  """A run stopped on SIGTERM or SIGINT (what was saved is in the message).

  A BaseException, like KeyboardInterrupt, so that code which handles
  `Exception` (e.g. an exporter that logs failures and goes on) lets it
  through.

  Attributes:
    signal_name: e.g. 'SIGTERM'.
    checkpoint: the checkpoint written on the way out, or None.
  """

  def __init__(self, message: str, signal_name: str, checkpoint=None):
    super().__init__(message)
    self.signal_name = signal_name
    self.checkpoint = checkpoint


class _Guard:
  """The signal received, and whether the main thread may be interrupted."""

  def __init__(self):
    self.signum = None
    # >0 while the main thread runs training steps, which must each finish
    # (the hooks act on the signal between steps).
    self.graceful_depth = 0

  @property
  def requested(self) -> bool:
    return self.signum is not None

  @property
  def signal_name(self) -> str:
    return signal.Signals(self.signum).name if self.signum else ''

  def handler(self, signum, frame):
    del frame
    first = self.signum is None
    self.signum = signum
    if self.graceful_depth > 0 and first:
      logging.warning(
          'Received %s: finishing the current step, then writing a '
          'checkpoint and stopping (a second signal stops at once).',
          self.signal_name,
      )
      return
    raise Preempted(
        f'Preempted by {self.signal_name}'
        + (
            ' (a second signal)'
            if not first
            else ' (no training step was in flight)'
        )
        + '.',
        self.signal_name,
    )


_guard: Optional[_Guard] = None


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
  """Installs the SIGTERM / SIGINT handlers for the duration of a run.

  Only the main thread can install signal handlers; elsewhere the run goes
  on without them (logged).
  """
  global _guard
  if threading.current_thread() is not threading.main_thread():
    logging.warning(
        'Not on the main thread: SIGTERM / SIGINT will not stop this run '
        'cleanly.'
    )
    yield
    return
  previous = {s: signal.getsignal(s) for s in _SIGNALS}
  _guard = _Guard()
  for s in _SIGNALS:
    signal.signal(s, _guard.handler)
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    _guard = None


def _requested() -> Optional[_Guard]:
  return _guard if _guard is not None and _guard.requested else None


def _saver() -> Any:
  savers = _v1.get_collection(_v1.GraphKeys.SAVERS)
  return savers[0] if savers else None


class TrainHook(tf.estimator.SessionRunHook):
  """Stops training after the step in flight; the chief checkpoints it."""

  def __init__(self, model_dir: str, is_chief: bool):
    """Creates the hook.

    Args:
      model_dir: where the chief writes the checkpoint (`model.ckpt-<step>`).
      is_chief: whether this task writes checkpoints.
    """
    self._model_dir = model_dir
    self._is_chief = is_chief
    self._global_step = None
    self._in_session = False

  def begin(self):
    self._global_step = _v1.train.get_global_step()

  def after_create_session(self, session, coord):
    del coord
    step = int(session.run(self._global_step))
    if step > 0:
      logging.info(
          'Resuming from global step %d (checkpoint %s).',
          step,
          tf.train.latest_checkpoint(self._model_dir),
      )
    if _guard is not None and not self._in_session:
      _guard.graceful_depth += 1
      self._in_session = True

  def _leave(self):
    if _guard is not None and self._in_session:
      _guard.graceful_depth -= 1
    self._in_session = False

  def after_run(self, run_context, run_values):
    del run_values
    guard = _requested()
    if guard is None:
      return
    session = run_context.session
    step = int(session.run(self._global_step))
    checkpoint = None
    if self._is_chief:
      saver = _saver()
      latest = tf.train.latest_checkpoint(self._model_dir)
      if latest and latest.endswith(f'-{step}'):
        checkpoint = latest  # This step is saved already.
      elif saver is not None:
        checkpoint = saver.save(
            session,
            os.path.join(self._model_dir, 'model.ckpt'),
            global_step=step,
        )
      else:
        logging.error('Preempted: found no saver to write a checkpoint.')
    self._leave()
    if checkpoint:
      what = f'wrote checkpoint {checkpoint}'
    elif self._is_chief:
      what = 'could not write a checkpoint'
    else:
      what = 'this worker does not write checkpoints; its steps are in the ps'
    raise Preempted(
        f'Preempted by {guard.signal_name} at global step {step}; {what}.'
        ' Run the same command again to resume.',
        guard.signal_name,
        checkpoint,
    )

  def end(self, session):
    del session
    self._leave()


class _GridTimer(tf.compat.v1.train.SecondOrStepTimer):
  """Triggers at each multiple of `every_steps` a step reaches or passes."""

  def __init__(self, every_steps: int):
    super().__init__(every_steps=every_steps)
    self._grid = every_steps

  def should_trigger_for_step(self, step):
    last = self.last_triggered_step()
    if last is None:
      return True
    return step // self._grid > last // self._grid


class GridCheckpointSaverHook(tf.compat.v1.train.CheckpointSaverHook):
  """Saves every N global steps at the multiples of N, also after a resume.

  tf.estimator's own saver counts N steps from wherever a process starts, so a
  run resumed from a preemption checkpoint at step 1234 (N=500) would save,
  evaluate and export at 1734, 2234, ...; this hook keeps 1500, 2000, ...
  Otherwise it is tf.estimator's saver: it saves when a session starts (the
  evaluation listener of a local run skips that first save, so the resume
  step itself is not evaluated). Given to the chief's training hooks, the
  Estimator uses it instead of making its own (and attaches its evaluation
  listener in a local run).
  """

  def __init__(self, model_dir: str, save_steps: int, save_graph_def=True):
    """Creates the hook.

    Args:
      model_dir: where checkpoints go (`model.ckpt-<step>`).
      save_steps: N, `RunSettings.save_checkpoints_steps` (global steps).
      save_graph_def: as tf.estimator.RunConfig.checkpoint_save_graph_def.
    """
    super().__init__(
        model_dir, save_steps=save_steps, save_graph_def=save_graph_def
    )
    self._timer = _GridTimer(save_steps)
    self._save_steps = save_steps

  def after_create_session(self, session, coord):
    step = int(session.run(self._global_step_tensor))
    if step % self._save_steps:
      logging.info(
          'Checkpoints, evaluations and exports stay on the grid of every %d'
          ' steps: the next is at step %d.',
          self._save_steps,
          (step // self._save_steps + 1) * self._save_steps,
      )
    super().after_create_session(session, coord)


def _pending_path(eval_dir: str) -> str:
  return os.path.join(eval_dir, PENDING_FILENAME)


def read_pending(eval_dir: str) -> Optional[str]:
  """The checkpoint whose evaluation or export did not complete, or None."""
  path = _pending_path(eval_dir)
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f).get('checkpoint_path')
  except tf.errors.NotFoundError:
    return None
  except (tf.errors.OpError, ValueError, AttributeError) as e:
    logging.warning('Ignoring unreadable %s: %s', path, e)
    return None


def clear_pending(eval_dir: str) -> None:
  """Records that the pending evaluation and its exports completed."""
  try:
    tf.io.gfile.remove(_pending_path(eval_dir))
  except tf.errors.NotFoundError:
    pass  # Nothing was pending.


def _write_pending(eval_dir: str, checkpoint_path: str) -> None:
  tf.io.gfile.makedirs(eval_dir)
  path = _pending_path(eval_dir)
  temp = path + '.tmp'
  with tf.io.gfile.GFile(temp, 'w') as f:
    json.dump({'checkpoint_path': checkpoint_path}, f)
  tf.io.gfile.rename(temp, path, overwrite=True)


class EvalHook(tf.estimator.SessionRunHook):
  """Records the evaluated checkpoint as pending; stops on a signal."""

  def __init__(self, model_dir: str, eval_dir: str):
    """Creates the hook.

    Args:
      model_dir: the run's model_dir (where its checkpoints are).
      eval_dir: the estimator's eval dir, where the pending record lives.
    """
    self._model_dir = model_dir
    self._eval_dir = eval_dir
    self._global_step = None
    self._checkpoint = None

  def begin(self):
    self._global_step = _v1.train.get_global_step()

  def after_create_session(self, session, coord):
    del coord
    step = int(session.run(self._global_step))
    self._checkpoint = os.path.join(self._model_dir, f'model.ckpt-{step}')
    _write_pending(self._eval_dir, self._checkpoint)

  def after_run(self, run_context, run_values):
    del run_context, run_values
    guard = _requested()
    if guard is not None:
      raise Preempted(
          f'Preempted by {guard.signal_name} during the evaluation of'
          f' {self._checkpoint}; a re-run evaluates and exports it again.',
          guard.signal_name,
      )


class EvalCompleted(tf.estimator.Exporter):
  """The last exporter of an evaluation: clears the pending record."""

  def __init__(self, eval_dir: str):
    self._eval_dir = eval_dir

  @property
  def name(self):
    return EVAL_COMPLETED_NAME

  def export(
      self,
      estimator,
      export_path,
      checkpoint_path,
      eval_result,
      is_the_final_export,
  ):
    del estimator, export_path, checkpoint_path, eval_result
    del is_the_final_export
    clear_pending(self._eval_dir)
    return None
