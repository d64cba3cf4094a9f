"""What a run produced: final step, every evaluation, best metric, exports.

Read back from the run directory (eval events, export folders), so the result
of a restarted run covers the evaluations of its earlier processes too.
"""

import dataclasses
import math
import os
import shlex
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf

from hub_estimator.export import failures
from hub_estimator.export import layout

_v1 = tf.compat.v1


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
    failed_exports: the exports that failed while training went on and were
      not published later, by step: dicts with `exporter`, `global_step`,
      `checkpoint_path` and `cause` (see `export.failures`).
  """

  model_dir: str
  global_step: int
  wall_time_secs: float
  evaluations: List[Dict[str, float]]
  best_metric: str
  best_value: Optional[float]
  best_step: Optional[int]
  exports: Dict[str, List[str]]
  failed_exports: List[Dict[str, Any]] = dataclasses.field(default_factory=list)

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
    if self.failed_exports:
      lines.append(
          'Failed exports (nothing published for these checkpoints; see the'
          ' ERROR lines of the log):'
      )
      for failure in self.failed_exports:
        lines.append(
            f'  {failure.get("exporter")}: step {failure.get("global_step")}'
            f' ({failure.get("checkpoint_path")}): {failure.get("cause")}'
        )
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


def best_evaluation(
    evaluations: List[Dict[str, float]], metric: str, mode: str
) -> Optional[Dict[str, float]]:
  """The first evaluation whose `metric` no later one beats (`layout.is_better`).

  Evaluations without the metric, or where it is NaN, are skipped; None if
  none is left.
  """
  best = None
  for metrics in evaluations:
    value = metrics.get(metric)
    if value is None or math.isnan(value):
      continue
    if best is None or layout.is_better(value, best[metric], mode):
      best = metrics
  return best


def collect(
    estimator: tf.estimator.Estimator,
    wall_time_secs: float,
    best_metric: str,
    best_metric_mode: str,
) -> RunResult:
  """Reads what the run of `estimator` produced from its model_dir.

  Args:
    estimator: the run's Estimator (its model_dir, checkpoints, eval dir).
    wall_time_secs: seconds this process spent training and evaluating.
    best_metric: the metric whose best evaluation to report.
    best_metric_mode: 'min' or 'max'.
  """
  model_dir = estimator.model_dir
  if '://' not in model_dir:
    # Shown in the summary: absolute, whatever the working directory was.
    model_dir = os.path.abspath(model_dir)
  step = 0
  checkpoint = estimator.latest_checkpoint()
  if checkpoint:
    step = int(tf.train.load_variable(checkpoint, 'global_step'))
  evaluations = read_eval_history(estimator.eval_dir())
  best = best_evaluation(evaluations, best_metric, best_metric_mode)
  exports = layout.list_exports(model_dir)
  return RunResult(
      model_dir=model_dir,
      global_step=step,
      wall_time_secs=wall_time_secs,
      evaluations=evaluations,
      best_metric=best_metric,
      best_value=None if best is None else best[best_metric],
      best_step=None if best is None else int(best.get('global_step', 0)),
      exports={
          name: [v.path for v in versions] for name, versions in exports.items()
      },
      failed_exports=_failed_exports(estimator.eval_dir(), exports),
  )


def _failed_exports(
    eval_dir: str, exports: Mapping[str, List[layout.Version]]
) -> List[Dict[str, Any]]:
  """Recorded export failures whose checkpoint the exporter did not publish
  later (a re-run redoing it, or another evaluator)."""
  published = set()
  for name, versions in exports.items():
    for version in versions:
      metadata = layout.read_metadata(version.path) or {}
      published.add((name, metadata.get('checkpoint_path')))
  return [
      f
      for f in failures.read_failures(eval_dir)
      if (f.get('exporter'), f.get('checkpoint_path')) not in published
  ]
