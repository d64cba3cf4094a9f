"""Tests for hub_estimator.run_result and the log filter of progress.py."""

import dataclasses
import logging as pylogging
import math
import os
import tempfile
from unittest import mock

import tensorflow as tf

from hub_estimator import progress
from hub_estimator import run_result
from hub_estimator.export import failures
from hub_estimator.export import layout


class BestEvaluationTest(tf.test.TestCase):

  def test_first_of_equal_values_wins_and_nan_is_skipped(self):
    evaluations = [
        {'global_step': 1.0, 'accuracy': math.nan},
        {'global_step': 2.0, 'accuracy': 0.8},
        {'global_step': 3.0, 'loss': 0.1},
        {'global_step': 4.0, 'accuracy': 0.8},
        {'global_step': 5.0, 'accuracy': 0.7},
    ]
    best = run_result.best_evaluation(evaluations, 'accuracy', 'max')
    self.assertEqual(best['global_step'], 2.0)
    best = run_result.best_evaluation(evaluations, 'accuracy', 'min')
    self.assertEqual(best['global_step'], 5.0)
    self.assertIsNone(run_result.best_evaluation(evaluations, 'auc', 'max'))
    self.assertIsNone(run_result.best_evaluation([], 'auc', 'max'))


class SummaryTest(tf.test.TestCase):

  def test_summary_names_best_metric_and_newest_export(self):
    model_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    base = layout.exporter_dir(model_dir, 'best')
    version_dir = layout.version_path(base, 1700000000)
    os.makedirs(os.path.join(version_dir, 'digits_mlp'))
    layout.write_metadata(
        version_dir, {'global_step': 250, 'metrics': {'accuracy': 0.975}}
    )
    result = run_result.RunResult(
        model_dir=model_dir,
        global_step=500,
        wall_time_secs=3.0,
        evaluations=[{'global_step': 250.0, 'accuracy': 0.975, 'loss': 0.1}],
        best_metric='accuracy',
        best_value=0.975,
        best_step=250,
        exports={'best': [version_dir], 'latest': []},
    )
    summary = result.summary()
    self.assertIn('Run finished at global step 500', summary)
    self.assertIn('Final evaluation: accuracy=0.9750, loss=0.1000', summary)
    self.assertIn('Best accuracy: 0.9750 at step 250', summary)
    self.assertIn(
        f'best: 1 version(s); newest {version_dir} (step 250,'
        " accuracy=0.9750) modules ['digits_mlp']",
        summary,
    )
    self.assertIn('latest: 0 version(s); newest (none)', summary)

  def test_failed_exports_not_published_later_are_listed(self):
    model_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    eval_dir = os.path.join(model_dir, 'eval')
    ckpt = os.path.join(model_dir, 'model.ckpt-%d')
    failures.record_failure(
        eval_dir, 'latest', ckpt % 200, 200, 'OSError: disk full'
    )
    failures.record_failure(
        eval_dir, 'best', ckpt % 100, 100, 'PermissionError: denied'
    )
    # Redone by a re-run and published: no longer a failure.
    failures.record_failure(eval_dir, 'best', ckpt % 300, 300, 'X: y')
    version_dir = layout.version_path(
        layout.exporter_dir(model_dir, 'best'), 1700000000
    )
    os.makedirs(os.path.join(version_dir, 'm'))
    layout.write_metadata(
        version_dir, {'global_step': 300, 'checkpoint_path': ckpt % 300}
    )
    exports = layout.list_exports(model_dir)
    failed = run_result._failed_exports(eval_dir, exports)  # pylint: disable=protected-access
    self.assertEqual(
        [(f['exporter'], f['global_step']) for f in failed],
        [('best', 100), ('latest', 200)],
    )
    result = run_result.RunResult(
        model_dir=model_dir,
        global_step=300,
        wall_time_secs=1.0,
        evaluations=[],
        best_metric='accuracy',
        best_value=None,
        best_step=None,
        exports={'best': [version_dir]},
        failed_exports=failed,
    )
    self.assertIn(
        'Failed exports (nothing published for these checkpoints; see the'
        ' ERROR lines of the log):\n'
        f'  best: step 100 ({ckpt % 100}): PermissionError: denied\n'
        f'  latest: step 200 ({ckpt % 200}): OSError: disk full\n',
        result.summary(),
    )
    result = dataclasses.replace(result, failed_exports=[])
    self.assertNotIn('Failed exports', result.summary())

  def test_summary_shows_a_relative_model_dir_as_absolute(self):
    parent = tempfile.mkdtemp(dir=self.get_temp_dir())
    os.makedirs(os.path.join(parent, 'run', 'eval'))
    estimator = mock.Mock(spec=tf.estimator.Estimator)
    estimator.model_dir = 'run'
    estimator.latest_checkpoint.return_value = None
    estimator.eval_dir.return_value = os.path.join('run', 'eval')
    cwd = os.getcwd()
    os.chdir(parent)
    try:
      result = run_result.collect(estimator, 1.0, 'accuracy', 'max')
    finally:
      os.chdir(cwd)
    self.assertEqual(
        result.model_dir, os.path.join(os.path.realpath(parent), 'run')
    )
    self.assertIn('model_dir %s' % result.model_dir, result.summary())


class QuietLogsTest(tf.test.TestCase):

  def test_keeps_warnings_and_one_line_per_evaluation(self):
    logger = tf.get_logger()
    level, filters = logger.level, list(logger.filters)
    try:
      progress.quiet_tensorflow_logs()
      progress.quiet_tensorflow_logs()  # Idempotent: one filter.
      added = [f for f in logger.filters if f not in filters]
      self.assertLen(added, 1)

      def shown(level, message, *args):
        record = logger.makeRecord(
            'tensorflow', level, 'f', 1, message, args, None
        )
        return logger.isEnabledFor(level) and added[0].filter(record)

      with self.assertLogs('absl', level='INFO') as logs:
        self.assertFalse(
            shown(
                pylogging.INFO,
                'Saving dict for global step %d: %s',
                250,
                'accuracy = 0.98, loss = 0.1',
            )
        )
      self.assertEqual(
          [r.getMessage() for r in logs.records],
          ['evaluation at step 250: accuracy = 0.98, loss = 0.1'],
      )
      self.assertFalse(shown(pylogging.INFO, 'Calling model_fn.'))
      self.assertTrue(shown(pylogging.WARNING, 'Something odd'))
      self.assertFalse(
          shown(pylogging.WARNING, 'X is deprecated and will be removed soon')
      )
    finally:
      logger.setLevel(level)
      logger.filters[:] = filters


if __name__ == '__main__':
  tf.test.main()
