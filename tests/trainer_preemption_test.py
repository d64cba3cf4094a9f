"""Preemption of `trainers.train`: SIGTERM -> checkpoint -> resume; redo.

Every wait is for an event (a log line, a process exit) with a generous
bound, so the tests pass on a busy machine.

Also runnable as a script (`python trainer_preemption_test.py child DIR`,
`... evaluator_child DIR`): the tests whose first process hangs in an export
run it that way.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import tensorflow as tf

from hub_estimator import preemption
from hub_estimator.export import layout

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GIN_FILE = 'gin/experiments/digits_mlp.gin'
_STEP_LINE = re.compile(r'\] step (\d+)/(\d+) ')
_EVENT_TIMEOUT_SECS = 600
_HANG_MARKER = 'EXPORT_HANGING'


def _command(model_dir, *bindings):
  return [
      sys.executable,
      '-m',
      'trainers.train',
      f'--gin_file={_GIN_FILE}',
      f"--gin_param=MODEL_DIR='{model_dir}'",
      '--gin_param=RunSettings.log_every_n_steps=1',
  ] + [f'--gin_param={b}' for b in bindings]


def _env():
  return dict(os.environ, PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='')


class _Process:
  """A subprocess whose output goes to a log file the test can wait on."""

  def __init__(self, command, log_path, env=None):
    self.log_path = log_path
    self._log = open(log_path, 'wb')
    self.proc = subprocess.Popen(
        command,
        cwd=_REPO_ROOT,
        env=dict(_env(), **(env or {})),
        stdin=subprocess.DEVNULL,
        stdout=self._log,
        stderr=subprocess.STDOUT,
    )

  def text(self):
    with open(self.log_path, errors='replace') as f:
      return f.read()

  def wait_for(self, pattern):
    """Waits for `pattern` in the log; None if the process exits first."""
    end = time.monotonic() + _EVENT_TIMEOUT_SECS
    while time.monotonic() < end:
      match = re.search(pattern, self.text())
      if match:
        return match
      if self.proc.poll() is not None:
        return re.search(pattern, self.text())
      time.sleep(0.05)
    return None

  def wait(self):
    try:
      return self.proc.wait(timeout=_EVENT_TIMEOUT_SECS)
    finally:
      self.close()

  def close(self):
    if self.proc.poll() is None:
      self.proc.kill()
      self.proc.wait()
    self._log.close()


def _steps(text):
  return [int(m.group(1)) for m in _STEP_LINE.finditer(text)]


def _checkpoint_step(model_dir):
  return int(
      tf.train.load_variable(
          tf.train.latest_checkpoint(model_dir), 'global_step'
      )
  )


class PreemptionTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.base = tempfile.mkdtemp(dir=self.get_temp_dir())
    self.model_dir = os.path.join(self.base, 'run')

  def start(self, name, command, evaluator=False):
    process = _Process(
        command,
        os.path.join(self.base, f'{name}.log'),
        _evaluator_env() if evaluator else None,
    )
    self.addCleanup(process.close)
    return process

  def test_sigterm_checkpoints_the_step_in_flight_and_resume_loses_none(self):
    first = self.start(
        'first',
        _command(
            self.model_dir,
            'TRAIN_STEPS=1000000',
            'RunSettings.save_checkpoints_steps=1000000',
        ),
    )
    started = first.wait_for(r'\] step (2\d)/')
    self.assertIsNotNone(started, first.text()[-3000:])
    first.proc.send_signal(signal.SIGTERM)
    code = first.wait()
    text = first.text()
    self.assertEqual(code, preemption.PREEMPTED_EXIT_CODE, text[-3000:])
    match = re.search(
        r'Preempted by SIGTERM at global step (\d+); wrote checkpoint (\S+)\.'
        r' Run the same command again to resume\. Exiting with status 75',
        text,
    )
    self.assertIsNotNone(match, text[-3000:])
    step = int(match.group(1))
    # The checkpoint holds exactly the last step this process took.
    self.assertEqual(_checkpoint_step(self.model_dir), step)
    self.assertEqual(max(_steps(text)), step)

    second = self.start(
        'second', _command(self.model_dir, f'TRAIN_STEPS={step + 5}')
    )
    self.assertEqual(second.wait(), 0, second.text()[-3000:])
    resumed = _steps(second.text())
    # It resumes from the preemption checkpoint: no step lost, none redone.
    self.assertEqual(resumed, list(range(step + 1, step + 6)))
    self.assertEqual(_checkpoint_step(self.model_dir), step + 5)

  def test_resume_logs_its_step_and_keeps_the_evaluation_grid(self):
    grid = 50
    first = self.start(
        'first',
        _command(
            self.model_dir,
            'TRAIN_STEPS=1000000',
            f'RunSettings.save_checkpoints_steps={grid}',
        ),
    )
    self.assertIsNotNone(first.wait_for(r'\] step 1\d/'), first.text()[-3000:])
    first.proc.send_signal(signal.SIGTERM)
    self.assertEqual(first.wait(), preemption.PREEMPTED_EXIT_CODE)
    step = _checkpoint_step(self.model_dir)
    self.assertLess(step, grid, 'preempted too late for this test')

    second = self.start(
        'second',
        _command(
            self.model_dir,
            f'TRAIN_STEPS={2 * grid}',
            f'RunSettings.save_checkpoints_steps={grid}',
        ),
    )
    self.assertEqual(second.wait(), 0, second.text()[-3000:])
    text = second.text()
    self.assertRegex(
        text,
        r'Resuming from global step %d \(checkpoint \S+model\.ckpt-%d\)\.'
        % (step, step),
    )
    self.assertIn(
        'Checkpoints, evaluations and exports stay on the grid of every %d'
        ' steps: the next is at step %d.' % (grid, grid),
        text,
    )
    evaluated = [int(m) for m in re.findall(r'evaluation at step (\d+):', text)]
    self.assertEqual(evaluated, [grid, 2 * grid], text[-3000:])
    exported = sorted(
        layout.read_metadata(v.path)['global_step']
        for v in layout.list_exports(self.model_dir)['latest']
    )
    self.assertEqual(exported, [grid, 2 * grid])

  def test_export_killed_midway_is_redone_on_restart(self):
    child = self.start(
        'child',
        [
            sys.executable,
            os.path.abspath(__file__),
            'child',
            self.model_dir,
        ],
    )
    self.assertIsNotNone(child.wait_for(_HANG_MARKER), child.text()[-3000:])
    pending = preemption.read_pending(os.path.join(self.model_dir, 'eval'))
    self.assertIsNotNone(pending)
    child.proc.send_signal(signal.SIGKILL)
    child.wait()

    restart = self.start(
        'restart',
        _command(
            self.model_dir,
            'TRAIN_STEPS=6',
            'RunSettings.save_checkpoints_steps=3',
        ),
    )
    self.assertEqual(restart.wait(), 0, restart.text()[-3000:])
    self.assertIn(
        f'Redoing the evaluation and exports of {pending}', restart.text()
    )
    for name in ('best', 'latest'):
      base = os.path.join(self.model_dir, 'export', name)
      names = os.listdir(base)
      self.assertEmpty(
          [n for n in names if n.startswith('temp-')], f'leftovers in {base}'
      )
    latest = os.path.join(self.model_dir, 'export', 'latest')
    exported = [
        layout.read_metadata(os.path.join(latest, n))['checkpoint_path']
        for n in sorted(os.listdir(latest))
    ]
    self.assertIn(pending, exported)
    self.assertLen(set(exported), len(exported), 'a checkpoint exported twice')
    self.assertIsNone(
        preemption.read_pending(os.path.join(self.model_dir, 'eval'))
    )

  def test_evaluator_stops_on_sigterm_and_redoes_the_interrupted_export(self):
    trained = self.start(
        'train',
        _command(
            self.model_dir,
            'TRAIN_STEPS=6',
            'RunSettings.save_checkpoints_steps=3',
            'Experiment.exporter_fns=[]',
        ),
    )
    self.assertEqual(trained.wait(), 0, trained.text()[-3000:])
    final = os.path.join(self.model_dir, 'model.ckpt-6')
    # An evaluator of a longer run: it evaluates model.ckpt-6, hangs in its
    # first export, and is preempted there.
    evaluator = self.start(
        'evaluator',
        [
            sys.executable,
            os.path.abspath(__file__),
            'evaluator_child',
            self.model_dir,
        ],
        evaluator=True,
    )
    self.assertIsNotNone(
        evaluator.wait_for(_HANG_MARKER), evaluator.text()[-3000:]
    )
    evaluator.proc.send_signal(signal.SIGTERM)
    code = evaluator.wait()
    self.assertEqual(
        code, preemption.PREEMPTED_EXIT_CODE, evaluator.text()[-3000:]
    )
    self.assertIn('Preempted by SIGTERM', evaluator.text())
    export_dir = os.path.join(self.model_dir, 'export')
    for name in ('best', 'latest'):
      base = os.path.join(export_dir, name)
      left = os.listdir(base) if os.path.isdir(base) else []
      self.assertEqual(left, [], 'nothing published, no staging left')
    eval_dir = os.path.join(self.model_dir, 'eval')
    self.assertEqual(preemption.read_pending(eval_dir), final)

    restarted = self.start(
        'restarted',
        _command(self.model_dir, 'TRAIN_STEPS=6'),
        evaluator=True,
    )
    self.assertEqual(restarted.wait(), 0, restarted.text()[-3000:])
    self.assertIn(
        f'Redoing the evaluation and exports of {final}', restarted.text()
    )
    for name in ('best', 'latest'):
      base = os.path.join(export_dir, name)
      versions = os.listdir(base)
      # Redone once; the evaluator's own evaluation of the same checkpoint
      # then finds it exported (export_metadata.json) and skips it.
      self.assertLen(versions, 1, name)
      metadata = layout.read_metadata(os.path.join(base, versions[0]))
      self.assertEqual(metadata['checkpoint_path'], final)
    self.assertIsNone(preemption.read_pending(eval_dir))


def _evaluator_env():
  """TF_CONFIG of an evaluator task (it never contacts the cluster)."""
  return {
      'TF_CONFIG': json.dumps({
          'cluster': {'chief': ['127.0.0.1:1']},
          'task': {'type': 'evaluator', 'index': 0},
      })
  }


def _hang_in_first_export():
  # pylint: disable=g-import-not-at-top
  from hub_estimator.export import core

  write_modules = core.write_modules

  def write_then_hang(plan, checkpoint_path, target_dir):
    write_modules(plan, checkpoint_path, target_dir)
    print(_HANG_MARKER, flush=True)
    time.sleep(3600)

  core.write_modules = write_then_hang


def _evaluator_child_main(model_dir):
  """`trainers.train` as an evaluator whose first export hangs."""
  # pylint: disable=g-import-not-at-top
  from absl import app
  from trainers import train

  _hang_in_first_export()
  sys.argv = _command(model_dir, 'TRAIN_STEPS=1000')[2:]
  train.define_flags()
  app.run(train.main)


def _child_main(model_dir):
  """Trains; the first export writes its variables, then hangs."""
  # pylint: disable=g-import-not-at-top
  from hub_estimator import experiment
  from hub_estimator import gin_utils

  _hang_in_first_export()
  gin_utils.parse(
      [_GIN_FILE],
      [
          f"MODEL_DIR='{model_dir}'",
          'TRAIN_STEPS=6',
          'RunSettings.save_checkpoints_steps=3',
      ],
  )
  experiment.run()


if __name__ == '__main__':
  if len(sys.argv) > 1 and sys.argv[1] == 'child':
    _child_main(sys.argv[2])
  elif len(sys.argv) > 1 and sys.argv[1] == 'evaluator_child':
    _evaluator_child_main(sys.argv[2])
  else:
    tf.test.main()
