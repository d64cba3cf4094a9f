"""Tests for gin parsing (hub_estimator.gin_utils) and the shipped gin files."""

import glob
import os

from absl.testing import parameterized
import gin
import tensorflow as tf

from hub_estimator import experiment
from hub_estimator import gin_utils
from hub_estimator.consume import sources

_ROOT = gin_utils.REPO_ROOT
_GIN_FILES = sorted(
    os.path.relpath(p, _ROOT)
    for p in glob.glob(
        os.path.join(_ROOT, 'gin', '**', '*.gin'), recursive=True
    )
)
_MACROS = ["MODEL_DIR='/tmp/unused'"]


class GinPackageTest(tf.test.TestCase):

  def test_gin_is_gin_config_not_the_config_folder(self):
    self.assertTrue(callable(getattr(gin, 'parse_config_files_and_bindings')))
    self.assertFalse(
        os.path.exists(os.path.join(_ROOT, 'gin', '__init__.py')),
        'gin/__init__.py would shadow the gin-config package',
    )
    self.assertNotEqual(
        os.path.dirname(os.path.abspath(gin.__file__)),
        os.path.join(_ROOT, 'gin'),
    )


class ShippedGinFilesTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    gin.clear_config()

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def test_there_are_layered_files(self):
    for layer in ('models', 'runs', 'experiments'):
      self.assertNotEmpty([p for p in _GIN_FILES if f'/{layer}/' in p], layer)

  @parameterized.parameters(*_GIN_FILES)
  def test_file_parses(self, path):
    # Model files use the run's macros (TRAIN_STEPS), as when included.
    files = ['gin/runs/default.gin', path] if '/models/' in path else [path]
    gin_utils.parse(files, _MACROS)

  @parameterized.parameters(*[p for p in _GIN_FILES if '/experiments/' in p])
  def test_experiment_builds_its_parts(self, path):
    gin_utils.parse([path], _MACROS)
    exp = experiment.Experiment()
    self.assertEqual(exp.model_dir, '/tmp/unused')
    self.assertIsInstance(exp.module_source, sources.ModuleSource)
    self.assertIsInstance(exp.settings, experiment.RunSettings)
    for input_fn in (exp.train_input_fn, exp.eval_input_fn):
      self.assertTrue(callable(input_fn), path)
    exporters = [
        fn(serving_input_fn=lambda: None)
        for fn in exp._exporter_fns  # pylint: disable=protected-access
    ]
    self.assertEqual([e.name for e in exporters], ['best', 'latest'])
    best = exporters[0]
    self.assertEqual(
        (best.metric, best.mode),
        (
            gin.query_parameter('%BEST_METRIC'),
            gin.query_parameter('%BEST_MODE'),
        ),
    )

  @parameterized.parameters(*[p for p in _GIN_FILES if '/experiments/' in p])
  def test_experiment_honours_macros(self, path):
    gin_utils.parse([path], _MACROS + ['TRAIN_STEPS=7'])
    self.assertEqual(gin.query_parameter('%TRAIN_STEPS'), 7)
    self.assertEqual(gin.query_parameter('%MODEL_DIR'), '/tmp/unused')
    self.assertEqual(
        gin.query_parameter('Experiment.train_steps').scoped_selector,
        'TRAIN_STEPS/gin.macro',
    )
    self.assertEqual(
        gin.query_parameter('Experiment.model_dir').scoped_selector,
        'MODEL_DIR/gin.macro',
    )


class ParseTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    gin.clear_config()

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def test_includes_resolve_from_any_working_directory(self):
    cwd = os.getcwd()
    os.chdir(self.get_temp_dir())
    try:
      gin_utils.parse(['gin/experiments/digits_mlp.gin'], _MACROS)
    finally:
      os.chdir(cwd)
    self.assertEqual(gin.query_parameter('mlp.input_dim'), 64)

  def test_later_files_and_bindings_win(self):
    extra = os.path.join(self.get_temp_dir(), 'extra.gin')
    with open(extra, 'w') as f:
      f.write('TRAIN_STEPS = 11\nmlp.units = [5]\n')
    gin_utils.parse(
        ['gin/experiments/digits_mlp.gin', extra], _MACROS + ['TRAIN_STEPS=3']
    )
    self.assertEqual(gin.query_parameter('%TRAIN_STEPS'), 3)
    self.assertEqual(gin.query_parameter('mlp.units'), [5])

  def test_unknown_binding_key_names_it(self):
    with self.assertRaises(gin_utils.ConfigError) as cm:
      gin_utils.parse(
          ['gin/experiments/digits_mlp.gin'], _MACROS + ['mlp.unitz=[3]']
      )
    message = str(cm.exception)
    self.assertIn('unitz', message)
    self.assertIn('gin/experiments/digits_mlp.gin', message)

  def test_unknown_key_in_file_names_file_and_line(self):
    path = os.path.join(self.get_temp_dir(), 'typo.gin')
    with open(path, 'w') as f:
      f.write("include 'gin/experiments/digits_mlp.gin'\nmlpp.units = [3]\n")
    with self.assertRaisesRegex(
        gin_utils.ConfigError, r'typo.gin(.|\n)*line 2'
    ):
      gin_utils.parse([path], _MACROS)

  def test_missing_required_macro(self):
    with self.assertRaisesRegex(
        gin_utils.ConfigError, 'Required gin macro MODEL_DIR is not set'
    ):
      gin_utils.parse(['gin/experiments/digits_mlp.gin'])

  def test_missing_file(self):
    with self.assertRaisesRegex(gin_utils.ConfigError, 'no_such.gin'):
      gin_utils.parse(['gin/experiments/no_such.gin'], _MACROS)

  def test_no_file(self):
    with self.assertRaisesRegex(gin_utils.ConfigError, '--gin_file'):
      gin_utils.parse([])

  def test_write_config(self):
    gin_utils.parse(['gin/experiments/digits_mlp.gin'], _MACROS)
    path = gin_utils.write_config(os.path.join(self.get_temp_dir(), 'run'))
    with open(path) as f:
      text = f.read()
    self.assertIn('mlp.units', text)
    self.assertIn('gin/experiments/digits_mlp.gin', text)


if __name__ == '__main__':
  tf.test.main()
