"""Tests for hub_estimator.consume.sources: resolution, tags, features."""

import json
import os
import shutil

import gin
import numpy as np
import tensorflow as tf

import hub_estimator as hub
from hub_estimator import gin_utils
from hub_estimator.consume import sources
from hub_estimator.models import module_fns

_v1 = tf.compat.v1


def _export_module(path, units=3):
  spec = hub.create_module_spec(
      module_fns.mlp(input_dim=4, units=[units]),
      tags_and_args=list(module_fns.TAGS_AND_ARGS),
  )
  with tf.Graph().as_default():
    module = hub.Module(spec)
    with _v1.Session() as session:
      session.run(_v1.global_variables_initializer())
      module.export(path, session)


class RunExportSourceTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.run_dir = os.path.join(_v1.test.get_temp_dir(), 'run')
    base = os.path.join(cls.run_dir, 'export', 'best')
    _export_module(os.path.join(base, '1700000000', 'body'), units=2)
    _export_module(os.path.join(base, '1700000005', 'body'), units=3)
    _export_module(os.path.join(base, '1700000005', 'other'), units=5)
    os.makedirs(os.path.join(base, 'temp-1700000009'))

  def test_newest_version_and_named_module(self):
    source = sources.RunExportSource(model_dir=self.run_dir, module_name='body')
    self.assertEqual(
        source.path(),
        os.path.join(self.run_dir, 'export', 'best', '1700000005', 'body'),
    )
    source.check()
    self.assertEqual(source.tags(tf.estimator.ModeKeys.TRAIN), {'train'})
    self.assertEqual(source.tags(tf.estimator.ModeKeys.EVAL), set())

  def test_several_modules_need_a_name(self):
    with self.assertRaisesRegex(
        gin_utils.ConfigError, 'RunExportSource.module_name'
    ):
      sources.RunExportSource(model_dir=self.run_dir).check()

  def test_unknown_module_name(self):
    with self.assertRaisesRegex(gin_utils.ConfigError, "\\['body', 'other'\\]"):
      sources.RunExportSource(model_dir=self.run_dir, module_name='x').check()

  def test_missing_variant(self):
    with self.assertRaisesRegex(gin_utils.ConfigError, 'train_tags'):
      sources.RunExportSource(
          model_dir=self.run_dir,
          module_name='body',
          settings=sources.ModuleSettings(train_tags=['tpu']),
      ).check()

  def test_frozen_source_uses_default_variant(self):
    source = sources.RunExportSource(
        model_dir=self.run_dir, module_name='body', trainable=False
    )
    self.assertEqual(source.tags(tf.estimator.ModeKeys.TRAIN), set())


class SnapshotTest(tf.test.TestCase):

  def test_consumer_keeps_its_snapshot_when_the_version_is_deleted(self):
    publisher = os.path.join(self.get_temp_dir(), 'publisher')
    version_dir = os.path.join(publisher, 'export', 'best', '1700000000')
    _export_module(os.path.join(version_dir, 'body'))
    with open(os.path.join(version_dir, 'export_metadata.json'), 'w') as f:
      json.dump(
          {
              'global_step': 30,
              'checkpoint_path': '/p/model.ckpt-30',
              'metrics': {'loss': 0.25},
              'exporter': {'policy': {'metric': 'loss', 'mode': 'min'}},
          },
          f,
      )
    consumer = os.path.join(self.get_temp_dir(), 'consumer')
    source = sources.RunExportSource(model_dir=publisher)
    source.use_model_dir(consumer)
    path = source.path()
    self.assertEqual(path, os.path.join(consumer, 'source_module', 'body'))
    published = os.path.join(version_dir, 'body', 'saved_model.pb')
    snapshot = os.path.join(path, 'saved_model.pb')
    self.assertTrue(os.path.samefile(published, snapshot))  # A hard link.
    with open(
        os.path.join(consumer, 'source_module', 'source_provenance.json')
    ) as f:
      record = json.load(f)
    self.assertEqual(record['version'], '1700000000')
    self.assertEqual(record['global_step'], 30)
    self.assertEqual(
        record['metric'], {'name': 'loss', 'value': 0.25, 'mode': 'min'}
    )
    self.assertEqual(record['snapshot_method'], 'hard link')

    # The publisher's retention deletes the version; a newer one appears.
    shutil.rmtree(version_dir)
    _export_module(
        os.path.join(publisher, 'export', 'best', '1700000009', 'body'), 5
    )
    restarted = sources.RunExportSource(model_dir=publisher)
    restarted.use_model_dir(consumer)
    restarted.check()  # Loads from the snapshot: the same module as before.
    self.assertEqual(restarted.path(), path)
    info = restarted.module_spec().get_output_info_dict()
    self.assertEqual(info['default'].get_shape().as_list(), [None, 3])

  def test_changed_exporter_binding_keeps_the_snapshot_and_says_so(self):
    publisher = os.path.join(self.get_temp_dir(), 'publisher2')
    for exporter, units in (('best', 3), ('latest', 5)):
      _export_module(
          os.path.join(publisher, 'export', exporter, '1700000000', 'body'),
          units,
      )
    consumer = os.path.join(self.get_temp_dir(), 'consumer2')
    first = sources.RunExportSource(model_dir=publisher)
    first.use_model_dir(consumer)
    snapshot_dir = os.path.join(consumer, 'source_module')
    with self.assertLogs('absl', level='INFO') as logs:
      first.path()
    self.assertIn(
        "Snapshot of the newest 'best' export of run %s" % publisher,
        '\n'.join(logs.output),
    )
    # Restarted with the same bindings: one consistent line.
    again = sources.RunExportSource(model_dir=publisher)
    again.use_model_dir(consumer)
    with self.assertLogs('absl', level='INFO') as logs:
      again.path()
    self.assertEqual(
        [line.split(':', 2)[2] for line in logs.output],
        [
            'Using the snapshot %s of version 1700000000 of the %r exports of'
            ' run %s (global step None).' % (snapshot_dir, 'best', publisher)
        ],
    )
    # Restarted with exporter_name='latest': the run keeps its snapshot of
    # 'best' (its checkpoints come from it), and the log names both.
    changed = sources.RunExportSource(
        model_dir=publisher, exporter_name='latest'
    )
    changed.use_model_dir(consumer)
    with self.assertLogs('absl', level='WARNING') as logs:
      path = changed.path()
    (line,) = logs.output
    self.assertIn(
        "The module source now names the newest 'latest' export of run %s,"
        ' but this run took its snapshot %s from version 1700000000 of the'
        " 'best' exports of run %s (global step None) (changed:"
        ' exporter_name). The run keeps using that snapshot'
        % (publisher, snapshot_dir, publisher),
        line,
    )
    self.assertIn('use a new model_dir', line)
    info = hub.load_module_spec(path).get_output_info_dict()
    self.assertEqual(info['default'].get_shape().as_list(), [None, 3])
    origin = changed._origin()  # pylint: disable=protected-access
    self.assertEqual(origin['exporter'], 'best')
    self.assertEqual(origin['run'], publisher)


class UpstreamProvenanceTest(tf.test.TestCase):

  def test_a_consumer_of_a_consumer_records_the_chain(self):
    """The version's own module_sources entry travels as `upstream`."""
    first = {
        'source': 'RunExportSource',
        'run': '/runs/first_publisher',
        'version': '1690000000',
        'upstream': None,
    }
    tuned = {
        'source': 'RunExportSource',
        'export_name': 'body',
        'run': '/runs/first_consumer_of_it',
        'fine_tuning': {'learning_rate_multiplier': 0.1},
        'upstream': first,
    }
    other = dict(tuned, export_name='other', run='/runs/elsewhere')
    publisher = os.path.join(self.get_temp_dir(), 'consumer_run')
    version_dir = os.path.join(publisher, 'export', 'best', '1700000000')
    _export_module(os.path.join(version_dir, 'body'))
    with open(os.path.join(version_dir, 'export_metadata.json'), 'w') as f:
      json.dump({'global_step': 3, 'module_sources': [other, tuned]}, f)

    source = sources.RunExportSource(model_dir=publisher)
    source.use_model_dir(os.path.join(self.get_temp_dir(), 'second_consumer'))
    record = source.provenance()
    self.assertEqual(record['run'], publisher)
    self.assertEqual(record['upstream'], tuned)
    self.assertEqual(record['upstream']['upstream'], first)
    # The same from a module path, and none for a version without a record.
    path = os.path.join(version_dir, 'body')
    self.assertEqual(
        sources.PathSource(path=path).provenance()['upstream'], tuned
    )
    plain = os.path.join(self.get_temp_dir(), 'plain', '1700000000')
    _export_module(os.path.join(plain, 'body'))
    with open(os.path.join(plain, 'export_metadata.json'), 'w') as f:
      json.dump({'global_step': 3}, f)
    self.assertIsNone(
        sources.PathSource(path=os.path.join(plain, 'body')).provenance()[
            'upstream'
        ]
    )


class ModuleSettingsTest(tf.test.TestCase):

  def test_defaults_and_normalized_values(self):
    settings = sources.ModuleSettings(
        feature_keys={'x': 'pixels'}, train_tags=['train']
    )
    self.assertEqual(settings.signature, 'default')
    self.assertEqual(settings.output_key, 'default')
    self.assertEqual(settings.name, 'module')
    self.assertEqual(settings.feature_keys, {'x': 'pixels'})
    self.assertEqual(settings.train_tags, frozenset({'train'}))

  def test_bad_values_name_the_gin_key(self):
    for kwargs, message in [
        ({'signature': ''}, 'ModuleSettings.signature must be a non-empty'),
        ({'output_key': 3}, 'ModuleSettings.output_key must be a non-empty'),
        ({'name': 'a/b'}, 'ModuleSettings.name is a variable scope name'),
        ({'feature_keys': ['x']}, 'ModuleSettings.feature_keys must map'),
        ({'feature_keys': {'x': 1}}, 'ModuleSettings.feature_keys must map'),
        ({'train_tags': 'train'}, 'ModuleSettings.train_tags must be a list'),
    ]:
      with self.assertRaisesRegex(gin_utils.ConfigError, message, msg=kwargs):
        sources.ModuleSettings(**kwargs)

  def test_sources_share_the_gin_bound_settings(self):
    gin.clear_config()
    try:
      gin.parse_config("ModuleSettings.train_tags = ['train']")
      source = sources.PathSource(path='unused')
    finally:
      gin.clear_config()
    self.assertEqual(source.settings.train_tags, frozenset({'train'}))
    self.assertEqual(source.tags(tf.estimator.ModeKeys.TRAIN), {'train'})


class PathSourceTest(tf.test.TestCase):

  def test_not_a_module(self):
    with self.assertRaisesRegex(gin_utils.ConfigError, 'no tfhub_module.pb'):
      sources.PathSource(path=self.get_temp_dir()).check()

  def test_feature_mapping_and_serving_input(self):
    path = os.path.join(self.get_temp_dir(), 'm')
    _export_module(path)
    source = sources.PathSource(
        path=path, settings=sources.ModuleSettings(feature_keys={'x': 'pixels'})
    )
    source.check()
    source.check_features({'pixels': tf.TensorSpec([None, 4], tf.float32)})
    with self.assertRaisesRegex(gin_utils.ConfigError, 'float64'):
      source.check_features({'pixels': tf.TensorSpec([None, 4], tf.float64)})
    with self.assertRaisesRegex(
        gin_utils.ConfigError, "unmatched inputs \\['x'\\]"
    ):
      source.check_features({'x': tf.TensorSpec([None, 4], tf.float32)})
    with tf.Graph().as_default():
      receiver = source.serving_input_fn()()
      self.assertEqual(list(receiver.features), ['pixels'])
      module = source.instantiate(tf.estimator.ModeKeys.PREDICT)
      out = source.apply(module, {'pixels': np.ones([2, 4], np.float32)})
      self.assertEqual(out.shape.as_list(), [2, 3])


if __name__ == '__main__':
  tf.test.main()
