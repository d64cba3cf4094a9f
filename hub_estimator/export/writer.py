"""Staging, atomic publication, version naming and removal of export versions.

Layout of an export base folder (`model_dir/export/<exporter name>`):

    <10-digit version>/      published, complete versions (never half-written)
    temp-<hex>/              staging folders; left behind only by a crash

A version is staged in a `temp-` folder and published by one rename. Removal
first renames a version back to a `temp-` name, so an interrupted deletion
never leaves a partial version visible either. TF Serving, tensorflow_hub and
tf.estimator's garbage collection all ignore names that are not 10 digits.
"""

import os
import time
import uuid
from typing import List, NamedTuple, Optional

from absl import logging
import tensorflow as tf

TEMP_PREFIX = "temp-"
_VERSION_DIGITS = 10
# How many taken version names to skip before giving up on a publish. Each
# retry takes the next integer, so this only matters if another process keeps
# publishing into the same folder.
_MAX_PUBLISH_ATTEMPTS = 100


class Version(NamedTuple):
  """A published export version: its integer name and its path."""

  version: int
  path: str


def is_version_name(name: str) -> bool:
  """Whether `name` names a published version (exactly 10 decimal digits)."""
  return len(name) == _VERSION_DIGITS and name.isdigit()


class ExportWriter:
  """Owns one export base folder: staging, publishing and removing versions.

  Version names are integer seconds since the epoch, as in tf.estimator and
  tensorflow_hub, but a new version is always `max(now, newest + 1)`: names
  increase monotonically and never collide, and publishing never sleeps.
  """

  def __init__(self, base_dir: str, time_fn=time.time):
    """Creates a writer for `base_dir` (created on first staging).

    Args:
      base_dir: the export base folder, e.g. `model_dir/export/best`.
      time_fn: returns the current time in seconds (for tests).
    """
    self._base_dir = tf.compat.as_str_any(base_dir)
    self._time_fn = time_fn

  @property
  def base_dir(self) -> str:
    return self._base_dir

  def _list(self) -> List[str]:
    try:
      if not tf.io.gfile.isdir(self._base_dir):
        return []
      # gfile appends "/" to folder names on some file systems.
      return [name.rstrip("/") for name in tf.io.gfile.listdir(self._base_dir)]
    except tf.errors.NotFoundError:
      return []

  def versions(self) -> List[Version]:
    """Returns the published versions, oldest first."""
    found = [
        Version(int(name), os.path.join(self._base_dir, name))
        for name in self._list()
        if is_version_name(name)
    ]
    return sorted(found)

  def clean_stale_temp_dirs(self) -> List[str]:
    """Deletes `temp-*` folders (left by crashed exports or deletions).

    Only one process exports into a given base folder (the evaluator), and it
    calls this before staging, so every `temp-*` folder found is stale.

    Returns:
      The paths deleted.
    """
    removed = []
    for name in self._list():
      if not name.startswith(TEMP_PREFIX):
        continue
      path = os.path.join(self._base_dir, name)
      try:
        tf.io.gfile.rmtree(path)
        removed.append(path)
      except tf.errors.NotFoundError:
        continue  # Removed meanwhile: nothing left to clean.
      except (tf.errors.OpError, OSError) as e:
        logging.warning(
            "Could not remove stale export staging folder %s: %s", path, e
        )
    if removed:
      logging.info(
          "Removed %d stale export staging folder(s) left by an "
          "interrupted export: %s",
          len(removed),
          ", ".join(removed),
      )
    return removed

  def new_staging_dir(self) -> str:
    """Creates and returns a fresh, empty `temp-<hex>` staging folder."""
    path = os.path.join(self._base_dir, TEMP_PREFIX + uuid.uuid4().hex)
    tf.io.gfile.makedirs(path)
    return path

  def next_version(self) -> int:
    """Returns the name the next published version will take."""
    now = int(self._time_fn())
    existing = self.versions()
    return max(now, existing[-1].version + 1) if existing else now

  def publish(self, staging_dir: str) -> Version:
    """Atomically renames `staging_dir` to a new version folder.

    Args:
      staging_dir: a folder made by `new_staging_dir`, completely written.

    Returns:
      The published `Version`.

    Raises:
      RuntimeError: if no free version name was found (another process keeps
        publishing into the same folder).
      tf.errors.OpError, OSError: if the rename fails.
    """
    version = self.next_version()
    for _ in range(_MAX_PUBLISH_ATTEMPTS):
      target = os.path.join(self._base_dir, "%d" % version)
      if not tf.io.gfile.exists(target):
        try:
          tf.io.gfile.rename(staging_dir, target, overwrite=False)
          return Version(version, target)
        except tf.errors.AlreadyExistsError:
          logging.info(
              "Version %d appeared meanwhile under %s; trying the next.",
              version,
              self._base_dir,
          )
        except OSError:
          # POSIX rename fails on a non-empty existing target folder.
          if not tf.io.gfile.exists(target):
            raise
      version += 1
    raise RuntimeError(
        "Could not find a free version name under %s after %d attempts; is "
        "another process exporting into the same folder?"
        % (self._base_dir, _MAX_PUBLISH_ATTEMPTS)
    )

  def discard(self, staging_dir: Optional[str]) -> None:
    """Deletes a staging folder, logging (not raising) on failure."""
    if not staging_dir:
      return
    try:
      if tf.io.gfile.exists(staging_dir):
        tf.io.gfile.rmtree(staging_dir)
    except (tf.errors.OpError, OSError) as e:
      logging.warning(
          "Could not remove export staging folder %s (it will be "
          "removed by the next export): %s",
          staging_dir,
          e,
      )

  def remove_version(self, version: Version) -> None:
    """Unpublishes `version` atomically, then deletes its files.

    Raises:
      tf.errors.OpError, OSError: if the version cannot be unpublished.
    """
    doomed = os.path.join(
        self._base_dir,
        "%s%d-deleted-%s"
        % (TEMP_PREFIX, version.version, uuid.uuid4().hex[:8]),
    )
    try:
      tf.io.gfile.rename(version.path, doomed, overwrite=False)
    except tf.errors.NotFoundError:
      return
    self.discard(doomed)
