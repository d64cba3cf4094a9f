"""Provenance of an export version: what export_metadata.json says, the gin config.

Every published version folder holds `export_metadata.json` (its name, reading
and writing belong to layout.py; its content is made here); when gin is in
use it also holds `operative_config.gin`, and every module in the version
carries the same text as an attached message (key `GIN_CONFIG_ATTACHMENT_KEY`,
a `google.protobuf.StringValue`), readable with
`module.get_attached_message(GIN_CONFIG_ATTACHMENT_KEY, StringValue)`.
"""

import datetime
import functools
import json
import math
import os
import platform
import re
from typing import Any, Dict, Mapping, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from google.protobuf import wrappers_pb2
from tensorflow.core.protobuf import saved_model_pb2

from hub_estimator.export import layout
from hub_estimator.format import protos
from hub_estimator.format import spec as spec_lib

GIN_CONFIG_FILENAME = "operative_config.gin"
GIN_CONFIG_ATTACHMENT_KEY = "gin_operative_config"
METADATA_FORMAT_VERSION = 1

_PACKAGES = (
    "hub-estimator",
    "tensorflow",
    "tensorflow-estimator",
    "gin-config",
    "absl-py",
    "numpy",
    "protobuf",
)
_CHECKPOINT_STEP_RE = re.compile(r"-(\d+)$")


def json_safe(value: Any) -> Any:
  """Converts `value` (numpy scalars/arrays, bytes, nests) to plain JSON.

  Non-finite floats become the strings "nan", "inf" and "-inf" (JSON has no
  such numbers); `layout.metric_value` reads them back.
  """
  if isinstance(value, Mapping):
    return {str(k): json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, np.ndarray):
    return json_safe(value.tolist())
  if isinstance(value, np.generic):
    return json_safe(value.item())
  if isinstance(value, bool) or value is None:
    return value
  if isinstance(value, int):
    return value
  if isinstance(value, float):
    if math.isnan(value):
      return "nan"
    if math.isinf(value):
      return "inf" if value > 0 else "-inf"
    return value
  if isinstance(value, bytes):
    return value.decode("utf-8", errors="replace")
  return str(value)


def global_step_of(
    eval_result: Optional[Mapping[str, Any]], checkpoint_path: Optional[str]
) -> Optional[int]:
  """Returns the global step from the eval results or the checkpoint name."""
  if eval_result and "global_step" in eval_result:
    step = layout.metric_value(eval_result["global_step"])
    if step is not None and not math.isnan(step):
      return int(step)
  if checkpoint_path:
    match = _CHECKPOINT_STEP_RE.search(tf.compat.as_str_any(checkpoint_path))
    if match:
      return int(match.group(1))
  return None


@functools.lru_cache(maxsize=1)
def package_versions() -> Dict[str, str]:
  """Returns the versions of Python and of the packages that shape an export."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top

  versions = {"python": platform.python_version()}
  for name in _PACKAGES:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      continue  # Not installed: left out of the record.
  return versions


def operative_gin_config() -> Optional[str]:
  """Returns `gin.operative_config_str()`, or None when gin is not in use.

  Gin counts as in use when any binding was parsed (`gin.config_str()` is not
  empty); merely constructing a configurable (such as these exporters) with
  its defaults does not count.
  """
  try:
    import gin  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  try:
    if not _has_bindings(gin.config_str()):
      return None
    text = gin.operative_config_str()
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("Could not read the operative gin config: %s", e)
    return None
  return text if _has_bindings(text) else None


def _has_bindings(text: str) -> bool:
  return any(
      line.strip() and not line.lstrip().startswith("#")
      for line in text.splitlines()
  )


def make_metadata(
    *,
    exporter_name: str,
    exporter_class: str,
    policy: Mapping[str, Any],
    checkpoint_path: Optional[str],
    eval_result: Optional[Mapping[str, Any]],
    is_the_final_export: Optional[bool],
    modules,
    created: float,
    gin_config_file: Optional[str],
    export_base_dir: str,
    module_sources: Sequence[Mapping[str, Any]] = (),
) -> Dict[str, Any]:
  """Returns the export_metadata.json content of one version.

  `module_sources` are the records of `registry.record_module_source`: where
  each module of the model came from (e.g. the publisher's run, exporter,
  version and metrics) and how it was fine-tuned.
  """
  return json_safe({
      "format_version": METADATA_FORMAT_VERSION,
      "exporter": {
          "name": exporter_name,
          "class": exporter_class,
          "policy": dict(policy),
      },
      "global_step": global_step_of(eval_result, checkpoint_path),
      "metrics": dict(eval_result or {}),
      "checkpoint_path": (
          tf.compat.as_str_any(checkpoint_path) if checkpoint_path else None
      ),
      "is_the_final_export": bool(is_the_final_export),
      "modules": list(modules),
      "created_unix_time": created,
      "created_utc": (
          datetime.datetime.fromtimestamp(
              created, datetime.timezone.utc
          ).isoformat()
      ),
      "gin_config_file": gin_config_file,
      "export_base_dir": tf.compat.as_str_any(export_base_dir),
      "module_sources": [dict(s) for s in module_sources],
      "package_versions": package_versions(),
  })


def module_sources_header(module_sources: Sequence[Mapping[str, Any]]) -> str:
  """Returns gin comment lines naming where the model's modules came from.

  Prepended to `operative_config.gin`, so the config tells the resolved module
  (a run's "best export" is a different folder at each publish) beside the
  FineTuning bindings gin records itself. Empty when there are no records.
  """
  lines = []
  for record in module_sources:
    text = json.dumps(json_safe(record), sort_keys=True, allow_nan=False)
    lines.append("# Module source: %s\n" % text)
  return "".join(lines) + ("\n" if lines else "")


def write_gin_config(version_dir: str, text: str) -> str:
  """Writes the operative gin config beside the metadata; returns its name."""
  with tf.io.gfile.GFile(
      os.path.join(version_dir, GIN_CONFIG_FILENAME), "w"
  ) as f:
    f.write(text)
  return GIN_CONFIG_FILENAME


def attach_text(module_dir: str, key: str, text: str) -> None:
  """Attaches `text` (as a StringValue) to every graph variant of a module.

  Rewrites `module_dir/saved_model.pb`, adding or replacing the entry `key` in
  each meta graph's `hub_module_attachments` collection (TF1_HUB_FORMAT.md
  §1.6), so `Module.get_attached_message(key, StringValue)` returns it.

  Args:
    module_dir: an exported module folder (still in staging).
    key: the attachment key.
    text: the text to attach.
  """
  path = os.path.join(module_dir, "saved_model.pb")
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(path, "rb") as f:
    saved_model.ParseFromString(f.read())
  value = wrappers_pb2.StringValue(value=text).SerializeToString()
  for meta_graph in saved_model.meta_graphs:
    entries = meta_graph.collection_def[
        spec_lib.ATTACHMENTS_COLLECTION
    ].bytes_list
    kept = []
    for raw in entries.value:
      attachment = protos.ModuleAttachment()
      attachment.ParseFromString(raw)
      if attachment.key != key:
        kept.append(raw)
    kept.append(
        protos.ModuleAttachment(key=key, value=value).SerializeToString()
    )
    del entries.value[:]
    entries.value.extend(kept)
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(saved_model.SerializeToString())
