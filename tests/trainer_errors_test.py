"""Bad configurations fail before training with one message; the entry point."""

import os
import subprocess
import sys

import gin
import tensorflow as tf

from hub_estimator import experiment
from hub_estimator import gin_utils

_ROOT = gin_utils.REPO_ROOT
_MLP = 'gin/experiments/digits_mlp.gin'


class BadConfigTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    gin.clear_config()
    self.model_dir = os.path.join(self.get_temp_dir(), self.id())

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def assert_fails_before_training(self, gin_file, bindings, *patterns):
    gin_utils.parse(
        [gin_file],
        [f"MODEL_DIR='{self.model_dir}'", 'TRAIN_STEPS=3'] + bindings,
    )
    with self.assertRaises(gin_utils.ConfigError) as cm:
      experiment.run()
    message = str(cm.exception)
    for pattern in patterns + (gin_file,):
      self.assertIn(pattern, message)
    self.assertIsNone(tf.train.latest_checkpoint(self.model_dir))
    return message

  def test_module_path_that_does_not_exist(self):
    self.assert_fails_before_training(
        _MLP,
        [
            'Experiment.module_source=@PathSource()',
            "PathSource.path='/no/such/module'",
        ],
        'PathSource.path',
        '/no/such/module',
        'does not exist',
    )

  def test_bad_fine_tuning_settings_name_the_gin_key(self):
    publisher = os.path.join(self.get_temp_dir(), 'tiny_publisher')
    if not os.path.exists(publisher):
      gin_utils.parse(
          [_MLP],
          [f"MODEL_DIR='{publisher}'", 'TRAIN_STEPS=1', 'mlp.units=[4]'],
      )
      experiment.run()
      gin.clear_config()
    small = 'gin/experiments/digits_finetune_small.gin'
    self.assert_fails_before_training(
        small,
        [
            f"PUBLISHER_DIR='{publisher}'",
            "FineTuning.hparams={'bn_momentm': 1}",
        ],
        "FineTuning.hparams: ['bn_momentm'] are not inputs with a default",
        'bn_momentum (default 0.9)',
        'dropout_rate (default 0.1)',
    )
    gin.clear_config()
    self.assert_fails_before_training(
        small,
        [f"PUBLISHER_DIR='{publisher}'", 'FineTuning.frozen_steps=-5'],
        'FineTuning.frozen_steps must be an integer >= 0; got -5',
    )

  def test_run_without_exports(self):
    self.assert_fails_before_training(
        'gin/experiments/digits_finetune.gin',
        ["PUBLISHER_DIR='/no/such/run'"],
        'RunExportSource.model_dir',
        'Run the publishing experiment first',
    )

  def test_features_that_do_not_fit_the_signature(self):
    self.assert_fails_before_training(
        _MLP,
        ['digits_input.as_images=True'],
        'Features do not fit',
        'Experiment.train_input_fn',
        "input 'x'",
        'float32(None, 64)',
    )

  def test_features_with_other_names(self):
    self.assert_fails_before_training(
        _MLP,
        [
            'Experiment.train_input_fn=@numpy_input()',
            "numpy_input.x={'a': [[0.0, 1.0]], 'b': [[2.0]]}",
            'numpy_input.y=[1]',
        ],
        'Features do not fit',
        "['a', 'b']",
        'feature_keys',
    )

  def test_feature_keys_map_inputs_to_features(self):
    gin_utils.parse(
        [_MLP],
        [
            f"MODEL_DIR='{self.model_dir}'",
            'TRAIN_STEPS=2',
            "digits_input.feature_key='pixels'",
            'mlp.units=[4]',
            "ModuleSettings.feature_keys={'x': 'pixels'}",
            'Experiment.exporter_fns=[]',
        ],
    )
    result = experiment.run()
    self.assertEqual(result.global_step, 2)

  def test_labels_the_head_cannot_take(self):
    self.assert_fails_before_training(
        _MLP,
        ["digits_input.task='attributes'"],
        'The model does not fit the data of Experiment.train_input_fn',
        'make_model_fn.head',
    )

  def test_bad_value_in_a_factory_names_the_key(self):
    self.assert_fails_before_training(
        _MLP, ["mlp.activation='nope'"], 'mlp.activation', "'nope'"
    )

  def test_duplicate_exporter_names(self):
    self.assert_fails_before_training(
        _MLP, ["latest/LatestModuleExporter.name='best'"], 'unique'
    )


class EntryPointTest(tf.test.TestCase):

  def _train(self, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    return subprocess.run(
        [sys.executable, '-m', 'trainers.train', *args],
        cwd=self.get_temp_dir(),  # Not the repo root: includes still resolve.
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

  def test_trains_from_another_directory(self):
    model_dir = os.path.join(self.get_temp_dir(), 'run')
    proc = self._train(
        '--gin_file=gin/experiments/digits_mlp.gin',
        f"--gin_bindings=MODEL_DIR='{model_dir}'",
        '--gin_param=TRAIN_STEPS=4',
        '--gin_param=mlp.units=[8]',
        '--gin_param=RunSettings.log_every_n_steps=2',
    )
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('step 4/4', proc.stderr)
    self.assertIn('steps/sec', proc.stderr)
    self.assertIn('Best accuracy', proc.stderr)
    self.assertIn(os.path.join(model_dir, 'export', 'best'), proc.stderr)
    self.assertTrue(os.path.exists(os.path.join(model_dir, 'config.gin')))

  def test_bad_config_exits_with_one_message(self):
    proc = self._train(
        '--gin_file=gin/experiments/digits_mlp.gin', '--gin_param=mlp.unitz=3'
    )
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('configuration error, nothing trained', proc.stderr)
    self.assertIn('unitz', proc.stderr)
    self.assertNotIn('Traceback', proc.stderr)

  def test_stray_arguments_are_rejected(self):
    proc = self._train('--gin_file=gin/experiments/digits_mlp.gin', 'stray')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('stray', proc.stderr)


if __name__ == '__main__':
  tf.test.main()
