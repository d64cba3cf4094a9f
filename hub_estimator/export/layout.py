"""The export layout: the one place that names, lists and ranks export versions.

    <model_dir>/export/<exporter name>/       an exporter's base folder
        <version>/                            published: exactly 10 digits
            export_metadata.json              step, metrics, checkpoint, ...
            operative_config.gin              when gin is in use
            <module name>/                    one per registered module
        temp-<...>/                           staging (an export being
                                              written or a version being
                                              deleted; named by ownership.py)

Version names are integer seconds since the epoch, 10 digits until the year
2286, as tf.estimator's exporters and tensorflow_hub 0.15 name them; TF
Serving, tensorflow_hub and tf.estimator's garbage collection all ignore other
names. "Better" for a metric is `is_better` (strict, NaN never better), used
by the best exporter, retention, the run summary and consumers alike.

Exporters (export/policies.py, export/writer.py, export/retention.py), module
sources (consume/sources.py), progress lines and the run summary call this
module; nothing else parses folder names or export_metadata.json.
"""

import json
import math
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, TypeVar

from absl import logging
import numpy as np
import tensorflow as tf

EXPORT_DIRNAME = "export"
# Beside the modules of a version: their TF2 SavedModels (tf2_saved_model=True).
TF2_DIRNAME = "tf2"
METADATA_FILENAME = "export_metadata.json"
TEMP_PREFIX = "temp-"
VERSION_DIGITS = 10
MODES = ("min", "max")

V = TypeVar("V")


class Version(NamedTuple):
  """A published export version: its integer name and its path."""

  version: int
  path: str


# -- names -------------------------------------------------------------------


def exporter_dir(model_dir: str, exporter_name: str) -> str:
  """The base folder of an exporter's versions: `model_dir/export/<name>`."""
  return os.path.join(
      tf.compat.as_str_any(model_dir), EXPORT_DIRNAME, exporter_name
  )


def is_version_name(name: str) -> bool:
  """Whether `name` names a published version (exactly 10 decimal digits)."""
  return len(name) == VERSION_DIGITS and name.isdigit()


def version_path(base_dir: str, version: int) -> str:
  """The folder of version `version` under an exporter's base folder."""
  return os.path.join(base_dir, "%d" % version)


def is_staging_name(name: str) -> bool:
  """Whether `name` is a staging (or being-deleted) folder (ownership.py)."""
  return name.startswith(TEMP_PREFIX)


# -- listing -----------------------------------------------------------------


def list_names(folder: str) -> List[str]:
  """The entry names of `folder` (empty if it does not exist)."""
  try:
    if not tf.io.gfile.isdir(folder):
      return []
    # gfile appends "/" to folder names on some file systems.
    return [name.rstrip("/") for name in tf.io.gfile.listdir(folder)]
  except tf.errors.NotFoundError:
    return []


def list_subdirs(folder: str) -> List[str]:
  """The sorted names of the folders inside `folder` (empty if missing)."""
  return sorted(
      name
      for name in list_names(folder)
      if tf.io.gfile.isdir(os.path.join(folder, name))
  )


def list_versions(base_dir: str) -> List[Version]:
  """The published versions of an exporter's base folder, oldest first."""
  base_dir = tf.compat.as_str_any(base_dir)
  return sorted(
      Version(int(name), os.path.join(base_dir, name))
      for name in list_names(base_dir)
      if is_version_name(name)
  )


def newest_version(base_dir: str) -> Optional[Version]:
  """The newest published version of a base folder, or None."""
  versions = list_versions(base_dir)
  return versions[-1] if versions else None


def list_exports(model_dir: str) -> Dict[str, List[Version]]:
  """Exporter name -> its published versions (oldest first), for a run.

  Folders under `model_dir/export/` that hold no published version (e.g. one
  whose versions are all still staged) map to an empty list.
  """
  base = os.path.join(tf.compat.as_str_any(model_dir), EXPORT_DIRNAME)
  return {
      name: list_versions(os.path.join(base, name))
      for name in list_subdirs(base)
  }


def module_names(version_dir: str) -> List[str]:
  """The module folders of a published version, sorted.

  The `tf2/` folder an exporter with `tf2_saved_model=True` writes beside the
  modules (TF2 SavedModels of the same modules) is not a module.
  """
  return [name for name in list_subdirs(version_dir) if name != TF2_DIRNAME]


# -- export_metadata.json ----------------------------------------------------


def write_metadata(version_dir: str, metadata: Dict[str, Any]) -> None:
  """Writes `metadata` (plain JSON values) as `version_dir/export_metadata.json`."""
  text = json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False)
  with tf.io.gfile.GFile(
      os.path.join(version_dir, METADATA_FILENAME), "w"
  ) as f:
    f.write(text + "\n")


def read_metadata(version_dir: str) -> Optional[Dict[str, Any]]:
  """Returns the parsed export_metadata.json of a version, or None.

  A missing or unreadable file gives None (with a warning if unreadable).
  """
  path = os.path.join(version_dir, METADATA_FILENAME)
  try:
    with tf.io.gfile.GFile(path, "r") as f:
      data = json.loads(f.read())
  except tf.errors.NotFoundError:
    return None
  except (ValueError, tf.errors.OpError, OSError) as e:
    logging.warning("Ignoring unreadable export metadata %s: %s", path, e)
    return None
  if not isinstance(data, dict):
    logging.warning("Ignoring export metadata %s: not a JSON object", path)
    return None
  return data


def metric_value(value: Any) -> Optional[float]:
  """Returns a scalar metric as a float (NaN/inf included), or None.

  Reads what `json_safe` in provenance.py writes: numbers, and the strings
  "nan", "inf" and "-inf" for non-finite values (JSON has no such numbers).
  """
  if isinstance(value, str):
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(value)
  if isinstance(value, np.ndarray):
    if value.size != 1:
      return None
    value = value.reshape(()).item()
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return float(value)


def recorded_metric(
    metadata: Optional[Dict[str, Any]], metric: str
) -> Optional[float]:
  """The value of `metric` recorded in a version's metadata, or None."""
  if not metadata:
    return None
  metrics = metadata.get("metrics")
  if not isinstance(metrics, dict) or metric not in metrics:
    return None
  return metric_value(metrics[metric])


# -- "better" and "best" -----------------------------------------------------


def find_mode_error(mode: Any) -> Optional[str]:
  """Returns why `mode` is invalid, or None if it is 'min' or 'max'."""
  if mode not in MODES:
    return "mode must be 'min' or 'max'. Details: got %r" % (mode,)
  return None


def is_better(
    candidate: float, reference: float, mode: str, min_delta: float = 0.0
) -> bool:
  """Whether metric value `candidate` beats `reference` by more than `min_delta`.

  The one comparer of the project (best exporter, retention, run summary).
  Comparison is strict: a tie never beats. NaN never beats anything; anything
  that is not NaN beats NaN.

  Args:
    candidate: the new value.
    reference: the value to beat.
    mode: 'min' if smaller is better, 'max' if larger is.
    min_delta: the margin (>= 0) `candidate` must beat `reference` by.
  """
  if math.isnan(candidate):
    return False
  if math.isnan(reference):
    return True
  if mode == "min":
    return candidate < reference - min_delta
  return candidate > reference + min_delta


def rank_best_first(
    scored: Sequence[V],
    mode: str,
    value_fn: Callable[[V], float],
    version_fn: Callable[[V], int],
) -> List[V]:
  """Sorts `scored` best first (as `is_better` orders values).

  Between equal values the newer version wins; NaN values sort last.
  """

  def key(item):
    value = value_fn(item)
    if math.isnan(value):
      return (1, 0.0, -version_fn(item))
    return (0, value if mode == "min" else -value, -version_fn(item))

  return sorted(scored, key=key)


def scored_versions(
    base_dir: str, metric: str
) -> Tuple[List[Tuple[Version, float]], List[Version]]:
  """The versions of a base folder with their recorded `metric`.

  Read from disk every time (never remembered), so a restarted process, or
  folders changed by hand, are seen as they are.

  Returns:
    (scored, unranked): (version, value) for versions whose metadata records
    `metric`, oldest first; and the versions that do not.
  """
  scored, unranked = [], []
  for version in list_versions(base_dir):
    value = recorded_metric(read_metadata(version.path), metric)
    if value is None:
      unranked.append(version)
    else:
      scored.append((version, value))
  return scored, unranked


def best_version(
    scored: Sequence[Tuple[Version, float]], mode: str
) -> Optional[Tuple[Version, float]]:
  """The best (version, value) of `scored_versions`; None if none is a number."""
  ranked = rank_best_first(scored, mode, lambda s: s[1], lambda s: s[0].version)
  if not ranked or math.isnan(ranked[0][1]):
    return None
  return ranked[0]
