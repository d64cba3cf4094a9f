"""Who owns a staging folder, and when it is provably abandoned.

Any number of processes may export into one export folder, so a `temp-*`
staging folder may be another process's live work. Its name carries its
owner: the creation time, the host, and the process id and start time of the
process that made it:

    temp-<created unix secs>-<random hex>-<pid>-<process start secs>-<host>

A staging folder is abandoned, and may be removed by anyone, only when

* its owner ran on this host and that process is gone (no process with that
  id, a zombie, or a process with that id but another start time: a reused
  id), or
* it is older than the lease (`DEFAULT_LEASE_SECS`, 6 hours; for owners on
  other hosts, whose liveness cannot be checked, and for folders whose name
  carries no owner, e.g. made by older versions, aged by modification time).

A process never treats its own live staging folders as abandoned; they are
recorded in memory while they exist.

The host is `socket.gethostname()`, so two containers that share a host name
but not a process-id namespace must not export into one folder (Kubernetes
gives every pod its own host name).
"""

import os
import re
import socket
import threading
import time
import uuid
from typing import NamedTuple, Optional

import psutil
import tensorflow as tf

from hub_estimator.export import layout

TEMP_PREFIX = layout.TEMP_PREFIX
# Generous: an export takes seconds to minutes; an owner on another host is
# presumed alive for this long.
DEFAULT_LEASE_SECS = 6 * 3600
# Process start times are stored in whole seconds.
_START_TOLERANCE_SECS = 2
_NAME = re.compile(
    r"^temp-(?P<created>\d+)-(?P<nonce>[0-9a-f]+)-(?P<pid>\d+)-"
    r"(?P<started>\d+)-(?P<host>[A-Za-z0-9._]+)$"
)
_HOST_CHARS = re.compile(r"[^A-Za-z0-9.]")
_MAX_HOST_CHARS = 64

_live_lock = threading.Lock()
_live = set()  # Staging folders of this process that are in use.


class Owner(NamedTuple):
  """The process that made a staging folder.

  Attributes:
    host: host name, with characters other than letters, digits and dots as
      underscores.
    pid: process id on that host.
    started: process start time, whole seconds since the epoch.
  """

  host: str
  pid: int
  started: int


class StagingName(NamedTuple):
  """A staging folder name, parsed."""

  owner: Owner
  created: int  # Seconds since the epoch.


def _host() -> str:
  return _HOST_CHARS.sub("_", socket.gethostname())[:_MAX_HOST_CHARS] or "_"


def current_owner() -> Owner:
  """The Owner that stands for this process."""
  pid = os.getpid()
  return Owner(_host(), pid, int(psutil.Process(pid).create_time()))


def new_name(now: Optional[float] = None) -> str:
  """A fresh staging folder name owned by this process."""
  owner = current_owner()
  created = int(time.time() if now is None else now)
  return (
      f"{TEMP_PREFIX}{created}-{uuid.uuid4().hex[:12]}-{owner.pid}-"
      f"{owner.started}-{owner.host}"
  )


def parse_name(name: str) -> Optional[StagingName]:
  """Parses a staging folder name; None when it carries no owner."""
  match = _NAME.match(name)
  if not match:
    return None
  owner = Owner(
      match.group("host"), int(match.group("pid")), int(match.group("started"))
  )
  return StagingName(owner, int(match.group("created")))


def mark_live(path: str) -> None:
  """Records that this process is using staging folder `path`."""
  with _live_lock:
    _live.add(path)


def mark_done(path: str) -> None:
  """Records that this process no longer uses staging folder `path`."""
  with _live_lock:
    _live.discard(path)


def _process_gone(owner: Owner) -> bool:
  """Whether the process `owner` names is no longer running on this host."""
  try:
    process = psutil.Process(owner.pid)
    if process.status() == psutil.STATUS_ZOMBIE:
      return True
    started = process.create_time()
  except psutil.NoSuchProcess:
    return True
  except psutil.AccessDenied:
    return False  # It exists; presume it is the owner.
  return abs(started - owner.started) > _START_TOLERANCE_SECS


def _modified(path: str) -> Optional[float]:
  """Modification time of `path` in seconds, or None if unknown."""
  try:
    return tf.io.gfile.stat(path).mtime_nsec / 1e9
  except (tf.errors.OpError, OSError):
    return None


def abandonment(
    path: str, lease_secs: float, now: Optional[float] = None
) -> Optional[str]:
  """Why staging folder `path` is abandoned, or None if it may be live.

  Args:
    path: a `temp-*` folder in an export folder.
    lease_secs: the age (seconds) after which any staging folder counts as
      abandoned.
    now: the current time in seconds since the epoch (for tests).

  Returns:
    A short reason (for the log), or None when the folder must be kept.
  """
  now = time.time() if now is None else now
  with _live_lock:
    if path in _live:
      return None
  parsed = parse_name(os.path.basename(path.rstrip("/")))
  if parsed is None:
    modified = _modified(path)
    if modified is not None and now - modified > lease_secs:
      return "no owner in its name, unchanged for %.0f s" % (now - modified)
    return None
  owner = parsed.owner
  if owner.host == _host():
    me = current_owner()
    if owner.pid == me.pid and abs(owner.started - me.started) <= 1:
      return "left by this process"  # Not in use (see mark_live).
    if _process_gone(owner):
      return "its owner, process %d on this host, is gone" % owner.pid
  if now - parsed.created > lease_secs:
    return "older than the %.0f s lease (owner %s, process %d)" % (
        lease_secs,
        owner.host,
        owner.pid,
    )
  return None
