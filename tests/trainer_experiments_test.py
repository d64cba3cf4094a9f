"""Runs every shipped experiment a few steps; checks the modules they leave.

The publisher -> consumer chain runs end to end: digits_mlp publishes, then
digits_finetune fine-tunes the best export of that run under a new head.
"""

import glob
import json
import os
import shutil
import tempfile
from unittest import mock

from absl.testing import parameterized
import gin
import numpy as np
import tensorflow as tf

import hub_estimator as hub
from hub_estimator import experiment
from hub_estimator import export as export_lib
from hub_estimator import gin_utils
from hub_estimator import preemption
from hub_estimator.consume import feature_columns
from hub_estimator.format import op_policy

_v1 = tf.compat.v1

# Shrinks any experiment: few steps, an evaluation (and export) every 3.
_SMALL = [
    'TRAIN_STEPS=6',
    'RunSettings.save_checkpoints_steps=3',
    'RunSettings.log_every_n_steps=3',
]


def run_experiment(gin_file, model_dir, bindings=()):
  """Parses `gin_file` with small-run bindings and runs it."""
  gin.clear_config()
  try:
    gin_utils.parse(
        [gin_file], [f"MODEL_DIR='{model_dir}'"] + _SMALL + list(bindings)
    )
    return experiment.run()
  finally:
    gin.clear_config()


def assert_no_refused_ops(test, result):
  """Every module every exporter of `result` published passes the op policy."""
  module_dirs = [
      os.path.join(version, name)
      for versions in result.exports.values()
      for version in versions
      for name in os.listdir(version)
      if os.path.isdir(os.path.join(version, name))
  ]
  test.assertNotEmpty(module_dirs)
  for module_dir in module_dirs:
    test.assertEqual(op_policy.vet_module(module_dir).findings, [], module_dir)


def apply_module(path, inputs):
  """Loads the module at `path`, applies it to `inputs`, returns numpy."""
  with tf.Graph().as_default():
    module = hub.Module(hub.load_module_spec(path))
    out = module(inputs)
    with _v1.Session() as session:
      session.run(
          [_v1.global_variables_initializer(), _v1.tables_initializer()]
      )
      return session.run(out)


def assert_converts_to_tf2(test, module_dir, inputs, expected):
  """The module converts to a TF2 SavedModel whose outputs match TF1's."""
  export_path = os.path.join(
      tempfile.mkdtemp(dir=test.get_temp_dir()), os.path.basename(module_dir)
  )
  hub.export_tf2_saved_model(module_dir, export_path)
  obj = tf.saved_model.load(export_path)
  test.assertAllClose(obj(inputs), expected, atol=1e-5)


class PublisherConsumerTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.publisher_dir = os.path.join(
        tf.compat.v1.test.get_temp_dir(), 'publisher'
    )
    cls.publisher = run_experiment(
        'gin/experiments/digits_mlp.gin',
        cls.publisher_dir,
        ['mlp.units=[16]'],
    )

  def test_publisher_leaves_best_and_latest_modules(self):
    result = self.publisher
    self.assertEqual(result.global_step, 6)
    self.assertCountEqual(result.exports, ['best', 'latest'])
    self.assertLen(result.evaluations, 2)
    self.assertEqual(result.best_metric, 'accuracy')
    self.assertIsNotNone(result.best_value)
    for name in ('best', 'latest'):
      module_dir = os.path.join(result.exports[name][-1], 'digits_mlp')
      spec = hub.load_module_spec(module_dir)
      self.assertCountEqual(
          spec.get_tags(), [frozenset(), frozenset({'train'})]
      )
      out = apply_module(module_dir, np.zeros([2, 64], np.float32))
      self.assertEqual(out.shape, (2, 16))
    assert_no_refused_ops(self, result)
    # The module TF2 consumers get (README "TF2 consumers").
    x = np.random.RandomState(0).rand(2, 64).astype(np.float32)
    module_dir = os.path.join(result.exports['best'][-1], 'digits_mlp')
    assert_converts_to_tf2(self, module_dir, x, apply_module(module_dir, x))
    summary = result.summary()
    self.assertIn('Best accuracy', summary)
    self.assertIn(result.exports['best'][-1], summary)

  def test_publisher_saves_configs_and_summaries(self):
    self.assertTrue(
        os.path.exists(os.path.join(self.publisher_dir, 'config.gin'))
    )
    self.assertNotEmpty(
        glob.glob(os.path.join(self.publisher_dir, 'operative_config-*.gin'))
    )
    self.assertNotEmpty(
        glob.glob(os.path.join(self.publisher_dir, 'eval', 'events.*'))
    )
    # export/ holds the exporters' folders and nothing else.
    self.assertCountEqual(
        os.listdir(os.path.join(self.publisher_dir, 'export')),
        ['best', 'latest'],
    )

  def test_module_loads_with_tensorflow_hub(self):
    import tensorflow_hub  # pylint: disable=g-import-not-at-top

    module_dir = os.path.join(self.publisher.exports['best'][-1], 'digits_mlp')
    with tf.Graph().as_default():
      module = tensorflow_hub.Module(module_dir, tags={'train'}, trainable=True)
      out = module(np.zeros([3, 64], np.float32))
      self.assertNotEmpty(_v1.get_collection(_v1.GraphKeys.UPDATE_OPS))
      self.assertNotEmpty(
          _v1.get_collection(_v1.GraphKeys.REGULARIZATION_LOSSES)
      )
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        self.assertEqual(session.run(out).shape, (3, 16))

  def test_consumer_fine_tunes_best_export_with_new_head(self):
    consumer_dir = os.path.join(self.get_temp_dir(), 'consumer')
    result = run_experiment(
        'gin/experiments/digits_finetune.gin',
        consumer_dir,
        [f"PUBLISHER_DIR='{self.publisher_dir}'"],
    )
    self.assertEqual(result.global_step, 6)
    self.assertIn('auc', result.final_metrics)  # The new multi-label head.
    assert_no_refused_ops(self, result)
    published = os.path.join(self.publisher.exports['best'][-1], 'digits_mlp')
    tuned = os.path.join(result.exports['best'][-1], 'digits_mlp_finetuned')
    x = np.random.RandomState(0).rand(4, 64).astype(np.float32)
    # Same body, trained further: close to, but not equal to, the original.
    before, after = apply_module(published, x), apply_module(tuned, x)
    self.assertEqual(before.shape, after.shape)
    self.assertNotAllClose(before, after)
    assert_converts_to_tf2(self, tuned, x, after)
    checkpoint = tf.train.latest_checkpoint(consumer_dir)
    names = [name for name, _ in tf.train.list_variables(checkpoint)]
    self.assertIn('module/dense_0/kernel', names)
    self.assertIn('head/logits/kernel', names)

  def test_fine_tuning_settings_reach_training_and_provenance(self):
    consumer_dir = os.path.join(self.get_temp_dir(), 'settings_consumer')
    result = run_experiment(
        'gin/experiments/digits_finetune_small.gin',
        consumer_dir,
        [f"PUBLISHER_DIR='{self.publisher_dir}'"],
    )
    self.assertEqual(result.global_step, 6)
    version = result.exports['best'][-1]
    # 6 steps < FineTuning.frozen_steps: the body is exactly the published.
    published = os.path.join(self.publisher.exports['best'][-1], 'digits_mlp')
    tuned = os.path.join(version, 'digits_mlp_finetuned')
    for name, _ in tf.train.list_variables(
        os.path.join(published, 'variables', 'variables')
    ):
      self.assertAllEqual(
          tf.train.load_variable(
              os.path.join(tuned, 'variables', 'variables'), name
          ),
          tf.train.load_variable(
              os.path.join(published, 'variables', 'variables'), name
          ),
          msg=name,
      )
    with open(os.path.join(version, 'export_metadata.json')) as f:
      (source,) = json.load(f)['module_sources']
    publisher_metadata = export_lib.read_metadata(os.path.dirname(published))
    self.assertEqual(source['source'], 'RunExportSource')
    self.assertEqual(source['run'], self.publisher_dir)
    self.assertEqual(source['exporter'], 'best')
    self.assertEqual(
        source['version'], os.path.basename(os.path.dirname(published))
    )
    self.assertEqual(source['path'], published)
    self.assertEqual(source['metric'], 'accuracy')
    self.assertEqual(source['metrics'], publisher_metadata['metrics'])
    self.assertEqual(
        source['fine_tuning'],
        {
            'signature': 'with_hparams',
            'hparams': {'bn_momentum': 0.99, 'dropout_rate': 0.2},
            'learning_rate_multiplier': 0.1,
            'frozen_steps': 200,
            'regularization_weight': 1.0,
        },
    )
    with open(os.path.join(version, 'operative_config.gin')) as f:
      config = f.read()
    self.assertIn(f'"version": "{source["version"]}"', config)
    self.assertIn('FineTuning.learning_rate_multiplier = 0.1', config)
    self.assertIn('FineTuning.frozen_steps = 200', config)

  def test_consumer_survives_the_publisher_deleting_its_version(self):
    publisher_dir = os.path.join(self.get_temp_dir(), 'doomed_publisher')
    shutil.copytree(self.publisher_dir, publisher_dir)
    best = os.path.join(publisher_dir, 'export', 'best')
    consumer_dir = os.path.join(self.get_temp_dir(), 'snapshot_consumer')
    report = preemption.EvalCompleted.export

    def delete_publisher_exports(reporter, *args, **kwargs):
      # The publisher's retention removes the consumed version mid-run,
      # after the consumer's first evaluation and before its second.
      shutil.rmtree(best, ignore_errors=True)
      return report(reporter, *args, **kwargs)

    with mock.patch.object(
        preemption.EvalCompleted, 'export', delete_publisher_exports
    ):
      result = run_experiment(
          'gin/experiments/digits_finetune.gin',
          consumer_dir,
          [f"PUBLISHER_DIR='{publisher_dir}'"],
      )
    self.assertFalse(os.path.exists(best))
    self.assertEqual(result.global_step, 6)
    self.assertLen(result.evaluations, 2)
    self.assertNotEmpty(result.exports['best'])
    with open(
        os.path.join(consumer_dir, 'source_module', 'source_provenance.json')
    ) as f:
      record = json.load(f)
    version = os.path.basename(self.publisher.exports['best'][-1])
    self.assertEqual(record['version'], version)
    self.assertEqual(record['exporter_name'], 'best')
    self.assertEqual(record['publisher_model_dir'], publisher_dir)
    self.assertEqual(record['metric']['name'], 'accuracy')
    self.assertIsInstance(record['metric']['value'], float)

  def test_one_gin_line_swaps_in_a_module_path(self):
    consumer_dir = os.path.join(self.get_temp_dir(), 'path_consumer')
    published = os.path.join(self.publisher.exports['latest'][-1], 'digits_mlp')
    result = run_experiment(
        'gin/experiments/digits_finetune.gin',
        consumer_dir,
        [
            'Experiment.module_source=@PathSource()',
            f"PathSource.path='{published}'",
            'PathSource.trainable=False',
            'Experiment.exporter_fns=[]',
        ],
    )
    self.assertEqual(result.global_step, 6)
    self.assertEqual(result.exports, {})
    # Frozen: the module's weights in the checkpoint are the published ones.
    checkpoint = tf.train.latest_checkpoint(consumer_dir)
    original = tf.train.load_variable(
        os.path.join(published, 'variables', 'variables'), 'dense_0/kernel'
    )
    self.assertAllClose(
        tf.train.load_variable(checkpoint, 'module/dense_0/kernel'), original
    )


class OtherExperimentsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      (
          'gin/experiments/digits_cnn.gin',
          ['small_cnn.filters=[4]', 'small_cnn.dense_units=8'],
          'digits_cnn',
          np.zeros([2, 8, 8, 1], np.float32),
      ),
      (
          'gin/experiments/text_classifier.gin',
          ['text_embedding.embedding_dim=8', 'make_model_fn.hidden_units=[]'],
          'text_embedding',
          np.array(['goal team', 'rain'], dtype=object),
      ),
  )
  def test_runs_and_leaves_loadable_module(
      self, gin_file, bindings, module_name, inputs
  ):
    model_dir = os.path.join(self.get_temp_dir(), module_name)
    result = run_experiment(gin_file, model_dir, bindings)
    self.assertEqual(result.global_step, 6)
    self.assertCountEqual(result.exports, ['best', 'latest'])
    assert_no_refused_ops(self, result)
    module_dir = os.path.join(result.exports['latest'][-1], module_name)
    out = apply_module(module_dir, inputs)
    self.assertEqual(out.shape, (2, 8))
    assert_converts_to_tf2(self, module_dir, inputs, out)
    if module_name == 'text_embedding':
      # The published text module fits text_embedding_column.
      column = feature_columns.text_embedding_column('text', module_dir)
      with tf.Graph().as_default():
        dense = _v1.feature_column.input_layer(
            {'text': tf.constant(inputs.astype(str))}, [column]
        )
        with _v1.Session() as session:
          session.run(
              [_v1.global_variables_initializer(), _v1.tables_initializer()]
          )
          self.assertAllClose(session.run(dense), out, atol=1e-6)


class GinInputsTest(tf.test.TestCase):

  def test_tfrecord_and_csv_inputs_from_gin(self):
    from hub_estimator.models import inputs  # pylint: disable=g-import-not-at-top

    x, y = inputs.load_digits('eval')
    records = os.path.join(self.get_temp_dir(), 'digits.tfrecord')
    with tf.io.TFRecordWriter(records) as writer:
      for pixels, label in zip(x, y):
        writer.write(
            tf.train.Example(
                features=tf.train.Features(
                    feature={
                        'pixels': tf.train.Feature(
                            float_list=tf.train.FloatList(value=pixels)
                        ),
                        'label': tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[label])
                        ),
                    }
                )
            ).SerializeToString()
        )
    table = os.path.join(self.get_temp_dir(), 'digits.csv')
    columns = [f'p{i}' for i in range(64)] + ['label']
    with open(table, 'w') as f:
      f.write(','.join(columns) + '\n')
      for pixels, label in zip(x, y):
        f.write(','.join(map(str, pixels)) + f',{label}\n')
    result = run_experiment(
        'gin/experiments/digits_mlp.gin',
        os.path.join(self.get_temp_dir(), 'files'),
        [
            'mlp.units=[8]',
            'Experiment.exporter_fns=[]',
            'Experiment.train_input_fn=@tfrecord_input()',
            f"tfrecord_input.file_pattern='{records}'",
            (
                "tfrecord_input.feature_spec={'pixels': ('float32', [64]),"
                " 'label': ('int64', [])}"
            ),
            "tfrecord_input.label_key='label'",
            'Experiment.eval_input_fn=@csv_input()',
            f"csv_input.file_pattern='{table}'",
            f'csv_input.column_names={columns}',
            f"csv_input.column_types={['float32'] * 64 + ['int64']}",
            "csv_input.label_key='label'",
            f"csv_input.packed_features={{'x': {columns[:-1]}}}",
            'csv_input.num_epochs=1',
            'csv_input.shuffle=False',
        ],
    )
    self.assertEqual(result.global_step, 6)
    self.assertIn('accuracy', result.final_metrics)


class RestartTest(tf.test.TestCase):

  def test_summary_covers_evaluations_of_earlier_processes(self):
    model_dir = os.path.join(self.get_temp_dir(), 'restart')
    # Without a best exporter the summary's metric is bound explicitly.
    small = [
        'mlp.units=[4]',
        'Experiment.exporter_fns=[]',
        "Experiment.best_metric='accuracy'",
        "Experiment.best_metric_mode='max'",
    ]
    first = run_experiment('gin/experiments/digits_mlp.gin', model_dir, small)
    again = run_experiment(
        'gin/experiments/digits_mlp.gin', model_dir, small + ['TRAIN_STEPS=9']
    )
    self.assertEqual(again.global_step, 9)
    self.assertEqual(
        [m['global_step'] for m in again.evaluations], [3.0, 6.0, 9.0]
    )
    self.assertEqual(again.best_metric, 'accuracy')
    self.assertGreaterEqual(again.best_value, first.best_value)


class RolesTest(tf.test.TestCase):

  def test_chief_worker_and_evaluator(self):
    gin.clear_config()
    gin_utils.parse(
        ['gin/experiments/digits_mlp.gin'], ["MODEL_DIR='/tmp/unused'"]
    )
    try:
      exp = experiment.Experiment()
    finally:
      gin.clear_config()
    chief = tf.estimator.RunConfig()
    tf_config = {
        'cluster': {'chief': ['h:2220'], 'worker': ['h:2221']},
        'task': {'type': 'worker', 'index': 0},
    }
    with mock.patch.dict(os.environ, {'TF_CONFIG': json.dumps(tf_config)}):
      worker = tf.estimator.RunConfig()
    self.assertFalse(worker.is_chief)
    names = lambda hooks: [type(h).__name__ for h in hooks]
    self.assertEqual(
        names(exp.train_hooks(chief)), ['ProgressHook', 'GinConfigSaverHook']
    )
    self.assertEqual(names(exp.train_hooks(worker)), ['ProgressHook'])
    tf_config['task'] = {'type': 'evaluator', 'index': 0}
    with mock.patch.dict(os.environ, {'TF_CONFIG': json.dumps(tf_config)}):
      evaluator = tf.estimator.RunConfig()
    self.assertEqual(exp.eval_throttle_secs(chief), 0)
    self.assertEqual(exp.eval_throttle_secs(evaluator), 2)


if __name__ == '__main__':
  tf.test.main()
