"""What a person sees of a run: progress lines, eval reports, export summaries, results."""

import dataclasses
import os
import shlex
import time
from typing import Any, Dict, List, Mapping, Optional

from absl import logging
import tensorflow as tf

from hub_estimator.export import layout

_v1 = tf.compat.v1
EVAL_REPORTER_NAME = 'eval_report'


@dataclasses.dataclass
class RunResult:
  """What a run produced.

  Attributes:
    model_dir: the run directory.
    global_step: the final global step.
    wall_time_secs: seconds spent in train_and_evaluate.
    evaluations: the metrics of every evaluation of the run (read back from
      its eval events, so earlier processes count too), ordered by step.
    best_metric: the metric `best_value` refers to.
    best_value: the best value of `best_metric` over the evaluations (None
      if there was none).
    best_step: the global step of that evaluation.
    exports: exporter name -> published version folders, oldest first.
  """

  model_dir: str
  global_step: int
  wall_time_secs: float
  evaluations: List[Dict[str, float]]
  best_metric: str
  best_value: Optional[float]
  best_step: Optional[int]
  exports: Dict[str, List[str]]

  @property
  def final_metrics(self) -> Dict[str, float]:
    return self.evaluations[-1] if self.evaluations else {}

  def summary(self) -> str:
    """Lines for a person: metrics, exports, config.gin, tensorboard command."""
    lines = [
        f'Run finished at global step {self.global_step}'
        f' ({self.wall_time_secs:.1f} s in this process); model_dir'
        f' {self.model_dir}'
    ]
    if self.final_metrics:
      lines.append(f'Final evaluation: {_format_metrics(self.final_metrics)}')
    if self.best_value is not None:
      lines.append(
          f'Best {self.best_metric}: {self.best_value:.4f} at step'
          f' {self.best_step}'
      )
    if self.exports:
      lines.append('Exports (newest version last):')
      for name, versions in sorted(self.exports.items()):
        modules = layout.module_names(versions[-1]) if versions else []
        newest = versions[-1] if versions else '(none)'
        lines.append(
            f'  {name}: {len(versions)} version(s); newest {newest}'
            f' {_export_origin(newest, self.best_metric)}modules {modules}'
        )
    else:
      lines.append('Exports: none')
    config = os.path.join(self.model_dir, 'config.gin')
    if tf.io.gfile.exists(config):
      lines.append(f'Gin config of the run: {config}')
    lines.append(
        f'To look at it: tensorboard --logdir {shlex.quote(self.model_dir)}'
    )
    return '\n'.join(lines)


def _export_origin(version_dir: str, metric: str) -> str:
  """'(step N, metric=v) ' from a version's export metadata, or ''."""
  metadata = layout.read_metadata(version_dir)
  if not metadata or 'global_step' not in metadata:
    return ''
  value = layout.recorded_metric(metadata, metric)
  shown = f', {metric}={value:.4f}' if value is not None else ''
  return f'(step {metadata["global_step"]}{shown}) '


def _format_metrics(metrics: Mapping[str, Any]) -> str:
  keys = sorted(k for k in metrics if k != 'global_step')
  return ', '.join(f'{k}={metrics[k]:.4f}' for k in keys)


def list_exports(model_dir: str) -> Dict[str, List[str]]:
  """Returns exporter name -> published version folders (oldest first)."""
  return {
      name: [v.path for v in versions]
      for name, versions in layout.list_exports(model_dir).items()
  }


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


class EvalReporter(tf.estimator.Exporter):
  """Runs after the real exporters: logs metrics and what was exported.

  It writes nothing under `export/`; it records each evaluation for the final
  summary and writes an `exports` text summary for TensorBoard.
  """

  def __init__(self, model_dir: str):
    self._model_dir = model_dir
    self._writer = None
    self.evaluations = []

  @property
  def name(self):
    return EVAL_REPORTER_NAME

  def export(
      self,
      estimator,
      export_path,
      checkpoint_path,
      eval_result,
      is_the_final_export,
  ):
    del estimator, export_path, checkpoint_path, is_the_final_export
    metrics = {}
    for key, value in (eval_result or {}).items():
      try:
        metrics[key] = float(value)
      except (TypeError, ValueError):
        continue
    self.evaluations.append(metrics)
    step = int(metrics.get('global_step', 0))
    exports = list_exports(self._model_dir)
    newest = {n: os.path.basename(v[-1]) for n, v in exports.items() if v}
    logging.info(
        'eval at step %d: %s; exports %s',
        step,
        _format_metrics(metrics),
        newest or 'none',
    )
    text = (
        '\n'.join(
            f'* {name}: {len(v)} version(s), newest `{v[-1]}`'
            for name, v in sorted(exports.items())
            if v
        )
        or 'no exports'
    )
    if self._writer is None:
      # A graph context, because FileWriter refuses eager mode.
      with tf.Graph().as_default():
        self._writer = _v1.summary.FileWriter(
            os.path.join(self._model_dir, 'export')
        )
    self._writer.add_summary(
        _export_summary(text, {n: len(v) for n, v in exports.items()}),
        step,
    )
    self._writer.flush()
    return None

  def close(self):
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def _export_summary(text: str, counts: Mapping[str, int]) -> Any:
  """The export listing (text) and version counts, as one Summary."""
  values = [
      _v1.Summary.Value(
          tag='exports',
          metadata=_v1.SummaryMetadata(
              plugin_data=_v1.SummaryMetadata.PluginData(plugin_name='text')
          ),
          tensor=tf.make_tensor_proto(text),
      )
  ]
  for name, count in sorted(counts.items()):
    values.append(
        _v1.Summary.Value(tag=f'exports/{name}', simple_value=float(count))
    )
  return _v1.Summary(value=values)


def read_eval_history(eval_dir: str) -> List[Dict[str, float]]:
  """Returns the scalar metrics of every evaluation logged in `eval_dir`.

  Args:
    eval_dir: an Estimator's eval directory (`model_dir/eval`).

  Returns:
    One dict per evaluation (with `global_step`), ordered by step; the last
    one logged wins for a repeated step. Empty if there are none.
  """
  by_step = {}
  for path in sorted(tf.io.gfile.glob(os.path.join(eval_dir, 'events.*'))):
    for event in _v1.train.summary_iterator(path):
      scalars = {
          v.tag: v.simple_value
          for v in event.summary.value
          if v.WhichOneof('value') == 'simple_value'
      }
      if scalars:
        scalars['global_step'] = float(event.step)
        by_step[event.step] = scalars
  return [by_step[k] for k in sorted(by_step)]
