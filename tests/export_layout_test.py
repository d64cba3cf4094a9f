"""Tests for hub_estimator.export.layout: names, listing, metadata, "better"."""

import math
import os
import tempfile

import tensorflow as tf

from hub_estimator.export import layout


def _publish(base, version, metrics=None, modules=('body',)):
  path = os.path.join(base, str(version))
  for module in modules:
    os.makedirs(os.path.join(path, module))
  if metrics is not None:
    layout.write_metadata(path, {'global_step': 1, 'metrics': metrics})
  return path


class LayoutTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.model_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    self.base = layout.exporter_dir(self.model_dir, 'best')

  def test_names(self):
    self.assertEqual(self.base, os.path.join(self.model_dir, 'export', 'best'))
    self.assertTrue(layout.is_version_name('1700000000'))
    for name in ('170000000', '17000000000', 'temp-1700000000', '17000000x0'):
      self.assertFalse(layout.is_version_name(name), name)
    self.assertEqual(
        layout.version_path(self.base, 1700000000),
        os.path.join(self.base, '1700000000'),
    )
    self.assertTrue(layout.is_staging_name('temp-1700000000-ab12'))
    self.assertFalse(layout.is_version_name('temp-1700000000'))

  def test_listing_ignores_staging_and_other_names(self):
    self.assertEqual(layout.list_versions(self.base), [])
    self.assertIsNone(layout.newest_version(self.base))
    _publish(self.base, 1700000005)
    _publish(self.base, 1700000000)
    os.makedirs(os.path.join(self.base, 'temp-1800000000'))
    os.makedirs(os.path.join(self.base, '999'))
    self.assertEqual(
        layout.list_versions(self.base),
        [
            layout.Version(1700000000, os.path.join(self.base, '1700000000')),
            layout.Version(1700000005, os.path.join(self.base, '1700000005')),
        ],
    )
    self.assertEqual(layout.newest_version(self.base).version, 1700000005)
    os.makedirs(os.path.join(self.model_dir, 'export', 'empty'))
    exports = layout.list_exports(self.model_dir)
    self.assertEqual(sorted(exports), ['best', 'empty'])
    self.assertEqual(
        [v.version for v in exports['best']], [1700000000, 1700000005]
    )
    self.assertEqual(exports['empty'], [])

  def test_module_names_are_the_folders_of_a_version(self):
    path = _publish(self.base, 1700000000, {'loss': 1.0}, ('b', 'a'))
    self.assertEqual(layout.module_names(path), ['a', 'b'])
    # The TF2 SavedModels beside the modules (tf2_saved_model=True) are not
    # a module: a consumer would otherwise have to pick between 'a' and 'tf2'.
    os.makedirs(os.path.join(path, layout.TF2_DIRNAME, 'a'))
    self.assertEqual(layout.module_names(path), ['a', 'b'])

  def test_metadata_round_trip_and_unreadable(self):
    path = _publish(self.base, 1700000000, {'loss': 0.5, 'auc': 'nan'})
    metadata = layout.read_metadata(path)
    self.assertEqual(metadata['metrics']['loss'], 0.5)
    self.assertEqual(layout.recorded_metric(metadata, 'loss'), 0.5)
    self.assertTrue(math.isnan(layout.recorded_metric(metadata, 'auc')))
    self.assertIsNone(layout.recorded_metric(metadata, 'accuracy'))
    self.assertIsNone(layout.read_metadata(self.base))  # No file there.
    with open(os.path.join(path, layout.METADATA_FILENAME), 'w') as f:
      f.write('{not json')
    self.assertIsNone(layout.read_metadata(path))
    with self.assertRaises(ValueError):  # JSON has no NaN: never written.
      layout.write_metadata(path, {'metrics': {'loss': math.nan}})

  def test_is_better_is_strict_and_nan_never_wins(self):
    self.assertTrue(layout.is_better(0.1, 0.2, 'min'))
    self.assertFalse(layout.is_better(0.2, 0.2, 'min'))
    self.assertTrue(layout.is_better(0.3, 0.2, 'max'))
    self.assertFalse(layout.is_better(0.25, 0.2, 'max', min_delta=0.1))
    self.assertFalse(layout.is_better(math.nan, 0.2, 'max'))
    self.assertTrue(layout.is_better(0.0, math.nan, 'max'))
    self.assertIsNone(layout.find_mode_error('max'))
    self.assertIn("got 'maximum'", layout.find_mode_error('maximum'))

  def test_best_version_reads_the_metadata(self):
    _publish(self.base, 1700000000, {'accuracy': 0.7})
    best_path = _publish(self.base, 1700000001, {'accuracy': 0.9})
    _publish(self.base, 1700000002, {'accuracy': 'nan'})
    unranked = _publish(self.base, 1700000003, {'loss': 0.1})
    _publish(self.base, 1700000004)  # No metadata at all.
    scored, without = layout.scored_versions(self.base, 'accuracy')
    self.assertEqual(
        [v.version for v, _ in scored], [1700000000, 1700000001, 1700000002]
    )
    self.assertEqual(
        [v.path for v in without],
        [unranked, os.path.join(self.base, '1700000004')],
    )
    version, value = layout.best_version(scored, 'max')
    self.assertEqual((version.path, value), (best_path, 0.9))
    version, value = layout.best_version(scored, 'min')
    self.assertEqual((version.version, value), (1700000000, 0.7))
    self.assertIsNone(layout.best_version([], 'max'))
    nan_only = [(layout.Version(1, 'x'), math.nan)]
    self.assertIsNone(layout.best_version(nan_only, 'max'))


if __name__ == '__main__':
  tf.test.main()
