"""Exports under faults: many writers, full disks, crashes, TF error text.

The full-disk tests export real modules into a small tmpfs they mount (root
only); where mounting is impossible they are skipped and say so.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from unittest import mock

from absl import logging as absl_logging
import tensorflow as tf

from hub_estimator import export
from hub_estimator.export import failures
from hub_estimator.export import layout
from hub_estimator.export import policies
from hub_estimator.export import writer as writer_lib
import export_e2e_test as e2e
import export_writers_worker as worker

_HERE = os.path.dirname(os.path.abspath(__file__))
_REQUIRED = tuple(worker.MODULE_FILES) + ("export_metadata.json",)
# Bounds for waits on events (never budgets for the work itself).
_WORKER_TIMEOUT_SECS = 600


class _Reader(threading.Thread):
  """Polls an export folder every few ms; records partial versions seen.

  A version is partial when a required file is missing while the version
  folder still exists, twice 50 ms apart (a version renamed away meanwhile
  by retention is not partial).
  """

  def __init__(self, base):
    super().__init__(daemon=True)
    self._base = base
    self._halt = threading.Event()
    self.partial = set()
    self.seen = set()
    self.polls = 0

  def _missing(self, version_dir):
    return [
        f
        for f in _REQUIRED
        if not os.path.exists(
            os.path.join(version_dir, f)
            if f == "export_metadata.json"
            else os.path.join(version_dir, worker.MODULE_NAME, f)
        )
    ]

  def run(self):
    while not self._halt.is_set():
      self.polls += 1
      try:
        names = os.listdir(self._base)
      except FileNotFoundError:
        names = []
      for name in names:
        if not layout.is_version_name(name):
          continue
        path = os.path.join(self._base, name)
        self.seen.add(path)
        if self._missing(path) and os.path.isdir(path):
          time.sleep(0.05)
          if self._missing(path) and os.path.isdir(path):
            self.partial.add(path)
      time.sleep(0.003)

  def stop(self):
    self._halt.set()
    self.join(timeout=60)


def _run_writers(base, writers, count, kind, keep):
  """Runs `writers` processes of `count` exports each; returns their records."""
  procs = [
      subprocess.Popen(
          [
              sys.executable,
              os.path.join(_HERE, "export_writers_worker.py"),
              base,
              str(w),
              str(count),
              kind,
              str(keep).lower(),
          ],
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
      )
      for w in range(writers)
  ]
  records = []
  for proc in procs:
    out, err = proc.communicate(timeout=_WORKER_TIMEOUT_SECS)
    if proc.returncode != 0:
      raise AssertionError("a writer failed:\n" + err[-3000:])
    records.extend(json.loads(line) for line in out.splitlines() if line)
  return records


class ManyWritersTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.base = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), "x")

  def test_latest_exports_from_many_processes_all_publish_complete(self):
    reader = _Reader(self.base)
    reader.start()
    try:
      records = _run_writers(self.base, 3, 12, "latest", None)
    finally:
      reader.stop()
    self.assertGreater(reader.polls, 10)
    self.assertEmpty(reader.partial, "partial versions seen by a reader")
    self.assertEqual([r for r in records if r["error"]], [])
    published = [r["path"] for r in records]
    self.assertNotIn(None, published, "an export reported no version")
    # Every reported success is its own, complete, published version.
    self.assertLen(set(published), 36)
    versions = writer_lib.ExportWriter(self.base).versions()
    self.assertCountEqual([v.path for v in versions], published)
    for record in records:
      metadata = export.read_metadata(record["path"])
      self.assertEqual(metadata["checkpoint_path"], record["checkpoint"])
    self.assertLen(os.listdir(self.base), 36, "leftovers")

  def test_best_with_retention_from_many_processes(self):
    reader = _Reader(self.base)
    reader.start()
    try:
      records = _run_writers(self.base, 3, 10, "best", 2)
    finally:
      reader.stop()
    self.assertEmpty(reader.partial, "partial versions seen by a reader")
    self.assertEqual([r for r in records if r["error"]], [])
    successes = [r for r in records if r["path"]]
    self.assertNotEmpty(successes)
    # Every reported success was published: a reader saw it, it is still
    # there, or a writer's retention removed it as a published version (on a
    # busy machine a version can come and go between two polls of a reader).
    removed = {path for r in records for path in r["removed"]}
    for record in successes:
      self.assertIn(
          record["path"],
          reader.seen
          | removed
          | {v.path for v in writer_lib.ExportWriter(self.base).versions()},
      )
    versions = writer_lib.ExportWriter(self.base).versions()
    self.assertBetween(len(versions), 1, 2)
    self.assertEqual(
        sorted(os.listdir(self.base)),
        sorted(os.path.basename(v.path) for v in versions),
    )
    # The best success of all writers is still published.
    best = min(
        successes,
        key=lambda r: export.read_metadata(r["path"])["metrics"]["loss"]
        if os.path.exists(r["path"])
        else float("inf"),
    )
    self.assertIn(best["path"], [v.path for v in versions])


def _mount_tmpfs(test, size_bytes):
  """Mounts a tmpfs of `size_bytes` in a temp folder for the test's life."""
  path = tempfile.mkdtemp(dir=test.get_temp_dir())
  size = -(-size_bytes // 4096) * 4096
  result = subprocess.run(
      ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
      capture_output=True,
      text=True,
      check=False,
  )
  if result.returncode != 0:
    test.skipTest(
        "cannot mount a size-limited tmpfs here (needs root and "
        f"CAP_SYS_ADMIN): {result.stderr.strip()}"
    )
  test.addCleanup(subprocess.run, ["umount", "-l", path], check=False)
  return path


def _disk_usage(path):
  """Bytes of storage the files under `path` occupy (whole blocks)."""
  total = 0
  for folder, _, files in os.walk(path):
    for name in files:
      total += os.stat(os.path.join(folder, name)).st_blocks * 512
  return total


def _fill(path, leave_bytes=0):
  """Writes a file into `path` until its file system has `leave_bytes` free."""
  f = open(os.path.join(path, "filler"), "wb", buffering=0)
  try:
    while shutil.disk_usage(path).free > leave_bytes:
      f.write(b"\0" * 4096)
  except OSError:
    pass
  finally:
    f.close()


def _unrandom(text):
  """`text` without the random parts of staging and temporary file names."""
  return re.sub(
      r"tempstate\d+", "tempstate*", re.sub(r"temp-[^/]+", "temp-*", text)
  )


class FullDiskTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model_dir = tempfile.mkdtemp()
    e2e._train_and_evaluate(cls.model_dir, 6, [])
    # Steps 2, 4 and 6 (exporters never publish the untrained step 0).
    cls.checkpoints = sorted(
        (
            p[: -len(".index")]
            for p in tf.io.gfile.glob(
                os.path.join(cls.model_dir, "model.ckpt-*.index")
            )
            if not p.endswith("-0.index")
        ),
        key=lambda p: int(p.rsplit("-", 1)[1]),
    )
    cls.estimator = e2e._estimator(cls.model_dir)
    sample = os.path.join(cls.model_dir, "sample")
    path = export.LatestModuleExporter("s", e2e._serving_input_fn).export(
        cls.estimator, sample, cls.checkpoints[0]
    )
    cls.version_bytes = _disk_usage(path.decode())

  def export(self, exporter, base, checkpoint, eval_result=None):
    with self.assertLogs(absl_logging.get_absl_logger(), "INFO") as logs:
      path = exporter.export(self.estimator, base, checkpoint, eval_result)
    return path, "\n".join(logs.output)

  def test_full_disk_makes_room_by_retention_and_retries(self):
    mount = _mount_tmpfs(self, int(2.6 * self.version_bytes))
    base = os.path.join(mount, "latest")
    exporter = export.LatestModuleExporter(
        "latest", e2e._serving_input_fn, exports_to_keep=2
    )
    first, _ = self.export(exporter, base, self.checkpoints[0])
    second, _ = self.export(exporter, base, self.checkpoints[1])
    third, log = self.export(exporter, base, self.checkpoints[2])
    self.assertIsNotNone(third, log)
    self.assertIn("the disk is full", log)
    self.assertEqual(
        [v.path for v in writer_lib.ExportWriter(base).versions()],
        [second.decode(), third.decode()],
    )
    self.assertFalse(os.path.exists(first.decode()))
    self.assertLen(os.listdir(base), 2, "staging left behind")

  def test_full_disk_error_names_folder_size_and_cause(self):
    mount = _mount_tmpfs(self, 4 * self.version_bytes)
    base = os.path.join(mount, "best")
    _fill(mount)
    exporter = export.BestModuleExporter("best", e2e._serving_input_fn)
    checkpoint = self.checkpoints[-1]
    path, log = self.export(exporter, base, checkpoint, {"loss": 1.0})
    self.assertIsNone(path)  # Training goes on.
    errors = [line for line in log.splitlines() if line.startswith("ERROR")]
    self.assertLen(errors, 1, log)
    error = errors[0]
    for part in (
        "failed to export checkpoint " + checkpoint,
        "into " + base,
        "The disk is full",
        "bytes are free on %s now" % base,
        "the export needs about",
        "No space left on device",
        "Error: ",  # The exception class, e.g. ResourceExhaustedError.
    ):
      self.assertIn(part, error)
    self.assertNotIn("Graph execution error", error)
    self.assertEqual(os.listdir(base), [], "staging left behind")
    loud = export.BestModuleExporter(
        "best", e2e._serving_input_fn, raise_on_failure=True
    )
    with self.assertRaises(export.ExportError) as raised:
      loud.export(self.estimator, base, checkpoint, {"loss": 1.0})
    # The same text, but for the (random) staging folder in the cause.
    self.assertIn(_unrandom(str(raised.exception)), _unrandom(error))
    needed = int(re.search(r"needs about (\d+) bytes", error).group(1))
    free = int(re.search(r"(\d+) bytes are free on", error).group(1))
    self.assertGreater(needed, free)

  def test_bytes_needed_counts_sibling_versions_and_whole_blocks(self):
    # Half a version free: the estimate must not read as less than is free.
    mount = _mount_tmpfs(self, 4 * self.version_bytes)
    sibling, _ = self.export(
        export.LatestModuleExporter("latest", e2e._serving_input_fn),
        os.path.join(mount, "export", "latest"),
        self.checkpoints[0],
    )
    _fill(mount, leave_bytes=self.version_bytes // 2)
    base = os.path.join(mount, "export", "best")
    exporter = export.BestModuleExporter("best", e2e._serving_input_fn)
    path, log = self.export(exporter, base, self.checkpoints[-1], {"loss": 1.0})
    self.assertIsNone(path)
    (error,) = [line for line in log.splitlines() if line.startswith("ERROR")]
    needed = int(re.search(r"needs about (\d+) bytes on disk", error).group(1))
    free = int(re.search(r"(\d+) bytes are free on %s now" % base, error)[1])
    self.assertGreaterEqual(needed, _disk_usage(sibling.decode()), error)
    self.assertGreater(needed, free, error)
    self.assertEqual(needed % os.statvfs(mount).f_frsize, 0, error)
    self.assertNotIn("a retry may succeed", error)
    self.assertRegex(
        error, r"more than the \d+ bytes it had staged plus the \d+ bytes free"
    )


class ErrorCauseTest(tf.test.TestCase):

  def test_graph_execution_error_keeps_its_cause(self):
    message = (
        "Graph execution error:\n\nDetected at node 'SaveV2' defined at (most"
        ' recent call last):\n    File "x.py", line 5, in <module>\nNode:'
        " 'SaveV2'\n/m/variables.data-00000-of-00001.tempstate1; No space"
        " left on device\n\t [[{{node SaveV2}}]]\nHint: If you want to see a"
        " list of allocated tensors when OOM happens, add ..."
    )
    error = tf.errors.ResourceExhaustedError(None, None, message)
    self.assertEqual(
        failures.error_cause(error),
        "ResourceExhaustedError: /m/variables.data-00000-of-00001.tempstate1;"
        " No space left on device",
    )
    self.assertTrue(failures.is_disk_full(error))
    self.assertFalse(
        failures.is_disk_full(tf.errors.NotFoundError(None, None, "x"))
    )
    self.assertEqual(
        failures.error_cause(PermissionError(13, "Permission denied")),
        "PermissionError: [Errno 13] Permission denied",
    )


class CrashBetweenPublishAndRetentionTest(tf.test.TestCase):

  def test_next_export_call_restores_exports_to_keep(self):
    base = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), "best")
    exporter = policies.BestModuleExporter("best", lambda: None)
    plan = types.SimpleNamespace(
        modules=[types.SimpleNamespace(export_name=worker.MODULE_NAME)],
        graph=tf.Graph(),
    )
    with (
        mock.patch.object(policies.core.PLANS, "get", return_value=plan),
        mock.patch.object(
            policies.core,
            "write_modules",
            side_effect=worker._slow_write_modules,
        ),
    ):
      exporter.export(None, base, "/c/model.ckpt-1", {"loss": 2.0})
      # The process dies right after publishing step 2: no retention.
      with mock.patch.object(
          policies.ModuleExporter,
          "_apply_retention",
          side_effect=[None, SystemExit("killed")],
      ):
        with self.assertRaises(SystemExit):
          exporter.export(None, base, "/c/model.ckpt-2", {"loss": 1.0})
      self.assertLen(writer_lib.ExportWriter(base).versions(), 2)
      # A restarted exporter whose evaluation does not export anything
      # still brings the folder back to exports_to_keep=1, keeping the best.
      restarted = policies.BestModuleExporter("best", lambda: None)
      self.assertIsNone(
          restarted.export(None, base, "/c/model.ckpt-3", {"loss": 3.0})
      )
    versions = writer_lib.ExportWriter(base).versions()
    self.assertLen(versions, 1)
    self.assertEqual(
        export.read_metadata(versions[0].path)["checkpoint_path"],
        "/c/model.ckpt-2",
    )


if __name__ == "__main__":
  tf.test.main()
