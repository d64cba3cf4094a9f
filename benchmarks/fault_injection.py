r"""Fault injection: kills writers mid-export, preempts a trainer; counts damage.

    .venv/bin/python benchmarks/fault_injection.py [--writers 3] \
        [--kills 20] [--preemptions 3]

Part 1, many writers under SIGKILL. A small estimator is trained (one
checkpoint per step); then `--writers` processes export its checkpoints with
`LatestModuleExporter(exports_to_keep=4)` into ONE export folder, in a loop,
while the runner SIGKILLs a random writer every 0.2-1.5 s (and starts a new one
in its place) until `--kills` kills, and a reader thread polls the folder
every 3 ms. Then every writer is stopped and one more export cleans up.
Printed: kills survived, exports published, partial versions seen by the
reader (a version folder missing a module file or export_metadata.json), the
versions above exports_to_keep at the end, and staging leftovers after the
clean-up export (abandoned staging of killed writers must all be gone).

Part 2, preemption. `python -m trainers.train` (the digits MLP, no periodic
checkpoints) is sent SIGTERM after a few steps, `--preemptions` times, each
time resumed by the same command. Printed: exit statuses, and the steps lost
(last step logged before the signal minus the step of the checkpoint it
wrote, plus steps repeated or skipped on resume).
"""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODULE = "dense"
_REQUIRED = (
    "export_metadata.json",
    f"{_MODULE}/tfhub_module.pb",
    f"{_MODULE}/saved_model.pb",
    f"{_MODULE}/variables/variables.index",
)
_STEP_LINE = re.compile(r"\] step (\d+)/(\d+) ")


def _estimator(model_dir):
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import hub_estimator as hub

  def module_fn():
    x = tf.compat.v1.placeholder(tf.float32, [None, 16])
    hub.add_signature(inputs=x, outputs=tf.compat.v1.layers.dense(x, 64))

  spec = hub.create_module_spec(module_fn)

  def model_fn(features, labels, mode):
    module = hub.Module(spec, trainable=True)
    logits = module(features["x"])
    hub.register_module_for_export(module, _MODULE)
    if mode == tf.estimator.ModeKeys.PREDICT:
      return tf.estimator.EstimatorSpec(mode, predictions=logits)
    loss = tf.reduce_mean(tf.square(logits - tf.cast(labels, tf.float32)))
    train_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(
        loss, tf.compat.v1.train.get_global_step()
    )
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

  config = tf.estimator.RunConfig(
      save_checkpoints_steps=1, keep_checkpoint_max=None, tf_random_seed=0
  )
  return tf.estimator.Estimator(model_fn, model_dir, config=config)


def _serving_input_fn():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  x = tf.compat.v1.placeholder(tf.float32, [None, 16])
  return tf.estimator.export.ServingInputReceiver({"x": x}, x)


def _train(model_dir, steps):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def input_fn():
    x = np.random.RandomState(0).randn(8, 16).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices(({"x": x}, x[:, :1])).repeat()

  _estimator(model_dir).train(lambda: input_fn().batch(8), max_steps=steps)


def _checkpoints(model_dir):
  names = [
      n[: -len(".index")]
      for n in os.listdir(model_dir)
      if n.startswith("model.ckpt-") and n.endswith(".index")
  ]
  return [os.path.join(model_dir, n) for n in names]


def _writer_main(model_dir, export_dir, seed):
  """One writer: exports random checkpoints into `export_dir` forever."""
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top

  estimator = _estimator(model_dir)
  exporter = hub.LatestModuleExporter(
      "latest", _serving_input_fn, exports_to_keep=4
  )
  rng = random.Random(int(seed))
  checkpoints = _checkpoints(model_dir)
  while True:
    path = exporter.export(estimator, export_dir, rng.choice(checkpoints))
    if path:
      print("PUBLISHED", path.decode(), flush=True)


class _Reader(threading.Thread):
  """Polls an export folder; records version folders seen incomplete."""

  def __init__(self, base):
    super().__init__(daemon=True)
    self.base = base
    self.halt = threading.Event()
    self.partial = set()
    self.polls = 0

  def _missing(self, path):
    return [f for f in _REQUIRED if not os.path.exists(os.path.join(path, f))]

  def run(self):
    while not self.halt.is_set():
      self.polls += 1
      try:
        names = os.listdir(self.base)
      except FileNotFoundError:
        names = []
      for name in names:
        if not (len(name) == 10 and name.isdigit()):
          continue
        path = os.path.join(self.base, name)
        # Gone meanwhile (retention) is not partial; still there is.
        if self._missing(path) and os.path.isdir(path):
          time.sleep(0.05)
          if self._missing(path) and os.path.isdir(path):
            self.partial.add(path)
      time.sleep(0.003)


def _start_writer(model_dir, export_dir, seed, log_dir):
  log = open(os.path.join(log_dir, f"writer-{seed}.log"), "wb")
  proc = subprocess.Popen(
      [sys.executable, __file__, "--writer", model_dir, export_dir, str(seed)],
      stdout=log,
      stderr=subprocess.STDOUT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"),
  )
  proc.log_path = log.name
  log.close()
  return proc


def _published(log_dir):
  count = 0
  for name in os.listdir(log_dir):
    with open(os.path.join(log_dir, name), errors="replace") as f:
      count += f.read().count("PUBLISHED ")
  return count


def many_writers(work, writers, kills):
  """Part 1; returns a dict of figures."""
  model_dir = os.path.join(work, "model")
  export_dir = os.path.join(work, "export", "latest")
  log_dir = os.path.join(work, "writer_logs")
  os.makedirs(log_dir)
  _train(model_dir, 12)
  reader = _Reader(export_dir)
  reader.start()
  rng = random.Random(0)
  seed = 0
  procs = []
  for _ in range(writers):
    procs.append(_start_writer(model_dir, export_dir, seed, log_dir))
    seed += 1
  # Wait until exports flow before killing (a busy machine starts slowly).
  deadline = time.monotonic() + 600
  while _published(log_dir) < writers and time.monotonic() < deadline:
    time.sleep(0.5)
  done = 0
  staging_at_kill = 0
  while done < kills:
    time.sleep(rng.uniform(0.2, 1.5))
    victim = rng.randrange(len(procs))
    staging_at_kill += sum(
        n.startswith("temp-") for n in os.listdir(export_dir)
    )
    procs[victim].send_signal(signal.SIGKILL)
    procs[victim].wait()
    done += 1
    procs[victim] = _start_writer(model_dir, export_dir, seed, log_dir)
    seed += 1
  time.sleep(2)
  for proc in procs:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  reader.halt.set()
  reader.join()
  before_cleanup = sorted(
      n for n in os.listdir(export_dir) if n.startswith("temp-")
  )
  # One more export: abandoned staging folders of killed writers go.
  import hub_estimator as hub  # pylint: disable=g-import-not-at-top

  checkpoint = sorted(_checkpoints(model_dir))[0]
  hub.LatestModuleExporter(
      "latest", _serving_input_fn, exports_to_keep=4
  ).export(_estimator(model_dir), export_dir, checkpoint)
  names = os.listdir(export_dir)
  return {
      "writers": writers,
      "kills survived": done,
      "exports published": _published(log_dir),
      "reader polls": reader.polls,
      "partial versions seen": len(reader.partial),
      "staging folders seen at kill time (sum)": staging_at_kill,
      "staging left by killed writers before clean-up": len(before_cleanup),
      "leftovers after one more export": sum(
          n.startswith("temp-") for n in names
      ),
      "versions at the end (exports_to_keep=4)": sum(
          len(n) == 10 and n.isdigit() for n in names
      ),
  }


def _trainer(model_dir, train_steps, log_path):
  log = open(log_path, "wb")
  proc = subprocess.Popen(
      [
          sys.executable,
          "-m",
          "trainers.train",
          "--gin_file=gin/experiments/digits_mlp.gin",
          f"--gin_param=MODEL_DIR='{model_dir}'",
          f"--gin_param=TRAIN_STEPS={train_steps}",
          "--gin_param=RunSettings.save_checkpoints_steps=1000000",
          "--gin_param=RunSettings.log_every_n_steps=1",
      ],
      cwd=_REPO_ROOT,
      stdout=log,
      stderr=subprocess.STDOUT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"),
  )
  log.close()
  return proc


def _steps(log_path):
  with open(log_path, errors="replace") as f:
    return [int(m.group(1)) for m in _STEP_LINE.finditer(f.read())]


def preemptions(work, count):
  """Part 2; returns a dict of figures."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  model_dir = os.path.join(work, "trainer")
  lost = 0
  codes = []
  previous = 0
  for i in range(count):
    log_path = os.path.join(work, f"trainer-{i}.log")
    proc = _trainer(model_dir, 1000000, log_path)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
      steps = _steps(log_path)
      if steps and steps[-1] >= previous + 20:
        break
      time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    codes.append(proc.wait(timeout=600))
    steps = _steps(log_path)
    checkpoint = tf.train.latest_checkpoint(model_dir)
    saved = int(tf.train.load_variable(checkpoint, "global_step"))
    # Lost: stepped but not saved; or resumed elsewhere than where it was.
    lost += max(steps) - saved
    lost += abs(steps[0] - (previous + 1)) if steps else 0
    previous = saved
  return {
      "preemptions": count,
      "exit statuses": codes,
      "steps lost": lost,
      "global step reached": previous,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--writers", type=int, default=3)
  parser.add_argument("--kills", type=int, default=20)
  parser.add_argument("--preemptions", type=int, default=3)
  args = parser.parse_args()
  work = tempfile.mkdtemp(prefix="fault_injection_")
  try:
    figures = many_writers(work, args.writers, args.kills)
    print("many writers under SIGKILL:")
    for key, value in figures.items():
      print(f"  {key}: {value}")
    figures = preemptions(work, args.preemptions)
    print("trainer under SIGTERM:")
    for key, value in figures.items():
      print(f"  {key}: {value}")
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  if len(sys.argv) > 1 and sys.argv[1] == "--writer":
    _writer_main(*sys.argv[2:5])
  else:
    main()
