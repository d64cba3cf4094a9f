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
        'Gin macro TRAIN_STEP is bound but nothing uses it',
        'Did you mean TRAIN_STEPS?',
        'TRAIN_STEP=5',  # The sources are listed.
    )

  def test_misspelled_scope_suggests_the_entered_one(self):
    self.assert_parse_fails(
        ["bset/BestModuleExporter.metric='loss'"],
        "Gin scope 'bset' of the binding bset/BestModuleExporter.metric is"
        ' never entered',
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
        'Gin binding mlp.units expects Sequence[int]; got 128 (int).',
    )
    gin.clear_config()
    self.assert_parse_fails(
        ["cosine_decay.initial='0.1'"],
        "Gin binding cosine_decay.initial expects float; got '0.1' (str).",
    )
    gin.clear_config()
    self.assert_parse_fails(
        ['make_model_fn.learning_rate_fn=0.1'],
        'Gin binding make_model_fn.learning_rate_fn expects',
        'got 0.1 (float)',
    )

  def test_wrong_type_through_a_macro_names_the_binding(self):
    self.assert_parse_fails(
        ["TRAIN_STEPS='many'"],
        'Gin binding Experiment.train_steps (set through macro TRAIN_STEPS)'
        " expects Optional[int]; got 'many' (str).",
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
        'Gin binding numpy_input.shuffle is never used: nothing in this run'
        ' calls numpy_input.',
    )

  def test_command_line_binding_in_a_scope_nothing_calls_fails(self):
    self.assert_run_fails(
        'train/mlp.l2=0.1',
        'Gin binding train/mlp.l2 is never used: nothing in this run calls'
        " mlp in scope 'train'.",
    )

  def test_binding_the_caller_overrides_fails(self):
    self.assert_run_fails(
        'latest/LatestModuleExporter.serving_input_fn=@digits_input',
        'Gin binding latest/LatestModuleExporter.serving_input_fn is never'
        " used: the code passes 'serving_input_fn' to LatestModuleExporter"
        ' itself',
    )


if __name__ == '__main__':
  tf.test.main()
