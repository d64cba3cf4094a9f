"""Policy tests for the hub-module exporters, driven by scripted evals."""

import errno
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import types
from unittest import mock

import gin
import numpy as np
import psutil
import tensorflow as tf

from hub_estimator.export import core
from hub_estimator.export import failures
from hub_estimator.export import layout
from hub_estimator.export import ownership
from hub_estimator.export import policies
from hub_estimator.export import registry
from hub_estimator.export import retention
from hub_estimator.export import writer as writer_lib
from hub_estimator.format import protos
from google.protobuf import wrappers_pb2
from tensorflow.core.protobuf import saved_model_pb2


def _serving_input_fn():
  raise AssertionError("the fake export core never builds a graph")


_MODULE_SOURCE = {
    "source": "RunExportSource",
    "run": "/runs/publisher",
    "version": "1700000000",
    "fine_tuning": {"learning_rate_multiplier": 0.1, "frozen_steps": 5},
}


def _fake_write_modules(plan, checkpoint_path, target_dir):
  """Writes a minimal module folder per planned module (no TensorFlow graph)."""
  paths = []
  for module in plan.modules:
    path = os.path.join(target_dir, module.export_name)
    tf.io.gfile.makedirs(os.path.join(path, "variables"))
    saved_model = saved_model_pb2.SavedModel()
    saved_model.meta_graphs.add()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(saved_model.SerializeToString())
    with tf.io.gfile.GFile(os.path.join(path, "CHECKPOINT"), "w") as f:
      f.write(checkpoint_path)
    paths.append(path)
  return paths


def _dead_process_staging(base):
  """A staging folder name owned by a process of this host that has ended."""
  child = subprocess.Popen([sys.executable, "-c", "pass"])
  started = psutil.Process(child.pid).create_time()
  child.wait()
  return os.path.join(
      base,
      "temp-%d-abc-%d-%d-%s"
      % (time.time(), child.pid, started, ownership.current_owner().host),
  )


class _PolicyTestCase(tf.test.TestCase):
  """Runs exporters against a fake core and a mock estimator."""

  def setUp(self):
    super().setUp()
    gin.clear_config()
    self.base = os.path.join(
        tempfile.mkdtemp(dir=self.get_temp_dir()), "export", "x"
    )
    self.now = 1_700_000_000.0
    self.estimator = mock.Mock(spec=tf.estimator.Estimator)
    self.estimator.latest_checkpoint.return_value = "/ckpt/model.ckpt-1"
    self.eval_dir = os.path.join(
        os.path.dirname(os.path.dirname(self.base)), "eval"
    )
    self.estimator.eval_dir.return_value = self.eval_dir
    graph = tf.Graph()
    with graph.as_default():  # As a consumer's module source records it.
      registry.record_module_source(_MODULE_SOURCE)
    plan = types.SimpleNamespace(
        modules=[types.SimpleNamespace(export_name="embedding")], graph=graph
    )
    self.plan_get = self.enter_context(
        mock.patch.object(core.PLANS, "get", return_value=plan)
    )
    self.write_modules = self.enter_context(
        mock.patch.object(
            core, "write_modules", side_effect=_fake_write_modules
        )
    )
    self.enter_context(
        # The clock of the exporters' decisions and version names only (the
        # staging leases keep the wall clock).
        mock.patch.object(policies, "time", wraps=time)
    )
    policies.time.time.side_effect = lambda: self.now
    self.enter_context(mock.patch.object(writer_lib, "time", wraps=time))
    writer_lib.time.time.side_effect = lambda: self.now
    # Publishing must never sleep, even when versions collide.
    self.enter_context(
        mock.patch("time.sleep", side_effect=AssertionError("the writer slept"))
    )

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def export(self, exporter, step, metrics=None, final=False, tick=1.0):
    """Exports the checkpoint of `step` with eval results `metrics`."""
    self.now += tick
    eval_result = dict(metrics or {}, global_step=np.int64(step))
    return exporter.export(
        self.estimator,
        self.base,
        "/ckpt/model.ckpt-%d" % step,
        eval_result,
        final,
    )

  def versions(self):
    return writer_lib.ExportWriter(self.base).versions()

  def exported_steps(self):
    return [
        layout.read_metadata(v.path)["global_step"] for v in self.versions()
    ]

  def listing(self):
    return sorted(tf.io.gfile.listdir(self.base))


class LatestModuleExporterTest(_PolicyTestCase):

  def test_exports_every_call_and_keeps_newest(self):
    exporter = policies.LatestModuleExporter(
        "latest", _serving_input_fn, exports_to_keep=2
    )
    paths = [
        self.export(exporter, step, {"loss": 1.0}, tick=0.0)
        for step in (1, 2, 3)
    ]
    self.assertTrue(all(isinstance(p, bytes) for p in paths))
    self.assertEqual(self.exported_steps(), [2, 3])
    # Same second three times: names still increase and never collide.
    self.assertEqual(
        [v.version for v in self.versions()],
        [int(self.now) + 1, int(self.now) + 2],
    )
    self.assertTrue(
        os.path.isfile(
            os.path.join(paths[-1].decode(), "embedding", "saved_model.pb")
        )
    )

  def test_never_publishes_an_untrained_checkpoint(self):
    for exporter in (
        policies.LatestModuleExporter("latest", _serving_input_fn),
        policies.BestModuleExporter("best", _serving_input_fn),
    ):
      with self.assertLogs(level="WARNING") as logs:
        self.assertIsNone(self.export(exporter, 0, {"loss": 1.0}))
      self.assertIn("it is at global step 0", "\n".join(logs.output))
      self.assertIn("untrained module", "\n".join(logs.output))
    self.assertEqual(self.versions(), [])
    self.write_modules.assert_not_called()

  def test_uses_latest_checkpoint_when_none_given(self):
    exporter = policies.LatestModuleExporter("latest", _serving_input_fn)
    path = exporter.export(self.estimator, self.base)
    metadata = layout.read_metadata(path.decode())
    self.assertEqual(metadata["checkpoint_path"], "/ckpt/model.ckpt-1")
    self.assertEqual(metadata["global_step"], 1)

  def test_none_keeps_all(self):
    exporter = policies.LatestModuleExporter(
        "latest", _serving_input_fn, exports_to_keep=None
    )
    for step in range(1, 8):
      self.export(exporter, step)
    self.assertLen(self.versions(), 7)

  def test_zero_registered_modules_creates_nothing(self):
    self.plan_get.return_value = types.SimpleNamespace(modules=[])
    exporter = policies.LatestModuleExporter("latest", _serving_input_fn)
    with self.assertLogs(level="WARNING") as logs:
      self.assertIsNone(self.export(exporter, 1))
    self.assertIn("register_module_for_export", "\n".join(logs.output))
    self.assertFalse(tf.io.gfile.exists(self.base))

  def test_rejects_bad_exports_to_keep(self):
    for bad in (0, -1, 1.5, True):
      with self.assertRaisesRegex(ValueError, "exports_to_keep"):
        policies.LatestModuleExporter(
            "latest", _serving_input_fn, exports_to_keep=bad
        )


class BestModuleExporterTest(_PolicyTestCase):

  def test_exports_only_improvements_and_ties_do_not_export(self):
    exporter = policies.BestModuleExporter(
        "best", _serving_input_fn, exports_to_keep=None
    )
    results = [
        self.export(exporter, step, {"loss": loss})
        for step, loss in enumerate([3.0, 2.0, 2.0, 2.5, 1.0], 1)
    ]
    self.assertEqual(
        [r is not None for r in results], [True, True, False, False, True]
    )
    self.assertEqual(self.exported_steps(), [1, 2, 5])

  def test_keeps_top_k(self):
    exporter = policies.BestModuleExporter(
        "best", _serving_input_fn, exports_to_keep=2
    )
    for step, loss in enumerate([3.0, 2.0, 4.0, 1.0, 1.5, 0.5], 1):
      self.export(exporter, step, {"loss": np.float32(loss)})
    self.assertEqual(self.exported_steps(), [4, 6])

  def test_max_mode(self):
    exporter = policies.BestModuleExporter(
        "best", _serving_input_fn, metric="accuracy", mode="max"
    )
    for step, acc in enumerate([0.5, 0.7, 0.6, 0.7, 0.9], 1):
      self.export(exporter, step, {"accuracy": acc, "loss": 1.0})
    self.assertEqual(self.exported_steps(), [5])

  def test_min_delta(self):
    exporter = policies.BestModuleExporter(
        "best", _serving_input_fn, min_delta=0.1, exports_to_keep=None
    )
    for step, loss in enumerate([1.0, 0.95, 0.9, 0.85], 1):
      self.export(exporter, step, {"loss": loss})
    # 0.95 and 0.9 are within 0.1 of 1.0 (0.9 is exactly 0.1: not more).
    self.assertEqual(self.exported_steps(), [1, 4])

  def test_nan_is_never_best(self):
    exporter = policies.BestModuleExporter("best", _serving_input_fn)
    self.assertIsNone(self.export(exporter, 1, {"loss": float("nan")}))
    self.assertIsNotNone(self.export(exporter, 2, {"loss": 5.0}))
    self.assertIsNone(self.export(exporter, 3, {"loss": np.float32("nan")}))
    self.assertEqual(self.exported_steps(), [2])

  def test_restart_never_publishes_worse(self):
    first = policies.BestModuleExporter("best", _serving_input_fn)
    self.export(first, 1, {"loss": 2.0})
    self.export(first, 2, {"loss": 1.0})
    # A new process: a fresh exporter with no memory of the previous one.
    restarted = policies.BestModuleExporter("best", _serving_input_fn)
    self.assertIsNone(self.export(restarted, 3, {"loss": 1.5}))
    self.assertIsNone(self.export(restarted, 4, {"loss": 1.0}))
    self.assertEqual(self.exported_steps(), [2])
    self.assertIsNotNone(self.export(restarted, 5, {"loss": 0.5}))
    self.assertEqual(self.exported_steps(), [5])

  def test_retention_ranks_by_metric_not_age(self):
    # A first run ranked by loss; the second by accuracy. The newest versions
    # are not the most accurate ones, and the best is never deleted.
    by_loss = policies.BestModuleExporter(
        "best", _serving_input_fn, exports_to_keep=None
    )
    for step, loss, acc in [(1, 3.0, 0.5), (2, 2.0, 0.9), (3, 1.0, 0.7)]:
      self.export(by_loss, step, {"loss": loss, "accuracy": acc})
    by_acc = policies.BestModuleExporter(
        "best",
        _serving_input_fn,
        metric="accuracy",
        mode="max",
        exports_to_keep=2,
    )
    # Retention runs at every export call, exported or not: the least
    # accurate version (step 1) goes although the newest is kept.
    self.assertIsNone(self.export(by_acc, 4, {"loss": 0.1, "accuracy": 0.8}))
    self.assertEqual(self.exported_steps(), [2, 3])
    self.export(by_acc, 5, {"loss": 0.1, "accuracy": 0.95})
    self.assertEqual(self.exported_steps(), [2, 5])
    self.assertEqual(by_acc.best_so_far(self.base)[0], 0.95)

  def test_retention_keeps_versions_it_cannot_rank(self):
    exporter = policies.BestModuleExporter("best", _serving_input_fn)
    foreign = os.path.join(self.base, "1000000000")
    tf.io.gfile.makedirs(foreign)
    self.export(exporter, 1, {"loss": 2.0})
    self.export(exporter, 2, {"loss": 1.0})
    self.assertTrue(tf.io.gfile.exists(foreign))
    self.assertLen(self.versions(), 2)
    self.assertEqual(
        layout.read_metadata(self.versions()[1].path)["global_step"], 2
    )

  def test_missing_metric_lists_available_metrics(self):
    exporter = policies.BestModuleExporter(
        "best", _serving_input_fn, metric="acc"
    )
    with self.assertRaisesRegex(
        ValueError,
        r"metric 'acc' is not in the evaluation results\. "
        r"Available metrics: accuracy, global_step, loss",
    ):
      self.export(exporter, 1, {"loss": 1.0, "accuracy": 0.5})
    self.assertFalse(tf.io.gfile.exists(self.base))

  def test_rejects_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "mode must be 'min' or 'max'"):
      policies.BestModuleExporter("best", _serving_input_fn, mode="minimum")
    with self.assertRaisesRegex(ValueError, "min_delta"):
      policies.BestModuleExporter("best", _serving_input_fn, min_delta=-0.1)
    with self.assertRaisesRegex(ValueError, "serving_input_fn"):
      policies.BestModuleExporter("best", None)
    with self.assertRaisesRegex(ValueError, "name"):
      policies.BestModuleExporter("", _serving_input_fn)


class PeriodicModuleExporterTest(_PolicyTestCase):

  def test_every_n_steps_and_always_final(self):
    exporter = policies.PeriodicModuleExporter(
        "periodic", _serving_input_fn, every_n_steps=300
    )
    for step in range(100, 1001, 100):
      self.export(exporter, step, {"loss": 1.0}, final=step == 1000)
    self.assertEqual(self.exported_steps(), [300, 600, 900, 1000])

  def test_final_export_is_not_duplicated(self):
    exporter = policies.PeriodicModuleExporter(
        "periodic", _serving_input_fn, every_n_steps=100
    )
    self.export(exporter, 100, {})
    self.assertIsNone(self.export(exporter, 100, {}, final=True))
    self.assertEqual(self.exported_steps(), [100])

  def test_every_n_secs(self):
    exporter = policies.PeriodicModuleExporter(
        "periodic", _serving_input_fn, every_n_secs=60
    )
    for step in range(1, 9):
      self.export(exporter, step, {}, tick=25.0)
    # Created at t0; evals at t0+25, +50, +75 (due), +100, +125, +150 (due)...
    self.assertEqual(self.exported_steps(), [3, 6])

  def test_period_carries_over_restart(self):
    exporter = policies.PeriodicModuleExporter(
        "periodic", _serving_input_fn, every_n_steps=100
    )
    self.export(exporter, 100, {})
    restarted = policies.PeriodicModuleExporter(
        "periodic", _serving_input_fn, every_n_steps=100
    )
    self.assertIsNone(self.export(restarted, 150, {}))
    self.assertIsNotNone(self.export(restarted, 200, {}))
    self.assertEqual(self.exported_steps(), [100, 200])

  def test_exports_to_keep(self):
    exporter = policies.PeriodicModuleExporter(
        "periodic", _serving_input_fn, every_n_steps=1, exports_to_keep=3
    )
    for step in range(1, 6):
      self.export(exporter, step, {})
    self.assertEqual(self.exported_steps(), [3, 4, 5])

  def test_needs_a_period(self):
    with self.assertRaisesRegex(ValueError, "every_n_steps or every_n_secs"):
      policies.PeriodicModuleExporter("periodic", _serving_input_fn)
    with self.assertRaisesRegex(ValueError, "every_n_steps must be"):
      policies.PeriodicModuleExporter(
          "periodic", _serving_input_fn, every_n_steps=0
      )
    with self.assertRaisesRegex(ValueError, "every_n_secs must be"):
      policies.PeriodicModuleExporter(
          "periodic", _serving_input_fn, every_n_secs=-5
      )


class FailureAndProvenanceTest(_PolicyTestCase):

  def test_failure_publishes_nothing_and_training_continues(self):
    exporter = policies.LatestModuleExporter("latest", _serving_input_fn)
    self.export(exporter, 1)

    def fail_midway(plan, checkpoint_path, target_dir):
      _fake_write_modules(plan, checkpoint_path, target_dir)
      raise OSError(28, "No space left on device")

    self.write_modules.side_effect = fail_midway
    with self.assertLogs(level="ERROR") as logs:
      self.assertIsNone(self.export(exporter, 2))
    self.assertLen(logs.output, 1)
    self.assertIn("No space left on device", logs.output[0])
    self.assertIn("nothing was published", logs.output[0])
    self.assertLen(self.listing(), 1)  # The first version, no temp folder.
    # Recorded for the run's summary (run_result reads it back).
    (record,) = failures.read_failures(self.eval_dir)
    self.assertEqual(record["exporter"], "latest")
    self.assertEqual(record["global_step"], 2)
    self.assertEqual(record["checkpoint_path"], "/ckpt/model.ckpt-2")
    self.assertEqual(
        record["cause"], "OSError: [Errno 28] No space left on device"
    )
    self.write_modules.side_effect = _fake_write_modules
    self.assertIsNotNone(self.export(exporter, 3))
    self.assertEqual(self.exported_steps(), [1, 3])

  def test_raise_on_failure(self):
    exporter = policies.BestModuleExporter(
        "best", _serving_input_fn, raise_on_failure=True
    )
    self.write_modules.side_effect = PermissionError(13, "Permission denied")
    with self.assertRaisesRegex(policies.ExportError, "Permission denied"):
      self.export(exporter, 1, {"loss": 1.0})
    self.assertEqual(self.listing(), [])

  def test_failed_final_export_raises_even_without_raise_on_failure(self):
    # No later evaluation retries the final one: the run must not end as a
    # success without its module.
    exporter = policies.LatestModuleExporter("latest", _serving_input_fn)
    self.write_modules.side_effect = PermissionError(13, "Permission denied")
    self.assertIsNone(self.export(exporter, 1))  # Not final: logged only.
    with self.assertRaisesRegex(
        policies.ExportError,
        r"Permission denied.*final evaluation.*re-run the same command",
    ):
      self.export(exporter, 2, final=True)
    self.assertEqual(self.listing(), [])
    self.write_modules.side_effect = _fake_write_modules
    self.assertIsNotNone(self.export(exporter, 2, final=True))
    self.assertEqual(self.exported_steps(), [2])

  def test_failed_best_is_not_remembered(self):
    exporter = policies.BestModuleExporter("best", _serving_input_fn)
    self.export(exporter, 1, {"loss": 2.0})
    self.write_modules.side_effect = OSError("disk full")
    self.assertIsNone(self.export(exporter, 2, {"loss": 0.5}))
    self.write_modules.side_effect = _fake_write_modules
    self.assertIsNotNone(self.export(exporter, 3, {"loss": 1.0}))
    self.assertEqual(self.exported_steps(), [3])

  def test_staging_of_a_dead_owner_is_cleaned(self):
    dead = _dead_process_staging(self.base)
    tf.io.gfile.makedirs(os.path.join(dead, "embedding", "variables"))
    exporter = policies.LatestModuleExporter("latest", _serving_input_fn)
    self.export(exporter, 1)
    self.assertFalse(tf.io.gfile.exists(dead))
    self.assertLen(self.listing(), 1)

  def test_abandoned_staging_is_cleaned_even_without_export(self):
    exporter = policies.BestModuleExporter("best", _serving_input_fn)
    self.export(exporter, 1, {"loss": 1.0})
    dead = _dead_process_staging(self.base)
    tf.io.gfile.makedirs(dead)
    # A name without an owner (older versions) goes once past the lease.
    legacy = os.path.join(self.base, "temp-deadbeef")
    tf.io.gfile.makedirs(legacy)
    old = time.time() - ownership.DEFAULT_LEASE_SECS - 60
    os.utime(legacy, (old, old))
    self.assertIsNone(self.export(exporter, 2, {"loss": 2.0}))
    self.assertFalse(tf.io.gfile.exists(dead))
    self.assertFalse(tf.io.gfile.exists(legacy))

  def test_live_staging_of_another_writer_is_kept(self):
    exporter = policies.LatestModuleExporter("latest", _serving_input_fn)
    # A live process on this host (the parent of this one, e.g. pytest's
    # launcher), one on another host, and a fresh folder without an owner.
    parent = psutil.Process(os.getppid())
    live = os.path.join(
        self.base,
        "temp-%d-abc-%d-%d-%s"
        % (
            time.time(),
            parent.pid,
            parent.create_time(),
            ownership.current_owner().host,
        ),
    )
    remote = os.path.join(
        self.base, "temp-%d-abc-1-1-elsewhere.example" % (time.time() - 120)
    )
    legacy = os.path.join(self.base, "temp-deadbeef")
    for path in (live, remote, legacy):
      tf.io.gfile.makedirs(os.path.join(path, "embedding"))
    self.export(exporter, 1)
    for path in (live, remote, legacy):
      self.assertTrue(tf.io.gfile.exists(path), path)
    # Past its lease, the remote owner's folder counts as abandoned.
    writer = writer_lib.ExportWriter(self.base, lease_secs=60)
    self.assertIn(remote, writer.clean_stale_temp_dirs())
    self.assertTrue(tf.io.gfile.exists(live))

  def test_metadata(self):
    exporter = policies.BestModuleExporter(
        "best", _serving_input_fn, metric="auc", mode="max"
    )
    path = self.export(
        exporter,
        7,
        {
            "loss": np.float32(0.25),
            "auc": np.float64(0.75),
            "count": np.int32(3),
            "odd": float("inf"),
            "confusion": np.array([[1, 2], [3, 4]]),
        },
    ).decode()
    with open(os.path.join(path, layout.METADATA_FILENAME)) as f:
      metadata = json.load(f)
    self.assertEqual(metadata["global_step"], 7)
    self.assertEqual(metadata["checkpoint_path"], "/ckpt/model.ckpt-7")
    self.assertEqual(
        metadata["metrics"],
        {
            "loss": 0.25,
            "auc": 0.75,
            "count": 3,
            "odd": "inf",
            "global_step": 7,
            "confusion": [[1, 2], [3, 4]],
        },
    )
    self.assertEqual(
        metadata["exporter"],
        {
            "name": "best",
            "class": "BestModuleExporter",
            "policy": {
                "metric": "auc",
                "mode": "max",
                "min_delta": 0.0,
                "exports_to_keep": 1,
            },
        },
    )
    self.assertEqual(metadata["modules"], ["embedding"])
    self.assertEqual(metadata["created_unix_time"], self.now)
    self.assertIn("tensorflow", metadata["package_versions"])
    self.assertIn("hub-estimator", metadata["package_versions"])
    self.assertIsNone(metadata["gin_config_file"])
    self.assertEqual(metadata["module_sources"], [_MODULE_SOURCE])

  def test_gin_bindings_and_operative_config(self):
    gin.parse_config("""
        hub_estimator.BestModuleExporter.metric = 'accuracy'
        BestModuleExporter.mode = 'max'
        BestModuleExporter.exports_to_keep = 3
        BestModuleExporter.min_delta = 0.01
        PeriodicModuleExporter.every_n_steps = 10
    """)
    exporter = policies.BestModuleExporter("best", _serving_input_fn)
    self.assertEqual(
        exporter.policy,
        {
            "metric": "accuracy",
            "mode": "max",
            "exports_to_keep": 3,
            "min_delta": 0.01,
        },
    )
    self.assertEqual(
        policies.PeriodicModuleExporter("p", _serving_input_fn).policy[
            "every_n_steps"
        ],
        10,
    )
    path = self.export(exporter, 1, {"accuracy": 0.5}).decode()
    metadata = layout.read_metadata(path)
    self.assertEqual(metadata["gin_config_file"], "operative_config.gin")
    with open(os.path.join(path, "operative_config.gin")) as f:
      text = f.read()
    self.assertIn("BestModuleExporter.metric = 'accuracy'", text)
    self.assertTrue(
        text.startswith(
            "# Module source: "
            + json.dumps(_MODULE_SOURCE, sort_keys=True)
            + "\n"
        )
    )
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "embedding", "saved_model.pb"), "rb") as f:
      saved_model.ParseFromString(f.read())
    raw = (
        saved_model.meta_graphs[0]
        .collection_def["hub_module_attachments"]
        .bytes_list.value
    )
    self.assertLen(raw, 1)
    attachment = protos.ModuleAttachment.FromString(raw[0])
    self.assertEqual(attachment.key, "gin_operative_config")
    self.assertIn(
        "BestModuleExporter.mode = 'max'",
        wrappers_pb2.StringValue.FromString(attachment.value).value,
    )


class RegistryTest(tf.test.TestCase):

  def test_register_and_duplicate_names(self):
    with tf.Graph().as_default() as graph:
      first, second = object(), object()
      registry.register_module_for_export(first, "a")
      registry.register_module_for_export(second, "b")
      with self.assertRaisesRegex(
          ValueError, "already a module registered to be exported as 'a'"
      ):
        registry.register_module_for_export(second, "a")
      self.assertEqual(
          registry.get_registered_modules(graph), [("a", first), ("b", second)]
      )
      # Invisible to the string collection keys (never serialized).
      self.assertEqual(graph.get_all_collection_keys(), [])

  def test_rejects_names_that_are_not_folder_names(self):
    with tf.Graph().as_default():
      for bad in ("", "a/b", "..", None):
        with self.assertRaisesRegex(ValueError, "export_name must be"):
          registry.register_module_for_export(object(), bad)

  def test_shares_tensorflow_hub_collection(self):
    import tensorflow_hub as tfhub  # pylint: disable=g-import-not-at-top

    with tf.Graph().as_default() as graph:
      module = object()
      tfhub.register_module_for_export(module, "m")
      self.assertEqual(registry.get_registered_modules(graph), [("m", module)])


class WriterAndRetentionTest(tf.test.TestCase):

  def test_versions_never_collide_nor_sleep(self):
    base = tempfile.mkdtemp(dir=self.get_temp_dir())
    writer = writer_lib.ExportWriter(base)
    self.enter_context(mock.patch.object(writer_lib, "time", wraps=time))
    writer_lib.time.time.side_effect = lambda: 1_700_000_000.5
    with mock.patch("time.sleep", side_effect=AssertionError("slept")):
      published = [
          writer.publish(writer.new_staging_dir()).version for _ in range(5)
      ]
    self.assertEqual(published, list(range(1_700_000_000, 1_700_000_005)))
    self.assertEqual(sorted(os.listdir(base)), [str(v) for v in published])

  def test_publish_skips_a_name_taken_meanwhile(self):
    base = tempfile.mkdtemp(dir=self.get_temp_dir())
    writer = writer_lib.ExportWriter(base)
    self.enter_context(mock.patch.object(writer_lib, "time", wraps=time))
    writer_lib.time.time.side_effect = lambda: 1_700_000_000
    staging = writer.new_staging_dir()
    tf.io.gfile.makedirs(os.path.join(staging, "m"))
    real_exists = tf.io.gfile.exists
    raced = []

    def racing_exists(path):
      # Another process publishes 1700000000 between the check and the
      # rename; the rename then meets a non-empty folder.
      if path.endswith("1700000000") and not raced:
        raced.append(path)
        os.makedirs(os.path.join(path, "m"))
        return False
      return real_exists(path)

    with mock.patch.object(tf.io.gfile, "exists", side_effect=racing_exists):
      version = writer.publish(staging)
    self.assertEqual(version.version, 1_700_000_001)
    self.assertTrue(os.path.isdir(os.path.join(version.path, "m")))

  def test_publish_retries_a_directory_not_empty_collision(self):
    base = tempfile.mkdtemp(dir=self.get_temp_dir())
    writer = writer_lib.ExportWriter(base)
    self.enter_context(mock.patch.object(writer_lib, "time", wraps=time))
    writer_lib.time.time.side_effect = lambda: 1_700_000_000
    staging = writer.new_staging_dir()
    real_rename = tf.io.gfile.rename

    def posix_rename(src, dst, overwrite=False):
      # What POSIX rename(2) says when another writer's version got there
      # first (gfile's own existence check passed a moment before).
      if dst.endswith("1700000000"):
        os.makedirs(os.path.join(dst, "m"))
        raise OSError(errno.ENOTEMPTY, "Directory not empty")
      return real_rename(src, dst, overwrite)

    with mock.patch.object(tf.io.gfile, "rename", side_effect=posix_rename):
      version = writer.publish(staging)
    self.assertEqual(version.version, 1_700_000_001)

  def test_remove_version_unpublishes_first(self):
    base = tempfile.mkdtemp(dir=self.get_temp_dir())
    writer = writer_lib.ExportWriter(base)
    self.enter_context(mock.patch.object(writer_lib, "time", wraps=time))
    writer_lib.time.time.side_effect = lambda: 1_700_000_000
    version = writer.publish(writer.new_staging_dir())
    renamed = []
    real_rename = tf.io.gfile.rename

    def spy(src, dst, overwrite=False):
      renamed.append(os.path.basename(dst))
      return real_rename(src, dst, overwrite)

    with mock.patch.object(tf.io.gfile, "rename", side_effect=spy):
      writer.remove_version(version)
    # Renamed to a staging name this process owns, so no other writer
    # removes it while it is deleted.
    owner = ownership.parse_name(renamed[0]).owner
    self.assertEqual(owner, ownership.current_owner())
    self.assertEqual(os.listdir(base), [])

  def test_best_to_delete_never_returns_best(self):
    scored = [(1, 0.5), (2, 0.1), (3, 0.3), (4, 0.1)]
    doomed = retention.best_to_delete(
        scored, 1, "min", lambda s: s[1], lambda s: s[0]
    )
    self.assertEqual(sorted(doomed), [(1, 0.5), (2, 0.1), (3, 0.3)])
    self.assertEqual(
        retention.best_to_delete(
            scored, None, "min", lambda s: s[1], lambda s: s[0]
        ),
        [],
    )
    ranked = layout.rank_best_first(
        [(1, math.nan), (2, 1.0)], "max", lambda s: s[1], lambda s: s[0]
    )
    self.assertEqual(ranked[0], (2, 1.0))


if __name__ == "__main__":
  tf.test.main()
