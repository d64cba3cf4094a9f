"""`trainers.train` on a real TF_CONFIG cluster: chief, worker, ps, evaluator.

One local cluster on 127.0.0.1 runs once for the class; each test checks one
promise of distributed `tf.estimator.train_and_evaluate`:

- every task exits cleanly (the ps serves until the test ends it);
- the chief writes the checkpoints, up to TRAIN_STEPS, and the run's config;
- the variables live on the ps (device placement of the chief's graph);
- a worker really trains those shared variables (global step accounting);
- the evaluator runs the exporters: modules that load with
  `hub_estimator.Module` and hold exactly the weights of their checkpoint;
- the evaluator polls for checkpoints rather than spinning.

Orchestration. tf.estimator delays worker k by 5 * (k + 1) seconds so the
chief can initialize the variables first, and a worker that finds them not yet
initialized sleeps 30 s before it looks again. A run of a few dozen steps is
over long before a worker joins, so the test pauses the chief (SIGSTOP) as soon
as it has initialized the variables (its first checkpoint appears), only then
starts the worker, lets it train to TRAIN_STEPS against the ps, and resumes the
chief (SIGCONT), which takes one more step and writes the final checkpoint that
the evaluator evaluates and exports. The global step then accounts exactly for
the steps each trainer logged, proving both trained the same ps variables.

Timing. Every step of the scenario waits for an event (a file, a process
exit) with a generous bound (`_EVENT_TIMEOUT_SECS`), never for a wall-clock
budget of the whole run, so the test passes on a busy machine; and it stops at
once when a task dies (any task exiting non-zero, or the ps exiting at all).
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from google.protobuf import text_format

import hub_estimator as hub
from hub_estimator.export import layout

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GIN_FILE = 'gin/experiments/digits_mlp.gin'
_MODULE_NAME = 'digits_mlp'
_TRAIN_STEPS = 50
# Shrinks the run. The evaluation cadence (RunSettings.eval_throttle_secs) is
# deliberately left at the shipped default: it is part of what is under test.
_BINDINGS = [
    f'TRAIN_STEPS={_TRAIN_STEPS}',
    'RunSettings.save_checkpoints_steps=10',
    'RunSettings.save_summary_steps=10',
    'RunSettings.log_every_n_steps=1',  # One progress line per step.
    'RunSettings.keep_checkpoint_max=20',  # Keep every exported checkpoint.
]
_PS_DEVICE = '/job:ps/task:0'
_VARIABLE_OPS = ('VariableV2', 'VarHandleOp', 'Variable')
_STEP_LINE = re.compile(r'\] step (\d+)/(\d+) ')
_EXPORTED_LINE = re.compile(r"ModuleExporter '\w+' exported ")
# An evaluator that polls for checkpoints logs a few dozen lines in this run;
# one that spins logs hundreds of thousands.
_MAX_EVALUATOR_LOG_LINES = 1000
_SPIN_WARNING = 'throttle_secs is set as 0'  # What tf.estimator logs per spin.

# The bound of each wait for an event; reached only when something hangs.
_EVENT_TIMEOUT_SECS = 600
_POLL_SECS = 0.005
_KILL_WAIT_SECS = 10
_PROXY_VARS = (
    'http_proxy',
    'https_proxy',
    'grpc_proxy',
    'all_proxy',
    'HTTP_PROXY',
    'HTTPS_PROXY',
    'GRPC_PROXY',
    'ALL_PROXY',
)


def _free_ports(count):
  """`count` distinct free TCP ports on 127.0.0.1."""
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(('127.0.0.1', 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _read(path):
  """A log's text, minus the warnings a spinning evaluator repeats."""
  with open(path, errors='replace') as f:
    return ''.join(line for line in f if _SPIN_WARNING not in line)


def _step_lines(log_text):
  """The global steps a trainer's ProgressHook logged (one line per step)."""
  return [int(m.group(1)) for m in _STEP_LINE.finditer(log_text)]


def _count_lines(path):
  with open(path, 'rb') as f:
    return sum(1 for _ in f)


def _tail(path, chars=3000):
  """The end of a log, minus the lines of a spinning evaluator."""
  with open(path, 'rb') as f:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 200 * chars))
    text = f.read().decode('utf-8', errors='replace')
  lines = [l for l in text.splitlines() if _SPIN_WARNING not in l]
  return '\n'.join(lines)[-chars:]


class _Cluster:
  """Runs the four tasks as `python -m trainers.train` subprocesses."""

  def __init__(self, base_dir):
    self.model_dir = os.path.join(base_dir, 'run')
    self.log_dir = os.path.join(base_dir, 'logs')
    os.makedirs(self.log_dir)
    chief, worker, ps = (f'127.0.0.1:{p}' for p in _free_ports(3))
    # The evaluator is not part of the cluster spec (tf.estimator rejects it).
    self.cluster = {'chief': [chief], 'worker': [worker], 'ps': [ps]}
    self.procs = {}
    self.returncodes = {}
    self.events = []  # (seconds since start, what happened), for messages.
    self.ps_alive_at_end = None
    self._logs = {}
    self._stopped = False
    self._start = time.monotonic()
    self.failure = None  # Why the scenario stopped early, if it did.

  def log_path(self, task):
    return os.path.join(self.log_dir, f'{task}.log')

  def log(self, task):
    return _read(self.log_path(task))

  def _note(self, what):
    self.events.append((round(time.monotonic() - self._start, 1), what))

  def start(self, task):
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env.update(
        TF_CONFIG=json.dumps(
            {'cluster': self.cluster, 'task': {'type': task, 'index': 0}}
        ),
        NO_PROXY='127.0.0.1,localhost',
        no_proxy='127.0.0.1,localhost',
        CUDA_VISIBLE_DEVICES='',
        TF_CPP_MIN_LOG_LEVEL='1',
        PYTHONUNBUFFERED='1',
    )
    command = [
        sys.executable,
        '-m',
        'trainers.train',
        f'--gin_file={_GIN_FILE}',
        f"--gin_param=MODEL_DIR='{self.model_dir}'",
    ] + [f'--gin_param={b}' for b in _BINDINGS]
    self._logs[task] = open(self.log_path(task), 'wb')
    self.procs[task] = subprocess.Popen(
        command,
        cwd=_REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=self._logs[task],
        stderr=subprocess.STDOUT,
    )
    self._note(f'started {task}')

  def _died(self):
    """A task that died (exited non-zero, or the ps exited), or None."""
    for task, proc in self.procs.items():
      code = proc.poll()
      if code is not None and (code != 0 or task == 'ps'):
        self.returncodes[task] = code
        return task
    return None

  def wait_for(self, what, done):
    """Waits until `done()`; False (noted) if a task dies or on the bound."""
    end = time.monotonic() + _EVENT_TIMEOUT_SECS
    while not done():
      dead = self._died()
      if dead is not None:
        self.failure = (
            f'{dead} exited with {self.returncodes[dead]} while waiting for'
            f' {what}'
        )
        self._note(self.failure)
        return False
      if time.monotonic() > end:
        self.failure = f'no {what} within {_EVENT_TIMEOUT_SECS} s'
        self._note(self.failure)
        return False
      time.sleep(_POLL_SECS)
    self._note(what)
    return True

  def wait_exit(self, task):
    """Waits for `task` to exit; True when it did (with any exit code)."""
    proc = self.procs[task]
    if not self.wait_for(f'{task} to exit', lambda: proc.poll() is not None):
      return False
    self.returncodes[task] = proc.returncode
    self._note(f'{task} exited with {proc.returncode}')
    return True

  def run(self):
    """Runs the scenario of the module docstring; always stops every task."""
    checkpoint_state = os.path.join(self.model_dir, 'checkpoint')
    try:
      for task in ('ps', 'chief', 'evaluator'):
        self.start(task)
      if not self.wait_for(
          'the first checkpoint of the chief',
          lambda: os.path.exists(checkpoint_state),
      ):
        return
      self.procs['chief'].send_signal(signal.SIGSTOP)
      self._note('chief paused after initializing the variables')
      self.start('worker')
      worker_done = self.wait_exit('worker')
      self.procs['chief'].send_signal(signal.SIGCONT)
      self._note('chief resumed')
      if not worker_done or not self.wait_exit('chief'):
        return
      if not self.wait_exit('evaluator'):
        return
      # The ps serves until killed; it must still be serving at the end.
      self.ps_alive_at_end = self.procs['ps'].poll() is None
    finally:
      self.stop_all()

  def stop_all(self):
    """Stops every task still running (bounded waits); idempotent."""
    if self._stopped:
      return
    self._stopped = True
    for task, proc in self.procs.items():
      if proc.poll() is None:
        try:
          proc.send_signal(signal.SIGCONT)  # A paused process ignores TERM.
          proc.terminate()
          proc.wait(timeout=_KILL_WAIT_SECS)
        except subprocess.TimeoutExpired:
          proc.kill()
          proc.wait(timeout=_KILL_WAIT_SECS)
        except ProcessLookupError:
          self._note(f'{task} had already exited')
        self._note(f'{task} stopped by the test')
      self.returncodes.setdefault(task, None)
    for f in self._logs.values():
      f.close()
    self._note('all tasks stopped')

  def describe(self, *tasks):
    """The timeline and the ends of the logs of `tasks`, for messages."""
    parts = ['timeline: ' + '; '.join(f'{t}s {w}' for t, w in self.events)]
    if self.failure:
      parts.append(f'the scenario stopped early: {self.failure}')
      died = [t for t, c in self.returncodes.items() if c not in (0, None)]
      tasks = tuple(dict.fromkeys(tasks + tuple(died)))
    for task in tasks:
      if os.path.exists(self.log_path(task)):
        parts.append(f'--- {task} log (end) ---\n{_tail(self.log_path(task))}')
    return '\n'.join(parts)


class DistributedTrainerTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.base_dir = tempfile.mkdtemp(dir=tf.compat.v1.test.get_temp_dir())
    try:
      cls.cluster = _Cluster(cls.base_dir)
      cls.cluster.run()
    except BaseException:
      # tearDownClass does not run when setUpClass fails; run() has already
      # stopped every task it started.
      shutil.rmtree(cls.base_dir, ignore_errors=True)
      raise
    cls.model_dir = cls.cluster.model_dir

  @classmethod
  def tearDownClass(cls):
    cls.cluster.stop_all()  # A no-op unless run() was interrupted.
    shutil.rmtree(cls.base_dir, ignore_errors=True)
    super().tearDownClass()

  def final_checkpoint(self):
    state = tf.train.get_checkpoint_state(self.model_dir)
    self.assertIsNotNone(
        state,
        'the chief wrote no checkpoint\n' + self.cluster.describe('chief'),
    )
    return state.model_checkpoint_path

  def test_every_task_ends_cleanly(self):
    codes = self.cluster.returncodes
    for task in ('chief', 'worker', 'evaluator'):
      self.assertEqual(
          codes.get(task),
          0,
          f'{task} did not exit 0 (None: still running when its bounded wait'
          ' ended, so the test killed it)\n'
          + self.cluster.describe(task),
      )
    self.assertTrue(
        self.cluster.ps_alive_at_end,
        'the ps should serve until the test ends it\n'
        + self.cluster.describe('ps'),
    )

  def test_chief_checkpoints_reach_train_steps(self):
    checkpoint = self.final_checkpoint()
    step = int(tf.train.load_variable(checkpoint, 'global_step'))
    self.assertGreaterEqual(step, _TRAIN_STEPS, self.cluster.describe('chief'))
    # The chief alone writes the run's config and the operative gin config.
    self.assertTrue(os.path.exists(os.path.join(self.model_dir, 'config.gin')))
    self.assertNotEmpty(
        glob.glob(os.path.join(self.model_dir, 'operative_config-*.gin'))
    )

  def test_variables_live_on_the_ps(self):
    path = os.path.join(self.model_dir, 'graph.pbtxt')  # Written by the chief.
    self.assertTrue(
        os.path.exists(path),
        'the chief wrote no graph.pbtxt\n' + self.cluster.describe('chief'),
    )
    graph_def = tf.compat.v1.GraphDef()
    text_format.Parse(_read(path), graph_def)
    variables = {
        node.name: node.device
        for node in graph_def.node
        if node.op in _VARIABLE_OPS
    }
    self.assertIn('global_step', variables)
    self.assertTrue(
        any(name.startswith('module/') for name in variables), variables
    )
    off_ps = {n: d for n, d in variables.items() if d != _PS_DEVICE}
    self.assertEmpty(off_ps, f'variables not placed on {_PS_DEVICE}')
    # The chief's own ops (the model computation) run on the chief.
    self.assertTrue(
        any(node.device.startswith('/job:chief/') for node in graph_def.node)
    )

  def test_worker_trains_the_shared_variables(self):
    chief_steps = _step_lines(self.cluster.log('chief'))
    worker_steps = _step_lines(self.cluster.log('worker'))
    message = self.cluster.describe('chief', 'worker')
    self.assertNotEmpty(worker_steps, 'the worker took no step\n' + message)
    self.assertNotEmpty(chief_steps, 'the chief took no step\n' + message)
    # Asynchronous between-graph training: every step of every trainer
    # increments the one global_step on the ps, which the chief checkpoints.
    step = int(tf.train.load_variable(self.final_checkpoint(), 'global_step'))
    self.assertEqual(step, len(chief_steps) + len(worker_steps), message)
    # The worker carried the run to TRAIN_STEPS while the chief was paused,
    # and the chief resumed from the global step the worker left.
    self.assertGreaterEqual(max(worker_steps), _TRAIN_STEPS, message)
    self.assertGreater(max(chief_steps), max(worker_steps), message)

  def test_evaluator_exports_modules_matching_their_checkpoints(self):
    message = self.cluster.describe('evaluator')
    exports = {
        name: [v.path for v in versions]
        for name, versions in layout.list_exports(self.model_dir).items()
        if versions
    }
    self.assertCountEqual(exports, ['best', 'latest'], message)
    evaluator_log = self.cluster.log('evaluator')
    for task in ('chief', 'worker'):
      self.assertNotRegex(self.cluster.log(task), _EXPORTED_LINE)
    final_steps = []
    for name, versions in sorted(exports.items()):
      for version_dir in versions:
        with open(os.path.join(version_dir, layout.METADATA_FILENAME)) as f:
          metadata = json.load(f)
        # Written by the evaluator, the one task that runs the exporters.
        self.assertIn(f'to {version_dir}.', evaluator_log)
        if metadata['is_the_final_export']:
          final_steps.append(metadata['global_step'])
        checkpoint = metadata['checkpoint_path']
        self.assertEqual(
            int(tf.train.load_variable(checkpoint, 'global_step')),
            metadata['global_step'],
        )
        self.assert_module_matches_checkpoint(
            os.path.join(version_dir, _MODULE_NAME), checkpoint
        )
    # The evaluator went on until it had evaluated the final checkpoint.
    self.assertNotEmpty(final_steps, message)
    self.assertGreaterEqual(min(final_steps), _TRAIN_STEPS)
    newest = os.path.join(exports['latest'][-1], layout.METADATA_FILENAME)
    with open(newest) as f:
      self.assertEqual(json.load(f)['checkpoint_path'], self.final_checkpoint())

  def assert_module_matches_checkpoint(self, module_dir, checkpoint):
    with tf.Graph().as_default():
      module = hub.Module(module_dir)
      outputs = module(np.zeros([2, 64], np.float32))
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        values = session.run(dict(module.variable_map))
        self.assertEqual(session.run(outputs).shape[0], 2)
    self.assertIn('dense_0/kernel', values)
    for key, value in sorted(values.items()):
      self.assertAllEqual(
          value,
          tf.train.load_variable(checkpoint, 'module/' + key),
          msg=f'{module_dir}: {key} differs from {checkpoint}',
      )

  def test_evaluator_polls_for_checkpoints_without_spinning(self):
    # While no new checkpoint exists (here: while the chief is paused), a
    # distributed evaluator loops evaluate_and_export() every
    # EvalSpec.throttle_secs; at 0 it spins a core and logs a warning per
    # iteration.
    lines = _count_lines(self.cluster.log_path('evaluator'))
    self.assertLess(
        lines,
        _MAX_EVALUATOR_LOG_LINES,
        f'the evaluator logged {lines} lines: it busy-polls for new'
        ' checkpoints (EvalSpec.throttle_secs=0 from'
        ' RunSettings.eval_throttle_secs=0); an evaluator task needs a'
        ' polling interval of at least 1 s\n'
        + self.cluster.describe('evaluator'),
    )


if __name__ == '__main__':
  tf.test.main()
