"""Registration of the modules that exporters write, one graph collection."""

from typing import Any, Dict, List, Mapping, Optional, Tuple

import tensorflow as tf

# The same (tuple, hence unserialized and invisible to get_all_collection_keys)
# collection key as tensorflow_hub 0.15, so a model_fn written against either
# library registers modules that both libraries' exporters find.
EXPORT_MODULES_COLLECTION = ("__tfhub_export_modules",)
# Where the model's modules came from (one JSON-able dict per module source),
# recorded in every export's metadata. A tuple key: never serialized.
MODULE_SOURCES_COLLECTION = ("__hub_estimator_module_sources",)


def register_module_for_export(module: Any, export_name: str) -> None:
  """Registers `module` to be exported into the subdirectory `export_name`.

  Call it inside the `model_fn` (at least in PREDICT mode): the exporters of
  this package build the PREDICT graph once to find the registered modules.
  `export_name` only names the subdirectory of each export version; it has no
  scope effect.

  Args:
    module: a `hub_estimator.Module` (or any object with `export(path,
      session)`, `spec` and `variable_map`) instantiated in the current graph.
    export_name: subdirectory name of the module inside each export version.

  Raises:
    ValueError: if `export_name` is empty, not a plain folder name, or already
      registered in the current graph.
  """
  problem = find_export_name_error(export_name)
  if problem:
    raise ValueError(problem)
  for used_name, _ in tf.compat.v1.get_collection(EXPORT_MODULES_COLLECTION):
    if used_name == export_name:
      raise ValueError(
          "There is already a module registered to be exported as %r"
          % export_name
      )
  tf.compat.v1.add_to_collection(
      EXPORT_MODULES_COLLECTION, (export_name, module)
  )


def record_module_source(record: Mapping[str, Any]) -> None:
  """Records where a module of the model came from, for export provenance.

  Call it inside the `model_fn` (PREDICT mode included), once per module; the
  exporters of this package copy every record into `export_metadata.json`
  (`module_sources`) and the header of `operative_config.gin`.

  Args:
    record: a JSON-able dict, e.g. `{"source": "RunExportSource", "path":
      ..., "version": ..., "fine_tuning": {...}}`.
  """
  tf.compat.v1.add_to_collection(MODULE_SOURCES_COLLECTION, dict(record))


def get_module_sources(
    graph: Optional[tf.Graph] = None,
) -> List[Dict[str, Any]]:
  """Returns the records of `record_module_source` in `graph` (None: default)."""
  graph = graph or tf.compat.v1.get_default_graph()
  return [dict(r) for r in graph.get_collection(MODULE_SOURCES_COLLECTION)]


def get_registered_modules(
    graph: Optional[tf.Graph] = None,
) -> List[Tuple[str, Any]]:
  """Returns the `(export_name, module)` pairs registered in `graph`.

  Args:
    graph: the graph to look in; None means the default graph.
  """
  graph = graph or tf.compat.v1.get_default_graph()
  return list(graph.get_collection(EXPORT_MODULES_COLLECTION))


def find_export_name_error(export_name: Any) -> Optional[str]:
  """Returns why `export_name` cannot name a module folder, or None."""
  if not isinstance(export_name, str) or not export_name:
    return "export_name must be a non-empty string. Details: got %r" % (
        export_name,
    )
  if "/" in export_name or "\\" in export_name or export_name in (".", ".."):
    return (
        "export_name must be a plain folder name. Details: got %r" % export_name
    )
  return None
