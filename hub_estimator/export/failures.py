"""What went wrong in an export, in words a person can act on.

TensorFlow's graph-mode errors open with "Graph execution error:" and a
"Detected at node ... defined at (most recent call last):" stack; the cause
(e.g. "<file>; No space left on device") comes after. These helpers keep the
cause and drop the framing, and tell a full disk from other failures.
"""

import errno
import json
import os
import re
import time
from typing import Any, Dict, List

from absl import logging
import tensorflow as tf

# Under an Estimator's eval dir: one JSON file per export that failed and was
# logged (training went on), read back by run_result for the run's summary.
FAILURES_DIRNAME = "export_failures"

_MAX_CAUSE_CHARS = 2000
# Lines of TensorFlow's framing around the cause of an OpError, matched
# against each line of `OpError.message` (TF 2.15 wording).
_FRAMING = (
    re.compile(r"^Graph execution error:\s*$"),
    re.compile(r"^Detected at node .* defined at \(most recent call last\):$"),
    re.compile(r"^\s+File \".*\", line \d+"),  # The stack under "Detected".
    re.compile(r"^Node: '.*'$"),
    re.compile(r"^\s*\[\[\{\{node .*\}\}\]\]$"),
    re.compile(r"^Hint: If you want to see a list of allocated tensors"),
)
# Where the stack TensorFlow appends to str(OpError) begins.
_STACK_START = re.compile(r"^Original stack trace for ")
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")


def error_cause(error: BaseException) -> str:
  """Returns "<ExceptionClass>: <cause>" for an export failure.

  For a TensorFlow `OpError` the cause is its message without the framing
  lines (graph execution header, node stack, hints), so that e.g. a full disk
  reads "ResourceExhaustedError: /tmp/x/variables.data-00000-of-00001...;
  No space left on device" rather than "ResourceExhaustedError: Graph
  execution error:". Whitespace runs become single spaces; the cause is cut
  at 2000 characters.

  Args:
    error: the exception raised by the export.

  Returns:
    One line of text.
  """
  if isinstance(error, tf.errors.OpError):
    text = error.message or ""
  else:
    text = str(error)
  kept = []
  for line in text.splitlines():
    if _STACK_START.match(line):
      break
    if not line.strip() or any(p.match(line) for p in _FRAMING):
      continue
    kept.append(line.strip())
  cause = " ".join(" ".join(kept).split())
  if len(cause) > _MAX_CAUSE_CHARS:
    cause = cause[: _MAX_CAUSE_CHARS - 3] + "..."
  name = type(error).__name__
  return f"{name}: {cause}" if cause else name


def is_disk_full(error: BaseException) -> bool:
  """Whether `error` (or an exception it was raised from) is a full disk.

  Recognizes OSError ENOSPC / EDQUOT and TensorFlow errors whose message
  carries the C library's text for them ("No space left on device", "Disk
  quota exceeded"), as TensorFlow's file system layer reports them.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
    ):
      return True
    text = error.message if isinstance(error, tf.errors.OpError) else ""
    text = text or str(error)
    if any(t in text for t in _DISK_FULL_TEXT):
      return True
    error = error.__cause__ or error.__context__
  return False


def record_failure(
    eval_dir: str,
    exporter_name: str,
    checkpoint_path: str,
    global_step,
    cause: str,
) -> None:
  """Records an export that failed while training went on (best effort).

  One file per failure (`<eval_dir>/export_failures/<exporter>-<step>-...
  .json`, written then renamed), so that evaluator and chief processes, and
  restarts, never overwrite each other's records.

  Args:
    eval_dir: the Estimator's eval dir (`model_dir/eval`).
    exporter_name: the exporter's name.
    checkpoint_path: the checkpoint it failed to export.
    global_step: that checkpoint's global step (int, or None if unknown).
    cause: `error_cause` of the failure.
  """
  folder = os.path.join(eval_dir, FAILURES_DIRNAME)
  name = "%s-%s-%d-%d.json" % (
      exporter_name,
      global_step,
      time.time_ns(),
      os.getpid(),
  )
  record = {
      "exporter": exporter_name,
      "checkpoint_path": checkpoint_path,
      "global_step": global_step,
      "cause": cause,
      "unix_time": time.time(),
  }
  try:
    tf.io.gfile.makedirs(folder)
    temp = os.path.join(folder, "." + name + ".tmp")
    with tf.io.gfile.GFile(temp, "w") as f:
      json.dump(record, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(temp, os.path.join(folder, name), overwrite=True)
  except (tf.errors.OpError, OSError) as e:
    # The failure itself is logged already; a full disk may refuse this too.
    logging.warning("Could not record the export failure in %s: %s", folder, e)


def read_failures(eval_dir: str) -> List[Dict[str, Any]]:
  """The recorded export failures of a run, by global step then exporter.

  Unreadable records are skipped (logged).
  """
  folder = os.path.join(eval_dir, FAILURES_DIRNAME)
  records = []
  try:
    names = tf.io.gfile.listdir(folder)
  except tf.errors.NotFoundError:
    return []
  for name in sorted(names):
    if not name.endswith(".json") or name.startswith("."):
      continue
    path = os.path.join(folder, name)
    try:
      with tf.io.gfile.GFile(path) as f:
        record = json.load(f)
      if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    except (tf.errors.OpError, ValueError) as e:
      logging.warning(
          "Ignoring unreadable export failure record %s: %s", path, e
      )
      continue
    records.append(record)
  return sorted(
      records,
      key=lambda r: (
          r.get("global_step") if isinstance(r.get("global_step"), int) else -1,
          str(r.get("exporter")),
      ),
  )
