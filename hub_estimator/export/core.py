"""The export core: writes every registered module of a checkpoint to a folder.

The PREDICT graph is built once per (estimator, serving_input_fn) to discover
the registered modules; the result (each module's spec and the map from its
checkpoint keys to module-relative keys) is cached and shared by all exporters.
Each export then copies the tensors straight from the estimator checkpoint
into the module checkpoint (`format.writer.CheckpointCopy`: one RestoreV2 ->
SaveV2 graph in a cached session) and writes the module's definition files,
without a session on the model graph. Modules the fast path cannot handle (a custom scaffold saver,
modules from another library) are exported the general way: restore the
checkpoint into the discovery graph and `module.export(...)`.
"""

import os
import threading
import weakref
from typing import Any, Callable, List, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf

from hub_estimator.export import layout
from hub_estimator.export import registry
from hub_estimator.format import tf2_bridge
from hub_estimator.format import writer as format_writer

_PREDICT = tf.estimator.ModeKeys.PREDICT


class ModulePlan:
  """How to export one registered module.

  Attributes:
    export_name: the module's folder name inside a version.
    module: the module instance in the discovery graph.
    copy: the checkpoint-to-module copy of the fast path, or None for the
      general path.
    fallback_reason: why the general path is used (None on the fast path).
  """

  def __init__(
      self,
      export_name: str,
      module: Any,
      entries: Optional[Sequence[format_writer.VariableEntry]],
      fallback_reason: Optional[str],
  ):
    self.export_name = export_name
    self.module = module
    self.copy = (
        None
        if entries is None
        else format_writer.CheckpointCopy(entries, "module %r" % export_name)
    )
    self.fallback_reason = fallback_reason

  @property
  def uses_fast_path(self) -> bool:
    return self.copy is not None


class ExportPlan:
  """The registered modules of an estimator's PREDICT graph; how to export."""

  def __init__(
      self,
      graph: tf.Graph,
      modules: Sequence[ModulePlan],
      saver_fn: Callable[[], Any],
      session_config,
  ):
    self.graph = graph
    self.modules = list(modules)
    self._saver_fn = saver_fn
    self._saver = None
    self._session_config = session_config

  def restore_session(self, checkpoint_path: str) -> tf.compat.v1.Session:
    """Returns a session on the discovery graph, restored from a checkpoint."""
    with self.graph.as_default():
      if self._saver is None:
        self._saver = self._saver_fn()
      session = tf.compat.v1.Session(
          graph=self.graph, config=self._session_config
      )
      self._saver.restore(session, tf.compat.as_str_any(checkpoint_path))
    return session


def _variable_entries(
    module: Any,
) -> Tuple[Optional[List[format_writer.VariableEntry]], Optional[str]]:
  """Returns (fast-path copy entries, None) or (None, reason for general path).

  A variable's checkpoint key in the estimator checkpoint is its graph name
  (`variable.op.name`); a partitioned variable is stored under its full name,
  one slice per partition, in both checkpoints.
  """
  variable_map = getattr(module, "variable_map", None)
  if variable_map is None or not hasattr(module, "spec"):
    return None, "the module has no `spec` / `variable_map`"
  entries = []
  for module_key, value in sorted(variable_map.items()):
    if isinstance(value, (list, tuple)):
      for part in value:
        info = getattr(part, "_save_slice_info", None)
        if info is None:
          return None, "partition of %r has no slice info" % module_key
        entries.append(
            format_writer.VariableEntry(
                module_key=module_key,
                checkpoint_key=info.full_name,
                slice_spec=info.spec,
                dtype=part.dtype.base_dtype,
                shape=tuple(info.full_shape),
            )
        )
    else:
      shape = value.shape
      entries.append(
          format_writer.VariableEntry(
              module_key=module_key,
              checkpoint_key=value.op.name,
              slice_spec="",
              dtype=value.dtype.base_dtype,
              shape=tuple(shape.as_list())
              if shape.rank is not None
              else (None,),
          )
      )
  return entries, None


def build_plan(
    estimator: Any, serving_input_fn: Callable[[], Any]
) -> ExportPlan:
  """Builds the PREDICT graph once and plans the export of its modules.

  Mirrors how tensorflow_hub's exporter builds the graph (global step, random
  seed, `serving_input_fn()`, `model_fn(features, None, PREDICT, config)`), but
  keeps the graph for the general path instead of rebuilding it every export.

  Args:
    estimator: the `tf.estimator.Estimator` whose model_fn registers modules.
    serving_input_fn: no-argument function returning a ServingInputReceiver
      (its data is never used).

  Returns:
    The `ExportPlan`; its `modules` is empty when nothing was registered.
  """
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.train.create_global_step(graph)
    tf.compat.v1.set_random_seed(estimator.config.tf_random_seed)
    receiver = serving_input_fn()
    spec = estimator.model_fn(
        features=receiver.features,
        labels=None,
        mode=_PREDICT,
        config=estimator.config,
    )
    scaffold = getattr(spec, "scaffold", None)
    custom_saver = scaffold.saver if scaffold is not None else None
  modules = []
  for export_name, module in registry.get_registered_modules(graph):
    if custom_saver is not None:
      entries, reason = None, "the model_fn's scaffold has its own saver"
    else:
      entries, reason = _variable_entries(module)
    modules.append(ModulePlan(export_name, module, entries, reason))
    if reason:
      logging.info(
          "Module %r will be exported by restoring a session (%s).",
          export_name,
          reason,
      )

  def saver_fn():
    return custom_saver or tf.compat.v1.train.Saver(sharded=True)

  session_config = getattr(estimator, "_session_config", None)
  return ExportPlan(graph, modules, saver_fn, session_config)


def write_modules(
    plan: ExportPlan, checkpoint_path: str, target_dir: str
) -> List[str]:
  """Writes every module of `plan`, with `checkpoint_path`'s values.

  Args:
    plan: from `build_plan`.
    checkpoint_path: the estimator checkpoint to export.
    target_dir: existing folder; module `m` goes to `target_dir/m`.

  Returns:
    The module folders written.
  """
  written = []
  session = None
  try:
    for module_plan in plan.modules:
      path = os.path.join(target_dir, module_plan.export_name)
      if module_plan.uses_fast_path:
        module_plan.copy.write_module(
            module_plan.module.spec, path, checkpoint_path
        )
      else:
        if session is None:
          session = plan.restore_session(checkpoint_path)
        with plan.graph.as_default():
          module_plan.module.export(path, session)
      written.append(path)
  finally:
    if session is not None:
      session.close()
  return written


TF2_DIRNAME = layout.TF2_DIRNAME


def write_tf2_saved_models(module_dirs: Sequence[str], target_dir: str) -> None:
  """Converts written modules into TF2 Reusable SavedModels in `target_dir/tf2/`.

  Args:
    module_dirs: module folders (from `write_modules`), each `.../<name>`.
    target_dir: the staging folder; module `m` converts to `target_dir/tf2/m`.

  Raises:
    tf2_bridge.ConversionError: naming the module and why it cannot convert.
  """
  for module_dir in module_dirs:
    name = os.path.basename(module_dir.rstrip("/"))
    tf2_bridge.export_tf2_saved_model(
        module_dir, os.path.join(target_dir, TF2_DIRNAME, name)
    )


def variable_bytes(plan: ExportPlan) -> int:
  """Bytes of the variable values `plan` copies (fast-path modules only).

  A partitioned variable counts once, at its full shape; the checkpoint
  format adds a little on top (the index file).
  """
  total = 0
  for module_plan in getattr(plan, "modules", ()):
    copy = getattr(module_plan, "copy", None)
    full = {e.checkpoint_key: e for e in (copy.entries if copy else ())}
    for entry in full.values():
      count = 1
      for length in entry.shape:
        count *= length or 0
      total += count * entry.dtype.size
  return total


class PlanCache:
  """Plans shared by every exporter, per estimator and serving_input_fn."""

  def __init__(self):
    self._plans = weakref.WeakKeyDictionary()
    self._lock = threading.Lock()

  def get(
      self, estimator: Any, serving_input_fn: Callable[[], Any]
  ) -> ExportPlan:
    """Returns the cached plan, building it on first use."""
    with self._lock:
      try:
        per_estimator = self._plans.setdefault(estimator, {})
      except TypeError:  # Not weak-referenceable: do not cache.
        per_estimator = {}
      key = (id(serving_input_fn), estimator.model_dir)
      entry = per_estimator.get(key)
      if entry is None or entry[0] is not serving_input_fn:
        entry = (serving_input_fn, build_plan(estimator, serving_input_fn))
        per_estimator[key] = entry
      return entry[1]


PLANS = PlanCache()
