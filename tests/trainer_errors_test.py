"""Bad configurations fail before training with one message; the entry point."""

import os
import subprocess
import sys
from unittest import mock

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

  def test_missing_npz_file_names_the_key(self):
    self.assert_fails_before_training(
        _MLP,
        [
            'Experiment.train_input_fn=@train/numpy_input()',
            "numpy_input.x='/no/such/data.npz'",
        ],
        "numpy_input.x='/no/such/data.npz' cannot be read as a .npz file",
    )

  def test_missing_required_binding_names_the_parameters(self):
    self.assert_fails_before_training(
        _MLP,
        ['Experiment.train_input_fn=@train/csv_input()'],
        'Bad configuration: csv_input() missing 3 required positional'
        " arguments: 'file_pattern', 'column_names', and 'column_types'",
        '(calling train/csv_input)',
    )

  def test_keep_checkpoint_max_names_the_key(self):
    message = self.assert_fails_before_training(
        _MLP,
        ['RunSettings.keep_checkpoint_max=-1'],
        'RunSettings.keep_checkpoint_max must be >= 0 or None; got -1.',
    )
    # Without gin's "In call to configurable 'RunSettings' (<class ...>)".
    self.assertNotIn('In call to configurable', message)

  def test_head_missing_a_required_binding_is_a_config_error(self):
    self.assert_fails_before_training(
        _MLP,
        ['make_model_fn.head=@MultiLabelHead()'],
        'Experiment.model_fn_factory failed to build the model_fn: Required'
        " bindings for `MultiLabelHead` not provided in config: ['num_labels']",
    )

  def test_bad_value_message_has_no_gin_call_note(self):
    message = self.assert_fails_before_training(
        _MLP,
        ["BEST_MODE='maximum'"],
        "BestModuleExporter.mode must be 'min' or 'max'. Details: got"
        " 'maximum'",
    )
    self.assertNotIn('In call to configurable', message)

  def test_a_binding_that_does_not_parse_is_named(self):
    # gin parses the bindings as one text: an open bracket used to be blamed
    # on the next binding ("line 2"), or to escape as a tokenize traceback.
    for bindings, bad in (
        (['mlp.units=[128,', 'TRAIN_STEPS=3'], 'mlp.units=[128,'),
        (['mlp.units=[128, 64'], 'mlp.units=[128, 64'),
        (['TRAIN_STEPS=3', 'mlp.units=[128,)'], 'mlp.units=[128,)'),
    ):
      with self.assertRaises(gin_utils.ConfigError) as cm:
        gin_utils.parse([_MLP], bindings, finalize=False)
      message = str(cm.exception)
      self.assertIn(
          f'Bad gin configuration: the binding --gin_param={bad!r} does not'
          ' parse (',
          message,
      )
      self.assertIn('check its brackets and quotes', message)

  def test_a_gin_file_with_an_open_bracket_is_named(self):
    path = os.path.join(self.get_temp_dir(), 'open_bracket.gin')
    with open(path, 'w') as f:
      f.write('mlp.units = [128,\n')
    with self.assertRaises(gin_utils.ConfigError) as cm:
      gin_utils.parse([_MLP, path], [], finalize=False)
    self.assertIn(
        f'Bad gin configuration: gin file {path} does not parse (',
        str(cm.exception),
    )

  def test_malformed_tf_config_names_the_field(self):
    cases = {
        '{"cluster": ': 'TF_CONFIG is not valid JSON',
        '{"cluster": {"chief": ["h:1"]}, "task": {"type": "wrker"}}': (
            'TF_CONFIG field "task.type" must be one of'
        ),
        '{"cluster": {"chief": ["h:1"]}, "task": {"type": "chief", "index": 3}}': (
            'TF_CONFIG field "task.index" is 3, out of range'
        ),
        '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 0}}': (
            'TF_CONFIG field "cluster" has no "chief"'
        ),
    }
    for text, expected in cases.items():
      gin.clear_config()
      with mock.patch.dict(os.environ, {'TF_CONFIG': text}):
        message = self.assert_fails_before_training(_MLP, [], expected)
      self.assertNotIn('does not fit', message)

  def test_graph_errors_blame_the_configurable(self):
    message = self.assert_fails_before_training(
        _MLP,
        ['cosine_decay.initial=-1.0'],
        "Building the model's TRAIN graph (for Experiment.train_input_fn)"
        ' failed in configurable cosine_decay: ValueError:'
        ' cosine_decay.initial must be a positive number; got -1.0.',
    )
    self.assertNotIn('does not fit', message)

  def test_exporter_metric_the_evaluation_does_not_produce(self):
    self.assert_fails_before_training(
        _MLP,
        ["best/BestModuleExporter.metric='acuracy'"],
        "BestModuleExporter.metric of exporter 'best' is 'acuracy', which"
        ' the evaluation does not produce',
        "['accuracy', 'auc', 'global_step', 'loss']",
        'Did you mean accuracy?',
    )

  def test_labels_outside_num_classes(self):
    self.assert_fails_before_training(
        _MLP,
        ['ClassificationHead.num_classes=5'],
        'Experiment.train_input_fn, first batch: labels must be class ids in'
        ' [0, 5) for ClassificationHead.num_classes=5; 21 of 64 are outside'
        ' (min 0, max 9).',
    )

  def _csv(self, text):
    path = os.path.join(self.get_temp_dir(), f'{self.id()}.csv')
    with open(path, 'w') as f:
      f.write(text)
    columns = [f'p{i}' for i in range(64)] + ['label']
    return path, [
        'Experiment.train_input_fn=@train/csv_input()',
        f"csv_input.file_pattern='{path}'",
        f'csv_input.column_names={columns}',
        f"csv_input.column_types={['float32'] * 64 + ['int64']}",
        "csv_input.label_key='label'",
        f"csv_input.packed_features={{'x': {columns[:64]}}}",
    ]

  def test_header_only_csv_fails_before_training(self):
    path, bindings = self._csv(','.join(f'p{i}' for i in range(64)) + ',y\n')
    self.assert_fails_before_training(
        _MLP,
        bindings,
        f'Experiment.train_input_fn: csv_input.file_pattern: {path}: the CSV'
        ' file has no row after its header.',
    )

  def test_bad_row_in_the_first_batch_names_file_and_row(self):
    row = ','.join(['0.5'] * 64) + ',1\n'
    path, bindings = self._csv(
        'header\n' + row + ','.join(['0.5'] * 63) + ',oops,1\n'
    )
    self.assert_fails_before_training(
        _MLP,
        bindings,
        'Experiment.train_input_fn: reading the first batch failed:'
        f' {path}, row 2 (line 3): Field 63 in record is not a valid float:'
        " oops (field 63 is column 'p63')",
    )

  def test_empty_number_field_is_an_error_not_zero(self):
    # CsvDataset would fill an empty field with the default (0): an empty
    # label would silently train as class 0.
    row = ','.join(['0.5'] * 64) + ',1\n'
    path, bindings = self._csv(
        'header\n' + row + ','.join(['0.5'] * 64) + ',\n'
    )
    self.assert_fails_before_training(
        _MLP,
        bindings,
        f'{path}, row 2 (line 3): Field 64 is required but missing in record!'
        " (field 64 is column 'label')",
    )

  def test_bad_row_mid_run_names_file_and_row(self):
    row = ','.join(['0.5'] * 64) + ',1\n'
    bad = ','.join(['0.5'] * 63) + ',oops,1\n'
    path, bindings = self._csv('header\n' + row * 40 + bad + row * 10)
    gin_utils.parse(
        [_MLP],
        [f"MODEL_DIR='{self.model_dir}'", 'TRAIN_STEPS=30', 'mlp.units=[4]']
        + bindings
        + ['csv_input.shuffle=False', 'csv_input.batch_size=8'],
    )
    with self.assertRaises(experiment.DataError) as cm:
      experiment.run()
    self.assertIn(
        'Bad data in Experiment.train_input_fn (training stopped):'
        f' {path}, row 41 (line 42): Field 63 in record is not a valid float:'
        " oops (field 63 is column 'p63')",
        str(cm.exception),
    )

  def run_mid_run_failure(self, bindings):
    gin_utils.parse(
        [_MLP],
        [f"MODEL_DIR='{self.model_dir}'", 'TRAIN_STEPS=30', 'mlp.units=[4]']
        + bindings
        + ['csv_input.shuffle=False', 'csv_input.batch_size=8'],
    )
    with self.assertRaises(experiment.DataError) as cm:
      experiment.run()
    return str(cm.exception)

  def test_label_outside_num_classes_mid_run_names_file_and_row(self):
    # The first batch is fine; row 41 has label 12 (num_classes=10): the
    # head checks every batch, and the record is found by re-reading.
    row = ','.join(['0.5'] * 64) + ',1\n'
    bad = ','.join(['0.5'] * 64) + ',12\n'
    path, bindings = self._csv('header\n' + row * 40 + bad + row * 10)
    self.assertIn(
        'Bad data in Experiment.train_input_fn (training stopped):'
        f' {path}, row 41 (line 42): labels must be class ids in [0, 10) for'
        ' ClassificationHead.num_classes=10; label 12 is outside.',
        self.run_mid_run_failure(bindings),
    )

  def test_bad_eval_row_blames_the_eval_input(self):
    row = ','.join(['0.5'] * 64) + ',1\n'
    bad = ','.join(['0.5'] * 63) + ',oops,1\n'
    train, bindings = self._csv('header\n' + row * 20)
    eval_path = os.path.join(self.get_temp_dir(), 'eval.csv')
    with open(eval_path, 'w') as f:
      f.write('header\n' + row * 12 + bad)
    message = self.run_mid_run_failure(
        bindings
        + [
            'Experiment.eval_input_fn=@eval/csv_input()',
            f"eval/csv_input.file_pattern='{eval_path}'",
            'eval/csv_input.num_epochs=1',
        ]
    )
    self.assertIn(
        'Bad data in Experiment.eval_input_fn (evaluation stopped):'
        f' {eval_path}, row 13 (line 14): Field 63 in record',
        message,
    )
    self.assertNotIn(train, message)

  def test_input_that_runs_out_fails_unless_declared_finite(self):
    bindings = [
        f"MODEL_DIR='{self.model_dir}'",
        'TRAIN_STEPS=50',
        'mlp.units=[4]',
        'train/digits_input.num_epochs=1',
        'train/digits_input.batch_size=720',  # 2 steps per epoch.
        'Experiment.exporter_fns=[]',
    ]
    # tf.data knows the length of the in-memory digits: fails before training.
    gin_utils.parse([_MLP], bindings)
    with self.assertRaises(gin_utils.ConfigError) as cm:
      experiment.run()
    self.assertIn(
        'Experiment.train_input_fn holds 2 batch(es), but training to step 50'
        ' (Experiment.train_steps, macro TRAIN_STEPS) from step 0 needs 50;'
        ' the input would run out.',
        str(cm.exception),
    )
    self.assertIsNone(tf.train.latest_checkpoint(self.model_dir))
    gin.clear_config()
    gin_utils.parse(
        [_MLP],
        bindings
        + [
            f"MODEL_DIR='{self.model_dir}-finite'",
            'Experiment.train_input_is_finite=True',
        ],
    )
    self.assertEqual(experiment.run().global_step, 2)

  def test_file_input_that_runs_out_fails_at_its_end(self):
    # A file's length is unknown before reading it: the run fails at its end.
    row = ','.join(['0.5'] * 64) + ',1\n'
    _, bindings = self._csv('header\n' + row * 16)
    gin_utils.parse(
        [_MLP],
        [
            f"MODEL_DIR='{self.model_dir}'",
            'TRAIN_STEPS=50',
            'mlp.units=[4]',
            'Experiment.exporter_fns=[]',
        ]
        + bindings
        + ['csv_input.num_epochs=1', 'csv_input.batch_size=8'],
    )
    with self.assertRaises(experiment.InputEndedError) as cm:
      experiment.run()
    self.assertIn(
        'Training stopped at global step 2 of 50 (Experiment.train_steps,'
        ' macro TRAIN_STEPS): Experiment.train_input_fn ran out of data.',
        str(cm.exception),
    )

  def test_eval_input_that_never_ends_fails_before_training(self):
    self.assert_fails_before_training(
        _MLP,
        ['eval/digits_input.num_epochs=None'],
        'Experiment.eval_input_fn repeats forever (num_epochs=None) and'
        ' RunSettings.eval_steps is None, so no evaluation would ever end',
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

  def assert_one_line_error(self, proc, expected):
    self.assertNotEqual(proc.returncode, 0)
    self.assertNotIn('Traceback', proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if 'trainers.train:' in l]
    self.assertLen(lines, 1, proc.stderr[-3000:])
    self.assertIn(expected, lines[0])
    # The message is the last thing printed.
    self.assertEqual(proc.stderr.strip().splitlines()[-1], lines[0])

  def test_bad_config_exits_with_one_message(self):
    proc = self._train(
        '--gin_file=gin/experiments/digits_mlp.gin', '--gin_param=mlp.unitz=3'
    )
    self.assert_one_line_error(
        proc, 'configuration error, nothing trained: Bad gin configuration:'
    )
    self.assertIn('Did you mean units?', proc.stderr)

  def test_misspelled_macro_exits_with_one_message(self):
    proc = self._train(
        '--gin_file=gin/experiments/digits_mlp.gin',
        "--gin_param=MODEL_DIR='unused'",
        '--gin_param=TRAIN_STEP=5',
    )
    self.assert_one_line_error(
        proc, 'Gin macro TRAIN_STEP (--gin_param) is bound but nothing uses it'
    )
    self.assertIn('Did you mean TRAIN_STEPS?', proc.stderr)

  def test_input_that_runs_out_exits_with_one_message(self):
    model_dir = os.path.join(self.get_temp_dir(), 'ran_out')
    proc = self._train(
        '--gin_file=gin/experiments/digits_mlp.gin',
        f"--gin_param=MODEL_DIR='{model_dir}'",
        '--gin_param=TRAIN_STEPS=30',
        '--gin_param=mlp.units=[4]',
        '--gin_param=train/digits_input.num_epochs=1',
        '--gin_param=train/digits_input.batch_size=720',
    )
    self.assert_one_line_error(
        proc,
        'configuration error, nothing trained: Experiment.train_input_fn'
        ' holds 2 batch(es), but training to step 30',
    )

  def test_bad_label_mid_run_exits_with_one_message(self):
    # The first batch is fine (the check before training passes); row 41's
    # label 12 stops training: one line naming the input, file and row.
    path = os.path.join(self.get_temp_dir(), 'labels.csv')
    row = ','.join(['0.5'] * 64) + ',1\n'
    with open(path, 'w') as f:
      f.write('header\n' + row * 40 + ','.join(['0.5'] * 64) + ',12\n')
    columns = [f'p{i}' for i in range(64)] + ['label']
    proc = self._train(
        '--gin_file=gin/experiments/digits_mlp.gin',
        f"--gin_param=MODEL_DIR='{os.path.join(self.get_temp_dir(), 'bad')}'",
        '--gin_param=TRAIN_STEPS=30',
        '--gin_param=mlp.units=[4]',
        '--gin_param=Experiment.train_input_fn=@csv_input()',
        f"--gin_param=csv_input.file_pattern='{path}'",
        f'--gin_param=csv_input.column_names={columns}',
        f"--gin_param=csv_input.column_types={['float32'] * 64 + ['int64']}",
        "--gin_param=csv_input.label_key='label'",
        f"--gin_param=csv_input.packed_features={{'x': {columns[:64]}}}",
        '--gin_param=csv_input.shuffle=False',
        '--gin_param=csv_input.batch_size=8',
    )
    self.assert_one_line_error(
        proc,
        'run failed: Bad data in Experiment.train_input_fn (training'
        f' stopped): {path}, row 41 (line 42): labels must be class ids in'
        ' [0, 10)',
    )

  def test_stray_arguments_are_rejected(self):
    proc = self._train('--gin_file=gin/experiments/digits_mlp.gin', 'stray')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('stray', proc.stderr)


if __name__ == '__main__':
  tf.test.main()
