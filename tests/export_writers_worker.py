"""One of several processes exporting into one export folder at once.

    python export_writers_worker.py <export folder> <writer id> <exports> \
        <exporter: latest|best> <exports_to_keep or none>

Runs the real exporter policy, writer and retention; only the module writing
is replaced by one that writes a module's files one by one with pauses (to
widen every race window). Prints one JSON line per export:
{"writer": id, "i": i, "path": published version or null, "error": text,
"removed": versions this process's retention removed since the last line}.
"""

import json
import os
import sys
import time
import types
from unittest import mock

import numpy as np
import tensorflow as tf

from hub_estimator.export import core
from hub_estimator.export import policies
from hub_estimator.export import writer as writer_lib

# The files of a module folder, written in this order (the last is written
# only when the module is complete).
MODULE_FILES = (
    "variables/variables.data-00000-of-00001",
    "variables/variables.index",
    "saved_model.pb",
    "tfhub_module.pb",
)
MODULE_NAME = "m"


def _slow_write_modules(plan, checkpoint_path, target_dir):
  del plan
  path = os.path.join(target_dir, MODULE_NAME)
  for name in MODULE_FILES:
    tf.io.gfile.makedirs(os.path.dirname(os.path.join(path, name)))
    with tf.io.gfile.GFile(os.path.join(path, name), "w") as f:
      f.write(checkpoint_path)
    time.sleep(0.002)
  return [path]


def _serving_input_fn():
  raise AssertionError("never called: the plan is faked")


def main(base, writer_id, count, kind, keep):
  count = int(count)
  keep = None if keep == "none" else int(keep)
  if kind == "best":
    exporter = policies.BestModuleExporter(
        "best", _serving_input_fn, exports_to_keep=keep
    )
  else:
    exporter = policies.LatestModuleExporter(
        "latest", _serving_input_fn, exports_to_keep=keep
    )
  plan = types.SimpleNamespace(
      modules=[types.SimpleNamespace(export_name=MODULE_NAME)], graph=tf.Graph()
  )
  estimator = mock.Mock()
  # Published versions this process's retention removed (the evidence that a
  # success another writer's reader never saw was published nonetheless).
  removed = []
  remove_version = writer_lib.ExportWriter.remove_version

  def _recording_remove_version(self, version):
    remove_version(self, version)
    removed.append(version.path)

  with (
      mock.patch.object(core.PLANS, "get", return_value=plan),
      mock.patch.object(core, "write_modules", side_effect=_slow_write_modules),
      mock.patch.object(
          writer_lib.ExportWriter, "remove_version", _recording_remove_version
      ),
  ):
    for i in range(count):
      checkpoint = "/ckpt/writer%s/model.ckpt-%d" % (writer_id, i + 1)
      # Each writer improves on itself; writers interleave in the ranking.
      loss = 1.0 / (i + 2) + 0.001 * int(writer_id)
      try:
        path = exporter.export(
            estimator,
            base,
            checkpoint,
            {"loss": np.float32(loss), "global_step": np.int64(i + 1)},
            False,
        )
        error = None
      except Exception as e:  # pylint: disable=broad-except
        path, error = None, "%s: %s" % (type(e).__name__, e)
      record = {
          "writer": writer_id,
          "i": i,
          "checkpoint": checkpoint,
          "path": path.decode() if path else None,
          "error": error,
          "removed": removed[:],
      }
      del removed[:]
      print(json.dumps(record), flush=True)


if __name__ == "__main__":
  main(*sys.argv[1:6])
