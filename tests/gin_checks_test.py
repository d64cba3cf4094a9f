"""Gin bindings nothing uses, misspelled names and wrong value types fail."""

import os

import gin
import tensorflow as tf

from hub_estimator import experiment
from hub_estimator import gin_utils

_MLP = 'gin/experiments/digits_mlp.gin'


class GinChecksTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    gin.clear_config()
    self.model_dir = os.path.join(self.get_temp_dir(), self.id())

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def parse(self, *bindings):
    gin_utils.parse([_MLP], [f"MODEL_DIR='{self.model_dir}'", *bindings])

  def assert_parse_fails(self, bindings, *patterns):
    with self.assertRaises(gin_utils.ConfigError) as cm:
      self.parse(*bindings)
    for pattern in patterns:
      self.assertIn(pattern, str(cm.exception))
    return str(cm.exception)

  def test_misspelled_macro_suggests_the_used_one(self):
    self.assert_parse_fails(
        ['TRAIN_STEP=5'],
        'Gin macro TRAIN_STEP (--gin_param) is bound but nothing uses it',
        'Did you mean TRAIN_STEPS?',
        'TRAIN_STEP=5',  # The sources are listed.
    )

  def test_misspelled_scope_suggests_the_entered_one(self):
    self.assert_parse_fails(
        ["bset/BestModuleExporter.metric='loss'"],
        "Gin scope 'bset' of the binding bset/BestModuleExporter.metric"
        ' (--gin_param) is never entered',
        'Did you mean best?',
    )

  def test_unknown_parameter_suggests_the_closest(self):
    self.assert_parse_fails(
        ['mlp.unitz=[3]'],
        "Configurable 'mlp' doesn't have a parameter named 'unitz'.",
        'Did you mean units?',
    )

  def test_wrong_value_types_name_the_key(self):
    self.assert_parse_fails(
        ['mlp.units=128'],
        'Gin binding mlp.units (--gin_param) expects Sequence[int]; got 128'
        ' (int). Write it as a list: [128].',
    )
    gin.clear_config()
    self.assert_parse_fails(
        ["cosine_decay.initial='0.1'"],
        'Gin binding cosine_decay.initial (--gin_param) expects float; got'
        " '0.1' (str). Write 0.1, without quotes.",
    )
    gin.clear_config()
    self.assert_parse_fails(
        ['make_model_fn.learning_rate_fn=0.1'],
        'Gin binding make_model_fn.learning_rate_fn (--gin_param) expects',
        'got 0.1 (float)',
    )

  def test_wrong_type_through_a_macro_names_the_binding(self):
    self.assert_parse_fails(
        ["TRAIN_STEPS='many'"],
        'Gin binding Experiment.train_steps (set through macro TRAIN_STEPS,'
        " --gin_param) expects Optional[int]; got 'many' (str).",
    )

  def test_replacing_the_only_reference_to_a_scope_is_allowed(self):
    # gin/runs/default.gin binds best/... and latest/...; dropping the
    # exporters leaves those bindings known, not misspelled.
    self.parse('Experiment.exporter_fns=[]')

  def assert_run_fails(self, binding, expected):
    self.parse('TRAIN_STEPS=3', binding)
    with self.assertRaises(gin_utils.ConfigError) as cm:
      experiment.run()
    self.assertIn(expected, str(cm.exception))
    self.assertIsNone(tf.train.latest_checkpoint(self.model_dir))

  def test_command_line_binding_nothing_calls_fails_before_training(self):
    self.assert_run_fails(
        'numpy_input.shuffle=False',
        'Gin binding numpy_input.shuffle (--gin_param) is never used: nothing'
        ' in this run calls numpy_input, so it would be silently ignored.',
    )

  def test_command_line_binding_in_a_scope_nothing_calls_fails(self):
    self.assert_run_fails(
        'train/mlp.l2=0.1',
        'Gin binding train/mlp.l2 (--gin_param) is never used: nothing in'
        " this run calls mlp in scope 'train'",
    )

  def test_binding_the_caller_overrides_fails(self):
    self.assert_run_fails(
        'latest/LatestModuleExporter.serving_input_fn=@digits_input',
        'Gin binding latest/LatestModuleExporter.serving_input_fn (--gin_param)'
        " is never used: the code passes 'serving_input_fn' to"
        ' LatestModuleExporter itself',
    )

  def write(self, name, text):
    path = os.path.join(self.get_temp_dir(), name)
    with open(path, 'w') as f:
      f.write(text)
    return path

  def run_files(self, *files):
    gin_utils.parse(list(files), [f"MODEL_DIR='{self.model_dir}'"])
    return experiment.run()

  def test_unused_binding_in_a_gin_file_names_file_and_line(self):
    # The run's learning rate is cosine_decay (gin/models/digits_mlp.gin):
    # a constant_rate binding in the user's experiment would do nothing.
    path = self.write(
        'lr.gin',
        f"include '{_MLP}'\nTRAIN_STEPS = 3\nconstant_rate.value = 0.5\n",
    )
    with self.assertRaises(gin_utils.ConfigError) as cm:
      self.run_files(path)
    self.assertIn(
        f'Gin binding constant_rate.value ({path}, line 3) is never used:'
        ' nothing in this run calls constant_rate, so it would be silently'
        ' ignored.',
        str(cm.exception),
    )
    self.assertIn(
        'move it to a gin file that this one includes', str(cm.exception)
    )
    self.assertIsNone(tf.train.latest_checkpoint(self.model_dir))

  def test_unused_binding_in_a_scope_suggests_the_called_one(self):
    path = self.write(
        'csv.gin',
        f"include '{_MLP}'\nTRAIN_STEPS = 3\ntrain/csv_input.batch_size = 10\n",
    )
    with self.assertRaises(gin_utils.ConfigError) as cm:
      self.run_files(path)
    self.assertIn(
        f'Gin binding train/csv_input.batch_size ({path}, line 3) is never'
        " used: nothing in this run calls csv_input in scope 'train', so it"
        ' would be silently ignored. Did you mean train/digits_input?',
        str(cm.exception),
    )

  def test_misspelled_macro_in_a_gin_file_names_file_and_line(self):
    path = self.write('exp.gin', f"include '{_MLP}'\n\nTRAIN_STEP = 5\n")
    with self.assertRaises(gin_utils.ConfigError) as cm:
      gin_utils.parse([path], [f"MODEL_DIR='{self.model_dir}'"])
    self.assertIn(
        f'Gin macro TRAIN_STEP ({path}, line 3) is bound but nothing uses it',
        str(cm.exception),
    )
    self.assertIn('Did you mean TRAIN_STEPS?', str(cm.exception))

  def test_wrong_type_in_a_gin_file_names_file_and_line(self):
    path = self.write('exp.gin', f"include '{_MLP}'\nmlp.units = 128\n")
    with self.assertRaises(gin_utils.ConfigError) as cm:
      gin_utils.parse([path], [f"MODEL_DIR='{self.model_dir}'"])
    self.assertIn(
        f'Gin binding mlp.units ({path}, line 2) expects Sequence[int];'
        ' got 128 (int).',
        str(cm.exception),
    )

  def test_unused_bindings_of_included_files_are_layered_defaults(self):
    # A base of the user's own configures csv_input; the experiment that
    # includes it reads the digits instead: the base's bindings may go
    # unused, as those of the shipped configs may.
    base = self.write(
        'base.gin',
        'import hub_estimator.models.inputs\n'
        'train/csv_input.batch_size = 10\nconstant_rate.value = 0.5\n',
    )
    path = self.write(
        'exp.gin',
        f"include '{_MLP}'\ninclude '{base}'\nTRAIN_STEPS = 2\n"
        'Experiment.exporter_fns = []\n',
    )
    result = self.run_files(path)
    self.assertEqual(result.global_step, 2)


if __name__ == '__main__':
  tf.test.main()
