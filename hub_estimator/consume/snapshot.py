"""A consumer's own copy of the module it resolved from another run's exports.

"The best export of run X" changes, and the publisher's retention deletes old
versions. So the first time a consumer run resolves such a source it
snapshots the module into its own model_dir, and from then on reads only
that snapshot:

    <consumer model_dir>/source_module/
        <module name>/             the module (hard links where possible)
        source_provenance.json     run, exporter, version, metric, step, ...

Files are hard-linked when source and snapshot are on one local file system
(no bytes copied; a publisher deleting its version only unlinks its names),
else copied. The snapshot is staged in `source_module.tmp-<random>` and
published by one rename, so a run (or one of several tasks of a distributed
run racing to take it) sees either no snapshot or a complete one; the first
rename wins and every task uses the winner's snapshot. A restarted consumer
reuses its snapshot, so it keeps fine-tuning the module it started with, and
after its first checkpoint the module's values come from that checkpoint.
"""

import json
import os
import time
import uuid
from typing import Any, Callable, Dict, NamedTuple, Optional

from absl import logging
import tensorflow as tf

from hub_estimator.export import layout

SNAPSHOT_DIRNAME = 'source_module'
PROVENANCE_FILENAME = 'source_provenance.json'
# A version deleted by the publisher while it is copied is resolved again.
_ATTEMPTS = 3


class Resolved(NamedTuple):
  """A module folder in a publisher's export version.

  Attributes:
    module_dir: `<publisher>/export/<exporter>/<version>/<module>`.
    provenance: what to record about it (run, exporter, version, ...).
  """

  module_dir: str
  provenance: Dict[str, Any]


def upstream_record(
    metadata: Optional[Dict[str, Any]], module_name: str
) -> Optional[Dict[str, Any]]:
  """Where a module of an export version came from, as that export recorded.

  Args:
    metadata: the version's `export_metadata.json` contents (or None).
    module_name: the module's folder name in the version.

  Returns:
    The version's `module_sources` entry whose `export_name` is
    `module_name` (for a module fine-tuned from another run's export: that
    source, its fine-tuning settings and, nested the same way, its own
    `upstream`), or None when the export records none (e.g. a module built
    from a module_fn records no `path`).
  """
  for source in (metadata or {}).get('module_sources') or []:
    if isinstance(source, dict) and source.get('export_name') == module_name:
      return source
  return None


def version_provenance(
    publisher_dir: str, exporter_name: str, module_dir: str
) -> Dict[str, Any]:
  """Describes the export version holding `module_dir`, from its metadata."""
  version_dir = os.path.dirname(module_dir)
  metadata = layout.read_metadata(version_dir) or {}
  exporter = metadata.get('exporter') or {}
  policy = exporter.get('policy') or {} if isinstance(exporter, dict) else {}
  metrics = metadata.get('metrics') or {}
  metric = policy.get('metric') if isinstance(policy, dict) else None
  record = {
      'publisher_model_dir': publisher_dir,
      'exporter_name': exporter_name,
      'version': os.path.basename(version_dir),
      'version_dir': version_dir,
      'module_name': os.path.basename(module_dir),
      'global_step': metadata.get('global_step'),
      'checkpoint_path': metadata.get('checkpoint_path'),
      'metrics': metrics,
      'upstream': upstream_record(metadata, os.path.basename(module_dir)),
  }
  if metric:
    record['metric'] = {
        'name': metric,
        'value': metrics.get(metric),
        'mode': policy.get('mode'),
    }
  return record


def _is_local(path: str) -> bool:
  return '://' not in path


def _copy_tree(source: str, target: str) -> str:
  """Hard-links (or copies) every file of `source` into `target`.

  Returns:
    'hard link', 'copy', or 'hard link and copy' (mixed file systems).
  """
  methods = set()
  for folder, _, files in tf.io.gfile.walk(source):
    relative = os.path.relpath(folder, source)
    out = os.path.normpath(os.path.join(target, relative))
    tf.io.gfile.makedirs(out)
    for name in files:
      src, dst = os.path.join(folder, name), os.path.join(out, name)
      if _is_local(src) and _is_local(dst):
        try:
          os.link(src, dst)
          methods.add('hard link')
          continue
        except FileNotFoundError:
          raise
        except OSError:
          pass  # Another file system, or links not allowed: copy.
      tf.io.gfile.copy(src, dst, overwrite=False)
      methods.add('copy')
  return ' and '.join(sorted(methods)) or 'copy'


def read_record(model_dir: str) -> Optional[Dict[str, Any]]:
  """The provenance of a consumer run's snapshot, or None if none was taken."""
  return _read(os.path.join(model_dir, SNAPSHOT_DIRNAME))


def _read(snapshot_dir: str) -> Optional[Dict[str, Any]]:
  try:
    with tf.io.gfile.GFile(
        os.path.join(snapshot_dir, PROVENANCE_FILENAME)
    ) as f:
      return json.load(f)
  except tf.errors.NotFoundError:
    return None


def module_dir_of(model_dir: str, record: Dict[str, Any]) -> str:
  return os.path.join(model_dir, SNAPSHOT_DIRNAME, record['module_name'])


def _describe_record(record: Dict[str, Any]) -> str:
  return 'version %s of the %r exports of run %s (global step %s)' % (
      record.get('version'),
      record.get('exporter_name'),
      record.get('publisher_model_dir'),
      record.get('global_step'),
  )


def take_or_reuse(
    model_dir: str,
    resolve: Callable[[], Resolved],
    what: str,
    source: Optional[Dict[str, Any]] = None,
) -> str:
  """Returns the consumer's snapshot of a module, taking it if needed.

  An existing snapshot is always reused, also when the source's bindings
  changed since it was taken (the run's checkpoints were trained from it);
  the log then says so, naming both.

  Args:
    model_dir: the consumer run's model_dir.
    resolve: finds the publisher's module folder now (raising when there is
      none).
    what: describes the source, for the log.
    source: the provenance keys the source names now (e.g.
      `publisher_model_dir`, `exporter_name`), compared with the snapshot's.

  Returns:
    The snapshot's module folder, `model_dir/source_module/<module name>`.

  Raises:
    RuntimeError: the publisher deleted every version resolved before it was
      copied (3 attempts).
    Whatever `resolve` raises.
  """
  snapshot_dir = os.path.join(model_dir, SNAPSHOT_DIRNAME)
  record = _read(snapshot_dir)
  if record is not None:
    changed = sorted(
        key
        for key, value in (source or {}).items()
        if value is not None and record.get(key) != value
    )
    if changed:
      logging.warning(
          'The module source now names %s, but this run took its snapshot %s'
          ' from %s (changed: %s). The run keeps using that snapshot, since'
          ' its checkpoints were trained from it; to start from %s instead,'
          ' use a new model_dir.',
          what,
          snapshot_dir,
          _describe_record(record),
          ', '.join(changed),
          what,
      )
    else:
      logging.info(
          'Using the snapshot %s of %s.',
          snapshot_dir,
          _describe_record(record),
      )
    return module_dir_of(model_dir, record)
  last_error = None
  for _ in range(_ATTEMPTS):
    resolved = resolve()
    staging = '%s.tmp-%s' % (snapshot_dir, uuid.uuid4().hex[:12])
    try:
      module_name = os.path.basename(resolved.module_dir)
      method = _copy_tree(
          resolved.module_dir, os.path.join(staging, module_name)
      )
      record = dict(
          resolved.provenance,
          snapshot_method=method,
          snapshot_unix_time=time.time(),
      )
      with tf.io.gfile.GFile(
          os.path.join(staging, PROVENANCE_FILENAME), 'w'
      ) as f:
        json.dump(record, f, indent=2, sort_keys=True)
      try:
        tf.io.gfile.rename(staging, snapshot_dir, overwrite=False)
      except (tf.errors.OpError, OSError):
        if _read(snapshot_dir) is None:
          raise
        logging.info('Another task took the snapshot first; using it.')
      else:
        logging.info(
            'Snapshot of %s (version %s) taken into %s (%s).',
            what,
            record.get('version'),
            snapshot_dir,
            method,
        )
      return module_dir_of(model_dir, _read(snapshot_dir))
    except (tf.errors.NotFoundError, FileNotFoundError) as e:
      last_error = e
      logging.warning(
          '%s vanished while it was copied (the publisher removed it?);'
          ' resolving again: %s',
          resolved.module_dir,
          e,
      )
    finally:
      if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
  raise RuntimeError(
      f'Could not snapshot {what}: the publisher removed each version before'
      f' it was copied ({_ATTEMPTS} attempts); last error: {last_error}'
  )
