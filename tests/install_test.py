"""The package as users install it, and where gin configs resolve from.

WheelInstallTest builds a wheel from this checkout, installs it (not
editable) into a new venv that cannot import the checkout, and runs the
default experiment from another working directory. To stay affordable, the
venv reuses the dependencies of the environment running the tests (one line
in a .pth file naming its site-packages; .pth files there, such as an editable
install's, are not processed) and installs only the wheel, with --no-deps.
"""

import glob
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import gin
from packaging import requirements
from packaging import utils as packaging_utils
import tensorflow as tf

from hub_estimator import gin_utils

_ROOT = gin_utils.REPO_ROOT
_TIMEOUT_SECS = 600  # Generous: a bound on hangs, not a speed budget.


def _checkout_files(pattern):
  """Files of the checkout matching `pattern`, relative to the checkout."""
  paths = glob.glob(os.path.join(_ROOT, pattern), recursive=True)
  return sorted(
      os.path.relpath(p, _ROOT).replace(os.sep, '/')
      for p in paths
      if '__pycache__' not in p
  )


def _shipped_gin_files():
  return _checkout_files('gin/**/*.gin')


def _env_without_checkout():
  """os.environ minus PYTHONPATH (the tests run with the checkout on it)."""
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  return env


def _copy_project(dest, extra=()):
  """Copies what a build needs (and `extra` paths) from the checkout."""
  os.makedirs(dest, exist_ok=True)
  for name in ('pyproject.toml', 'README.md'):
    shutil.copy(os.path.join(_ROOT, name), dest)
  for name in ('hub_estimator', 'trainers', 'gin') + tuple(extra):
    shutil.copytree(
        os.path.join(_ROOT, name),
        os.path.join(dest, name),
        ignore=shutil.ignore_patterns('__pycache__'),
    )


def _make_venv_reusing_test_env(venv, cwd):
  """A venv without pip whose dependencies are this environment's.

  Returns:
    The venv's site-packages. Its .pth file names this environment's
    site-packages as plain paths, so the .pth files there (an editable
    install of the checkout) are not processed.
  """
  _run([sys.executable, '-m', 'venv', '--without-pip', venv], cwd)
  python = os.path.join(venv, 'bin', 'python')
  purelib = _run(
      [python, '-c', "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      cwd,
  ).stdout.strip()  # fmt: skip
  deps = sorted(
      {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}
  )
  with open(os.path.join(purelib, 'test_env_dependencies.pth'), 'w') as f:
    f.write(''.join(p + '\n' for p in deps))
  return purelib


def _run(args, cwd, env=None):
  proc = subprocess.run(
      args,
      cwd=cwd,
      env=env or _env_without_checkout(),
      capture_output=True,
      text=True,
      timeout=_TIMEOUT_SECS,
  )
  output = f'{proc.stdout}\n{proc.stderr}'
  if proc.returncode != 0:
    raise AssertionError(
        f'{" ".join(args)} (in {cwd}) exited {proc.returncode}:\n'
        f'{output[-4000:]}'
    )
  return proc


class ConfigResolutionTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    gin.clear_config()
    self._cwd = os.getcwd()
    self.work_dir = self.get_temp_dir()
    os.chdir(self.work_dir)

  def tearDown(self):
    os.chdir(self._cwd)
    gin.clear_config()
    super().tearDown()

  def test_working_directory_copy_wins_over_shipped_include(self):
    with open(os.path.join(_ROOT, 'gin', 'runs', 'default.gin')) as f:
      shipped = f.read()
    self.assertIn('RunSettings.keep_checkpoint_max = 3', shipped)
    os.makedirs(os.path.join(self.work_dir, 'gin', 'runs'))
    with open(
        os.path.join(self.work_dir, 'gin', 'runs', 'default.gin'), 'w'
    ) as f:
      f.write(
          shipped.replace('keep_checkpoint_max = 3', 'keep_checkpoint_max = 7')
      )

    # The experiment is not in the working directory (the shipped one is
    # used), but the file it includes is, and that copy wins.
    gin_utils.parse(
        ['gin/experiments/digits_mlp.gin'], ["MODEL_DIR='/tmp/unused'"]
    )
    self.assertEqual(gin.query_parameter('RunSettings.keep_checkpoint_max'), 7)
    self.assertEqual(gin.query_parameter('mlp.input_dim'), 64)

  def test_search_misses_are_not_logged_as_errors(self):
    # The shipped experiment and its includes are not in the working
    # directory: gin looks there first, then finds them in the shipped copy.
    with self.assertNoLogs(level='ERROR'):
      gin_utils.parse(
          ['gin/experiments/digits_mlp.gin'], ["MODEL_DIR='/tmp/unused'"]
      )
    self.assertEqual(gin.query_parameter('mlp.input_dim'), 64)

  def test_missing_file_names_where_it_looked(self):
    with self.assertRaises(gin_utils.ConfigError) as cm:
      gin_utils.parse(['gin/experiments/no_such.gin'])
    message = str(cm.exception)
    self.assertIn('gin/experiments/no_such.gin', message)
    self.assertIn(f'working directory ({self.work_dir})', message)
    self.assertIn(gin_utils.shipped_config_root(), message)
    self.assertIn('--list_configs', message)

  def test_list_configs_prints_every_shipped_file(self):
    env = dict(_env_without_checkout(), PYTHONPATH=_ROOT)
    del env['TF_CPP_MIN_LOG_LEVEL']  # As a person would run it.
    proc = _run(
        [sys.executable, '-m', 'trainers.train', '--list_configs'],
        self.work_dir,
        env,
    )
    # No TensorFlow start-up log (cuDNN/cuFFT registration errors, CPU notes).
    self.assertNotRegex(
        proc.stderr, re.compile(r'^\d{4}-\d\d-\d\d [\d:.]+: [IWEF] ', re.M)
    )
    listed = [
        line.strip()
        for line in proc.stdout.splitlines()
        if line.startswith('  ')
    ]
    self.assertEqual(listed, _shipped_gin_files())
    self.assertIn('gin/experiments/digits_mlp.gin', listed)
    self.assertFalse(os.path.exists(os.path.join(self.work_dir, 'runs')))


_PROBE = r"""
import json, os, sys
import hub_estimator, trainers
from hub_estimator import gin_utils
print(json.dumps({
    'hub_estimator': hub_estimator.__file__,
    'trainers': trainers.__file__,
    'sys_path': sys.path,
    'config_root': gin_utils.shipped_config_root(),
    'packaged_config_root': gin_utils.PACKAGED_CONFIG_ROOT,
}))
"""

_LOAD_MODULES = r"""
import json, sys
import warnings
import numpy as np
import tensorflow as tf
import hub_estimator as hub
with warnings.catch_warnings():
  warnings.simplefilter('ignore', UserWarning)  # pkg_resources, in the peer.
  import tensorflow_hub
v1 = tf.compat.v1
inputs = np.random.RandomState(0).rand(3, 64).astype(np.float32)

def apply(make_module):
  with tf.Graph().as_default():
    out = make_module()(inputs)
    with v1.Session() as session:
      session.run(v1.global_variables_initializer())
      return session.run(out)

results = {}
for path in sys.argv[1:]:
  ours = apply(lambda: hub.Module(hub.load_module_spec(path)))
  peer = apply(lambda: tensorflow_hub.Module(path))
  results[path] = {
      'shape': list(ours.shape),
      'finite': bool(np.isfinite(ours).all()),
      'max_abs_diff_vs_tensorflow_hub': float(np.abs(ours - peer).max()),
  }
print(json.dumps(results))
"""


class WheelInstallTest(tf.test.TestCase):

  def test_wheel_installed_without_checkout_trains_and_exports(self):
    tmp = self.get_temp_dir()
    # 1. Build from a copy, so the checkout gets no build/ or egg-info.
    src = os.path.join(tmp, 'src')
    _copy_project(src)
    dist = os.path.join(tmp, 'dist')
    build = _run(
        [
            sys.executable, '-m', 'pip', 'wheel', '-v', '--no-deps',
            '--no-build-isolation', '--no-index', '-w', dist, src,
        ],
        tmp,
    )  # fmt: skip
    build_log = build.stdout + build.stderr
    for noise in ('Deprecat', 'would be ignored', 'absent from the'):
      self.assertNotIn(noise, build_log, build_log[-4000:])
    (wheel,) = glob.glob(os.path.join(dist, 'hub_estimator-*.whl'))

    # 2. The wheel ships every module, data file and gin config.
    with zipfile.ZipFile(wheel) as zf:
      shipped = set(zf.namelist())
    wanted = (
        _checkout_files('hub_estimator/**/*.py')
        + _checkout_files('trainers/**/*.py')
        + _checkout_files('hub_estimator/models/data/*')
        + ['hub_estimator/configs/' + p for p in _shipped_gin_files()]
    )
    missing = sorted(set(wanted) - shipped)
    self.assertEqual(
        missing,
        [],
        'The wheel lacks these files: add their package to [tool.setuptools]'
        ' packages (and package-data) in pyproject.toml.',
    )
    self.assertFalse(
        any(n.startswith('gin/') for n in shipped), 'top-level gin/'
    )

    # 3. A venv that reuses this environment's dependencies, plus the wheel.
    venv = os.path.join(tmp, 'venv')
    # Removed here: the temp-dir cleanup would also walk the lib64 symlink.
    self.addCleanup(shutil.rmtree, venv, ignore_errors=True)
    purelib = _make_venv_reusing_test_env(venv, tmp)
    python = os.path.join(venv, 'bin', 'python')
    _run(
        [
            sys.executable, '-m', 'pip', '--python', python, 'install',
            '--no-deps', '--no-index', wheel,
        ],
        tmp,
    )  # fmt: skip

    # 4. From an empty working directory, the package (not the checkout) is
    # imported and finds its own copy of the configs.
    work = os.path.join(tmp, 'work')
    os.makedirs(work)
    probe = json.loads(_run([python, '-c', _PROBE], work).stdout)
    self.assertTrue(probe['hub_estimator'].startswith(purelib), probe)
    self.assertTrue(probe['trainers'].startswith(purelib), probe)
    checkout = os.path.realpath(_ROOT)
    self.assertNotIn(
        checkout, [os.path.realpath(p or work) for p in probe['sys_path']]
    )
    self.assertEqual(probe['config_root'], probe['packaged_config_root'])

    proc = _run(
        [
            python, '-m', 'trainers.train',
            '--gin_file=gin/experiments/digits_mlp.gin',
            "--gin_param=MODEL_DIR='run'", '--gin_param=TRAIN_STEPS=10',
            '--gin_param=mlp.units=[16]',
        ],
        work,
    )  # fmt: skip
    self.assertIn('Best accuracy', proc.stderr)
    # The summary shows the relative MODEL_DIR as an absolute path.
    run = os.path.join(os.path.realpath(work), 'run')
    self.assertIn(
        f'Gin config of the run: {os.path.join(run, "config.gin")}',
        proc.stderr,
    )
    self.assertIn(f'tensorboard --logdir {shlex.quote(run)}', proc.stderr)
    self.assertTrue(os.path.isfile(os.path.join(work, 'run', 'config.gin')))

    # 5. The exports load, with ours and with tensorflow_hub, identically.
    modules = sorted(
        glob.glob(os.path.join(work, 'run', 'export', '*', '*', 'digits_mlp'))
    )
    exporters = {
        os.path.basename(os.path.dirname(os.path.dirname(m))) for m in modules
    }
    self.assertEqual(exporters, {'best', 'latest'})
    loaded = json.loads(
        _run([python, '-c', _LOAD_MODULES, *modules], work).stdout
    )
    for path, result in loaded.items():
      self.assertEqual(result['shape'], [3, 16], path)
      self.assertTrue(result['finite'], path)
      self.assertLess(result['max_abs_diff_vs_tensorflow_hub'], 1e-6, path)


def _lock_pins():
  """requirements.lock as {canonical name: (version, Requirement)}."""
  pins = {}
  with open(os.path.join(_ROOT, 'requirements.lock')) as f:
    for line in f:
      line = line.split('#', 1)[0].strip()
      if line:
        req = requirements.Requirement(line)
        specs = list(req.specifier)  # uv writes one `==` pin per line.
        if len(specs) != 1 or specs[0].operator != '==':
          raise ValueError(f'requirements.lock: not a pin: {line!r}')
        spec = specs[0]
        pins[packaging_utils.canonicalize_name(req.name)] = (spec.version, req)
  return pins


class LockTest(tf.test.TestCase):
  """requirements.lock agrees with pyproject.toml and with this environment."""

  def setUp(self):
    super().setUp()
    if sys.version_info[:2] != (3, 11):
      self.skipTest('requirements.lock is compiled for Python 3.11 (and CI)')

  def test_every_dependency_is_pinned_within_its_range(self):
    import tomllib  # pylint: disable=g-import-not-at-top (Python 3.11+)

    with open(os.path.join(_ROOT, 'pyproject.toml'), 'rb') as f:
      project = tomllib.load(f)['project']
    declared = (
        project['dependencies'] + project['optional-dependencies']['test']
    )
    pins = _lock_pins()
    problems = []
    for line in declared:
      req = requirements.Requirement(line)
      name = packaging_utils.canonicalize_name(req.name)
      if name not in pins:
        problems.append(f'{req} is not pinned')
      elif not req.specifier.contains(pins[name][0], prereleases=True):
        problems.append(f'{req} but the lock pins {name}=={pins[name][0]}')
    self.assertEqual(
        problems,
        [],
        'requirements.lock is out of date with pyproject.toml; refresh it'
        " (README, Install: 'uv pip compile ...').",
    )

  def test_this_environment_has_the_locked_versions(self):
    problems = []
    for name, (version, req) in sorted(_lock_pins().items()):
      if req.marker is not None and not req.marker.evaluate():
        continue
      try:
        installed = importlib.metadata.version(name)
      except importlib.metadata.PackageNotFoundError:
        installed = None
      if installed != version:
        problems.append(f'{name}: lock {version}, installed {installed}')
    self.assertEqual(
        problems,
        [],
        'The tests run on versions other than requirements.lock pins: run'
        ' `bash scripts/bootstrap.sh` (or refresh the lock).',
    )


class BootstrapTest(tf.test.TestCase):
  """scripts/bootstrap.sh on a copy of the project, offline.

  The copy's .venv reuses this environment's packages, so the pins of the
  test's requirements.lock are already satisfied and pip downloads nothing.
  """

  def setUp(self):
    super().setUp()
    self.root = os.path.join(self.get_temp_dir(), 'project')
    _copy_project(self.root, extra=('scripts',))
    self.venv = os.path.join(self.root, '.venv')
    self.addCleanup(shutil.rmtree, self.venv, ignore_errors=True)
    _make_venv_reusing_test_env(self.venv, self.root)
    self.log = os.path.join(self.venv, 'bootstrap.log')
    self.stamp = os.path.join(self.venv, '.hub_estimator_installed')

  def _write_lock(self, text):
    with open(os.path.join(self.root, 'requirements.lock'), 'w') as f:
      f.write(text)

  def _bootstrap(self):
    return subprocess.run(
        ['bash', os.path.join(self.root, 'scripts', 'bootstrap.sh')],
        cwd=self.get_temp_dir(),
        env=_env_without_checkout(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECS,
    )

  def test_one_line_per_phase_pip_output_in_log_silent_rerun(self):
    absl_version = importlib.metadata.version('absl-py')
    self._write_lock(f'absl-py=={absl_version}\n')
    proc = self._bootstrap()
    self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
    self.assertEqual(
        proc.stdout.splitlines(),
        [
            (
                'bootstrap: installing locked dependencies (first run only, a'
                f' few minutes: TensorFlow is ~475 MB); log: {self.log}'
            ),
            'bootstrap: done',
        ],
    )
    self.assertEqual(proc.stderr, '')
    with open(self.log) as f:
      log = f.read()
    self.assertIn(f'absl-py=={absl_version}', log)
    self.assertIn('Successfully installed hub-estimator', log)
    imported = _run(
        [
            os.path.join(self.venv, 'bin', 'python'), '-c',
            'import hub_estimator; print(hub_estimator.__file__)',
        ],
        self.get_temp_dir(),
    ).stdout.strip()  # fmt: skip
    self.assertEqual(
        imported, os.path.join(self.root, 'hub_estimator', '__init__.py')
    )

    again = self._bootstrap()
    self.assertEqual(
        (again.returncode, again.stdout, again.stderr), (0, '', '')
    )

    self._write_lock(f'absl-py=={absl_version}\n# refreshed\n')
    changed = self._bootstrap()
    self.assertEqual(changed.returncode, 0, changed.stderr)
    self.assertIn('installing locked dependencies', changed.stdout)

  def test_failing_pip_names_its_log_and_leaves_no_stamp(self):
    self._write_lock('absl-py==not a version!\n')
    proc = self._bootstrap()
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('installing locked dependencies', proc.stdout)
    self.assertIn('bootstrap: failed: pip install -r', proc.stderr)
    self.assertIn(f"pip's output is in {self.log}", proc.stderr)
    self.assertIn('not a version', proc.stderr)  # The log's end, shown.
    self.assertFalse(os.path.exists(self.stamp))


if __name__ == '__main__':
  tf.test.main()
