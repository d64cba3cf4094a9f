"""Staging, atomic publication, version naming and removal of export versions.

The layout of an export base folder (version and staging names) is that of
layout.py; staging names and their owners are ownership.py's. A version is staged in a `temp-` folder and published by one rename. Removal
first renames a version back to a `temp-` name, so an interrupted deletion
never leaves a partial version visible either.

Many writers. Any number of processes (on any number of hosts) may write into
one export folder at once, without locks: each stages in a folder whose name
names its owner, removes only staging folders that are provably abandoned
(`ownership.abandonment`), and publishes by a rename that fails when the
version name is taken, then retries with the next free name.

What holds where. On local and POSIX network file systems (rename(2) is
atomic and refuses to replace a non-empty folder) every guarantee above holds:
readers never see a partial version and no two exports share a version. On
object stores (`gs://`, `s3://` through tf.io.gfile) a folder rename is a copy
then a delete: a reader listing during the copy may see a version still being
copied, and two writers racing for one version name may interleave. Give each
writer its own export folder there, or read versions through
`export_metadata.json` (written into staging, so a version whose metadata is
missing is not complete yet).
"""

import os
import time
from typing import List, Optional

from absl import logging
import tensorflow as tf

from hub_estimator.export import layout
from hub_estimator.export import ownership

# How many taken version names to skip before giving up on a publish. Each
# retry takes the next integer, so this only matters if another process keeps
# publishing into the same folder.
_MAX_PUBLISH_ATTEMPTS = 100


class ExportWriter:
  """Owns one export base folder: staging, publishing and removing versions.

  Version names are integer seconds since the epoch, as in tf.estimator and
  tensorflow_hub, but a new version is always `max(now, newest + 1)`: names
  increase monotonically and publishing never sleeps. When another writer
  takes a name first, publishing retries with the next one.
  """

  def __init__(
      self,
      base_dir: str,
      lease_secs: float = ownership.DEFAULT_LEASE_SECS,
  ):
    """Creates a writer for `base_dir` (created on first staging).

    Args:
      base_dir: the export base folder, e.g. `model_dir/export/best`.
      lease_secs: a staging folder older than this (seconds) counts as
        abandoned even when its owner's liveness cannot be checked.
    """
    self._base_dir = tf.compat.as_str_any(base_dir)
    self._lease_secs = lease_secs

  @property
  def base_dir(self) -> str:
    return self._base_dir

  def versions(self) -> List[layout.Version]:
    """Returns the published versions, oldest first."""
    return layout.list_versions(self._base_dir)

  def staging_dirs(self) -> List[str]:
    """Returns every `temp-*` folder, live or abandoned."""
    return [
        os.path.join(self._base_dir, name)
        for name in layout.list_names(self._base_dir)
        if layout.is_staging_name(name)
    ]

  def clean_stale_temp_dirs(self) -> List[str]:
    """Deletes the staging folders that are provably abandoned.

    Another writer's live staging folder is never touched: see
    `ownership.abandonment` for when a folder counts as abandoned.

    Returns:
      The paths deleted.
    """
    removed = []
    for path in self.staging_dirs():
      reason = ownership.abandonment(path, self._lease_secs)
      if reason is None:
        continue
      try:
        tf.io.gfile.rmtree(path)
        removed.append(path)
        logging.info(
            "Removed abandoned export staging folder %s (%s).", path, reason
        )
      except tf.errors.NotFoundError:
        continue  # Removed meanwhile: nothing left to clean.
      except (tf.errors.OpError, OSError) as e:
        logging.warning(
            "Could not remove abandoned export staging folder %s: %s", path, e
        )
    return removed

  def new_staging_dir(self) -> str:
    """Creates and returns a fresh, empty staging folder owned by us.

    It counts as live until `publish` or `discard` is called with it.
    """
    path = os.path.join(self._base_dir, ownership.new_name())
    ownership.mark_live(path)  # Before it exists: no cleaner may take it.
    try:
      tf.io.gfile.makedirs(path)
    except BaseException:
      ownership.mark_done(path)
      raise
    return path

  def next_version(self) -> int:
    """Returns the name the next published version will take."""
    now = int(time.time())
    existing = self.versions()
    return max(now, existing[-1].version + 1) if existing else now

  def publish(self, staging_dir: str) -> layout.Version:
    """Atomically renames `staging_dir` to a new version folder.

    A version name taken meanwhile by another writer (the rename fails and
    the target exists) is retried with the next integer.

    Args:
      staging_dir: a folder made by `new_staging_dir`, completely written.

    Returns:
      The published `Version`.

    Raises:
      RuntimeError: if no free version name was found after 100 attempts, or
        the staging folder vanished (another process removed it).
      tf.errors.OpError, OSError: if the rename fails for another reason.
    """
    version = self.next_version()
    for _ in range(_MAX_PUBLISH_ATTEMPTS):
      target = layout.version_path(self._base_dir, version)
      if not tf.io.gfile.exists(target):
        try:
          tf.io.gfile.rename(staging_dir, target, overwrite=False)
          ownership.mark_done(staging_dir)
          return layout.Version(version, target)
        except (tf.errors.OpError, OSError) as e:
          # POSIX rename onto a non-empty folder fails with "Directory not
          # empty"; gfile's own check with AlreadyExistsError.
          if not tf.io.gfile.exists(staging_dir):
            raise RuntimeError(
                "Export staging folder %s vanished before it was published "
                "(was it removed by another process?)" % staging_dir
            ) from e
          if not tf.io.gfile.exists(target):
            raise
          logging.info(
              "Version %d was taken meanwhile under %s; trying the next.",
              version,
              self._base_dir,
          )
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
          "removed by a later export once abandoned): %s",
          staging_dir,
          e,
      )
    finally:
      ownership.mark_done(staging_dir)

  def remove_version(self, version: layout.Version) -> None:
    """Unpublishes `version` atomically, then deletes its files.

    Removing a version another writer removed meanwhile is a no-op.

    Raises:
      tf.errors.OpError, OSError: if the version cannot be unpublished.
    """
    doomed = os.path.join(self._base_dir, ownership.new_name())
    ownership.mark_live(doomed)
    try:
      tf.io.gfile.rename(version.path, doomed, overwrite=False)
    except tf.errors.NotFoundError:
      ownership.mark_done(doomed)
      return
    except BaseException:
      ownership.mark_done(doomed)
      raise
    self.discard(doomed)

  def size_bytes(self, path: str) -> int:
    """Bytes of storage the files under `path` take (0 if it is gone).

    On a local file system, the whole blocks each file occupies
    (`st_blocks` x 512, what `du` counts), so the figure compares with free
    space; elsewhere (object stores through tf.io.gfile), file lengths.
    """
    total = 0
    local = "://" not in path
    try:
      for folder, _, files in tf.io.gfile.walk(path):
        for name in files:
          file_path = os.path.join(folder, name)
          try:
            if local:
              total += os.stat(file_path).st_blocks * 512
            else:
              total += tf.io.gfile.stat(file_path).length
          except (tf.errors.NotFoundError, FileNotFoundError):
            continue  # Removed meanwhile.
    except tf.errors.NotFoundError:
      return total
    return total
    return total
