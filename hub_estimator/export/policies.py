"""Latest, best and periodic hub-module exporters around one export core.

All three are `tf.estimator.Exporter`s for `EvalSpec(exporters=[...])` and
write `export_path/<version>/<export_name>/` module folders (the layout of
tensorflow_hub 0.15's LatestModuleExporter) plus `export_metadata.json` (and
`operative_config.gin` when gin is in use) in each version folder. Their state
(best value so far, last export step and time) is read back from those
metadata files, so it survives restarts; nothing is kept only in memory.
"""

import abc
import math
import os
import shutil
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from absl import logging
import gin
import tensorflow as tf

from hub_estimator.export import core
from hub_estimator.export import failures
from hub_estimator.export import layout
from hub_estimator.export import provenance
from hub_estimator.export import registry
from hub_estimator.export import retention
from hub_estimator.export import writer as writer_lib


class ExportError(RuntimeError):
  """An export could not be written.

  Raised when `raise_on_failure=True`, and always for the final evaluation's
  export (`is_the_final_export`): no later evaluation would retry it, so the
  run must not end as a success without its module.
  """


class _Published(NamedTuple):
  version: layout.Version
  metadata: Optional[Dict[str, Any]]


class _Decision(NamedTuple):
  export: bool
  reason: str


class ModuleExporter(tf.estimator.Exporter, metaclass=abc.ABCMeta):
  """Base class: writes the registered modules when `_decide` says so.

  Subclasses define the policy (`_decide`), the retention (`_to_delete`) and
  the policy description recorded in the metadata (`policy`).
  """

  def __init__(
      self,
      name: str,
      serving_input_fn: Callable[[], Any],
      exports_to_keep: Optional[int],
      raise_on_failure: bool,
      tf2_saved_model: bool = False,
  ):
    """Checks and keeps the settings every exporter has.

    Args:
      name: unique name of this exporter; the folder under `model_dir/export/`.
      serving_input_fn: no-argument function returning a ServingInputReceiver;
        used once to build the PREDICT graph that registers the modules (the
        model never runs, so its data does not matter).
      exports_to_keep: how many versions retention keeps (which ones is the
        subclass's rule); None keeps all.
      raise_on_failure: if True a failed export raises `ExportError` (stopping
        training); if False it logs one error, records it for the run's
        summary, and the next evaluation retries. A failed export of the
        final evaluation raises either way.
      tf2_saved_model: if True each version also holds `tf2/<module name>/`,
        a TF2 Reusable SavedModel of each module (`export_tf2_saved_model`),
        published in the same atomic step.

    Raises:
      ValueError: naming the class and argument, for a bad value.
    """
    cls = type(self).__name__
    if not isinstance(tf2_saved_model, bool):
      raise ValueError(
          "%s.tf2_saved_model must be True or False. Details: got %r"
          % (cls, tf2_saved_model)
      )
    self._tf2_saved_model = tf2_saved_model
    if not isinstance(name, str) or not name:
      raise ValueError(
          "%s.name must be a non-empty string. Details: got %r" % (cls, name)
      )
    if not callable(serving_input_fn):
      raise ValueError(
          "%s.serving_input_fn must be a function with no arguments returning "
          "a ServingInputReceiver. Details: got %r" % (cls, serving_input_fn)
      )
    problem = retention.find_exports_to_keep_error(exports_to_keep)
    if problem:
      raise ValueError("%s.%s" % (cls, problem))
    self._name = name
    self._serving_input_fn = serving_input_fn
    self._exports_to_keep = exports_to_keep
    self._raise_on_failure = bool(raise_on_failure)
    # Bytes staged before the disk filled, bytes free then (None: unknown),
    # and bytes of the module variables, in the current export (for the
    # message of a full disk).
    self._staged_bytes = 0
    self._free_at_failure = None
    self._variable_bytes = 0

  @property
  def name(self) -> str:
    return self._name

  @property
  def policy(self) -> Dict[str, Any]:
    """The settings of this exporter, as recorded in export_metadata.json."""
    return {"exports_to_keep": self._exports_to_keep}

  # -- history read back from the export folder ------------------------------

  def _history(self, writer: writer_lib.ExportWriter) -> List[_Published]:
    """All published versions with their metadata (None if unreadable).

    Read from disk every time (never remembered), so a restarted process, or
    folders changed by hand, are seen as they are.
    """
    return [
        _Published(v, layout.read_metadata(v.path)) for v in writer.versions()
    ]

  # -- policy hooks ------------------------------------------------------------

  def _check_eval_result(self, eval_result) -> None:
    """Raises ValueError if `eval_result` cannot be judged by this policy."""

  @abc.abstractmethod
  def _decide(
      self,
      writer: writer_lib.ExportWriter,
      checkpoint_path: str,
      eval_result,
      is_the_final_export,
  ) -> _Decision:
    """Whether this evaluation is exported (the policy's own rule)."""

  def _keep(self, room: int) -> Optional[int]:
    """exports_to_keep, less `room` versions to make space for (at least 1)."""
    if self._exports_to_keep is None:
      return None
    return max(1, self._exports_to_keep - room)

  def _to_delete(
      self, writer: writer_lib.ExportWriter, room: int = 0
  ) -> List[layout.Version]:
    """The versions retention removes; the newest N by default.

    Args:
      writer: the export folder's writer.
      room: how many versions about to be published to make room for (1 on
        a full disk, so that exports_to_keep holds once it is published).
    """
    return retention.newest_to_delete(
        writer.versions(), self._keep(room), lambda v: v.version
    )

  # -- the export -------------------------------------------------------------

  def export(
      self,
      estimator,
      export_path,
      checkpoint_path=None,
      eval_result=None,
      is_the_final_export=None,
  ):
    """Exports the registered modules if the policy says so.

    Args:
      estimator: the `Estimator` whose model_fn registers modules with
        `register_module_for_export` (in PREDICT mode).
      export_path: the base folder of this exporter's versions.
      checkpoint_path: the checkpoint to export; None means the estimator's
        latest checkpoint.
      eval_result: the evaluation of `checkpoint_path` (dict of metrics); None
        when not evaluated (only the latest exporter accepts that).
      is_the_final_export: whether this is the last evaluation of training.

    Returns:
      The path (bytes, as tensorflow_hub's exporter) of the new version
      folder, or None if nothing was exported (policy, no registered modules,
      no checkpoint, a checkpoint at global step 0 (untrained), or a failure
      when `raise_on_failure` is False).

    Raises:
      ValueError: if the evaluation lacks what the policy needs (e.g. the
        metric), or the model_fn registers modules wrongly.
      ExportError: if writing fails and `raise_on_failure` is True.
    """
    cls = type(self).__name__
    if checkpoint_path is None:
      checkpoint_path = estimator.latest_checkpoint()
    if checkpoint_path is None:
      logging.warning(
          "%s %r: no checkpoint to export yet; skipped.", cls, self._name
      )
      return None
    checkpoint_path = tf.compat.as_str_any(checkpoint_path)
    export_path = tf.compat.as_str_any(export_path)
    if provenance.global_step_of(eval_result, checkpoint_path) == 0:
      logging.warning(
          "%s %r: not exporting %s: it is at global step 0 (nothing was "
          "trained, e.g. the training input was empty), so it would publish "
          "an untrained module.",
          cls,
          self._name,
          checkpoint_path,
      )
      return None
    self._check_eval_result(eval_result)
    self._staged_bytes = 0
    self._free_at_failure = None
    self._variable_bytes = 0
    writer = writer_lib.ExportWriter(export_path)
    # Before deciding, so that leftovers of a crash go, and exports_to_keep
    # holds again after a crash between a publish and its retention, even
    # when nothing is exported.
    writer.clean_stale_temp_dirs()
    self._apply_retention(writer, None)
    done = self._exported_from(writer, checkpoint_path)
    if done is not None:
      logging.info(
          "%s %r: checkpoint %s is already exported as %s; skipped.",
          cls,
          self._name,
          checkpoint_path,
          done.path,
      )
      return None
    decision = self._decide(
        writer, checkpoint_path, eval_result, is_the_final_export
    )
    if not decision.export:
      logging.info(
          "%s %r: not exporting %s: %s.",
          cls,
          self._name,
          checkpoint_path,
          decision.reason,
      )
      return None
    plan = core.PLANS.get(estimator, self._serving_input_fn)
    if not plan.modules:
      logging.warning(
          "%s %r found zero modules to export. Call "
          "hub_estimator.register_module_for_export(module, export_name) in "
          "the model_fn (PREDICT mode included).",
          cls,
          self._name,
      )
      return None

    self._variable_bytes = core.variable_bytes(plan)

    def attempt():
      return self._write_and_publish(
          writer, plan, checkpoint_path, eval_result, is_the_final_export
      )

    try:
      try:
        published = attempt()
      except Exception as e:  # pylint: disable=broad-except
        if not failures.is_disk_full(e):
          raise
        # Free what we can (our staging is gone already), then once more.
        logging.warning(
            "%s %r: the disk is full exporting into %s (%s); applying "
            "retention and retrying once.",
            cls,
            self._name,
            export_path,
            failures.error_cause(e),
        )
        writer.clean_stale_temp_dirs()
        self._apply_retention(writer, None, room=1)
        published = attempt()
    except Exception as e:  # pylint: disable=broad-except
      message = self._failure_message(writer, checkpoint_path, e)
      if self._raise_on_failure:
        raise ExportError(message) from e
      if is_the_final_export:
        # Nothing after the final evaluation would try again: stop loudly.
        # The evaluation stays recorded as pending (preemption.py), so a
        # re-run of the same command evaluates and exports it again.
        raise ExportError(
            "%s This was the final evaluation, so no later one retries it: "
            "fix the cause and re-run the same command, which evaluates and "
            "exports this checkpoint again." % message
        ) from e
      logging.error(
          "%s Training continues; the next evaluation will try again (set "
          "raise_on_failure=True to stop instead).",
          message,
      )
      eval_dir = getattr(estimator, "eval_dir", None)
      if callable(eval_dir):  # Any tf.estimator.Estimator.
        failures.record_failure(
            eval_dir(),
            self._name,
            checkpoint_path,
            provenance.global_step_of(eval_result, checkpoint_path),
            failures.error_cause(e),
        )
      return None

    logging.info(
        "%s %r exported %s (%s) to %s.",
        cls,
        self._name,
        checkpoint_path,
        decision.reason,
        published.path,
    )
    self._apply_retention(writer, published)
    return tf.compat.as_bytes(published.path)

  def _exported_from(
      self, writer: writer_lib.ExportWriter, checkpoint_path: str
  ) -> Optional[layout.Version]:
    """The published version made from `checkpoint_path`, or None.

    Read from the versions' export_metadata.json, so an evaluation redone
    after a restart does not publish the same checkpoint twice.
    """
    for published in reversed(self._history(writer)):
      metadata = published.metadata or {}
      if metadata.get("checkpoint_path") == checkpoint_path:
        return published.version
    return None

  def _write_and_publish(
      self,
      writer: writer_lib.ExportWriter,
      plan: core.ExportPlan,
      checkpoint_path: str,
      eval_result,
      is_the_final_export,
  ) -> layout.Version:
    """Stages every module with its provenance, then publishes the version.

    The staging folder is removed on any failure (and on interrupts).
    """
    staging = writer.new_staging_dir()
    try:
      module_dirs = core.write_modules(plan, checkpoint_path, staging)
      module_sources = registry.get_module_sources(plan.graph)
      gin_text = provenance.operative_gin_config()
      gin_file = None
      if gin_text is not None:
        gin_text = provenance.module_sources_header(module_sources) + gin_text
        gin_file = provenance.write_gin_config(staging, gin_text)
        for module_dir in module_dirs:
          provenance.attach_text(
              module_dir, provenance.GIN_CONFIG_ATTACHMENT_KEY, gin_text
          )
      policy = dict(self.policy)
      if self._tf2_saved_model:
        # From the staged modules (with their attachments), into the same
        # staging folder: published by the same rename.
        core.write_tf2_saved_models(module_dirs, staging)
        policy["tf2_saved_model"] = True
      metadata = provenance.make_metadata(
          exporter_name=self._name,
          exporter_class=type(self).__name__,
          policy=policy,
          checkpoint_path=checkpoint_path,
          eval_result=eval_result,
          is_the_final_export=is_the_final_export,
          modules=[m.export_name for m in plan.modules],
          created=time.time(),
          gin_config_file=gin_file,
          export_base_dir=writer.base_dir,
          module_sources=module_sources,
      )
      layout.write_metadata(staging, metadata)
      published = writer.publish(staging)
    except BaseException as e:
      if failures.is_disk_full(e):
        # Before discarding: together they are what this export had.
        self._staged_bytes = writer.size_bytes(staging)
        self._free_at_failure = _free_bytes(writer.base_dir)
      writer.discard(staging)
      raise
    return published

  def _failure_message(
      self,
      writer: writer_lib.ExportWriter,
      checkpoint_path: str,
      error: Exception,
  ) -> str:
    """One message: exporter, checkpoint, folder, and the cause."""
    cls = type(self).__name__
    head = (
        "%s %r failed to export checkpoint %s into %s; nothing was "
        % (
            cls,
            self._name,
            checkpoint_path,
            writer.base_dir,
        )
        + "published."
    )
    if failures.is_disk_full(error):
      head += (
          " The disk is full: after removing abandoned staging folders, "
          "making room by retention (exports_to_keep=%r) and retrying once, "
          % (self._exports_to_keep,)
          + self._space_text(writer)
      )
    return "%s Cause: %s." % (head, failures.error_cause(error).rstrip("."))

  def _space_text(self, writer: writer_lib.ExportWriter) -> str:
    """What a full disk lacks: the bytes the export needs vs. free now.

    The estimate (bytes on disk, whole blocks) is the largest of: the newest
    version of this exporter or of a sibling exporter of the run (they
    publish the same modules); the module variables; and, when the file
    system reports free space, more than what the failed attempt had (its
    staged bytes plus the bytes free when the disk filled), since that did
    not fit.
    """
    block = _block_bytes(writer.base_dir)
    sources = [writer.base_dir] + _sibling_export_dirs(writer.base_dir)
    newest = 0
    for base_dir in sources:
      version = layout.newest_version(base_dir)
      if version is not None:
        newest = max(newest, writer.size_bytes(version.path))
    needed = max(newest, -(-self._variable_bytes // block) * block)
    if self._free_at_failure is not None:
      needed = max(needed, self._staged_bytes + self._free_at_failure + block)
    free = _free_bytes(writer.base_dir)
    text = (
        "the export needs about %d bytes on disk (the largest of: the newest"
        " version of this or a sibling exporter, the module variables, more"
        " than the %d bytes it had staged plus the %s free when the disk"
        " filled)"
        % (
            needed,
            self._staged_bytes,
            "unknown bytes"
            if self._free_at_failure is None
            else "%d bytes" % self._free_at_failure,
        )
    )
    if free is None:
      return text + "; free space of %s unknown." % writer.base_dir
    text += "; %d bytes are free on %s now" % (free, writer.base_dir)
    if free >= needed:
      text += (
          ", more than then: another process freed space since (a retry may"
          " succeed)"
      )
    return text + "."

  def _apply_retention(
      self,
      writer: writer_lib.ExportWriter,
      new: Optional[layout.Version],
      room: int = 0,
  ) -> None:
    """Removes what the retention rule says; never `new` (just published)."""
    try:
      for version in self._to_delete(writer, room):
        if new is not None and version.path == new.path:
          continue  # Never delete what was just published.
        writer.remove_version(version)
        logging.info(
            "%s %r: removed old export %s.",
            type(self).__name__,
            self._name,
            version.path,
        )
    except Exception as e:  # pylint: disable=broad-except
      logging.warning(
          "%s %r: could not apply retention in %s: %s",
          type(self).__name__,
          self._name,
          writer.base_dir,
          failures.error_cause(e),
      )


def _free_bytes(path: str) -> Optional[int]:
  """Bytes free for unprivileged writers on `path`'s file system, or None."""
  try:
    return shutil.disk_usage(path).free
  except OSError:
    return None  # Not local (gs://), or gone.


def _block_bytes(path: str) -> int:
  """The allocation unit of `path`'s file system (bytes; 4096 if unknown)."""
  try:
    return os.statvfs(path).f_frsize or 4096
  except (OSError, AttributeError):
    return 4096


def _sibling_export_dirs(base_dir: str) -> List[str]:
  """The other exporters' folders of the run, when `base_dir` is
  `model_dir/export/<name>` (elsewhere the folders beside it are not
  exporters: none)."""
  base_dir = base_dir.rstrip("/")
  parent = os.path.dirname(base_dir)
  if os.path.basename(parent) != layout.EXPORT_DIRNAME:
    return []
  return [
      os.path.join(parent, name)
      for name in layout.list_subdirs(parent)
      if os.path.join(parent, name) != base_dir
  ]


@gin.configurable(module="hub_estimator")
class LatestModuleExporter(ModuleExporter):
  """Exports the registered modules at every evaluation; keeps the newest N.

  A drop-in for tensorflow_hub 0.15's `hub.LatestModuleExporter`: same
  arguments, layout (`export_path/<version>/<export_name>/`) and return value.
  """

  def __init__(
      self,
      name: str,
      serving_input_fn: Callable[[], Any],
      exports_to_keep: Optional[int] = 5,
      raise_on_failure: bool = False,
      tf2_saved_model: bool = False,
  ):
    """Creates the exporter.

    Args:
      name, serving_input_fn, raise_on_failure, tf2_saved_model: as for
        `ModuleExporter.__init__`.
      exports_to_keep: how many of the newest versions to keep; None keeps all.
    """
    super().__init__(
        name,
        serving_input_fn,
        exports_to_keep,
        raise_on_failure,
        tf2_saved_model,
    )

  def _decide(self, writer, checkpoint_path, eval_result, is_the_final_export):
    return _Decision(True, "latest checkpoint")


@gin.configurable(module="hub_estimator")
class BestModuleExporter(ModuleExporter):
  """Exports when an evaluation beats every earlier one; keeps the true top-k.

  The best value so far is read back from the `export_metadata.json` of the
  published versions at every export, so after a restart a worse evaluation is
  never published (unlike tf.estimator's BestExporter, which force-exports the
  first evaluation of each process). Retention ranks versions by the metric,
  not by age, and never removes the best one.
  """

  def __init__(
      self,
      name: str,
      serving_input_fn: Callable[[], Any],
      metric: str = "loss",
      mode: str = "min",
      exports_to_keep: Optional[int] = 1,
      min_delta: float = 0.0,
      raise_on_failure: bool = False,
      tf2_saved_model: bool = False,
  ):
    """Creates the exporter.

    Args:
      name, serving_input_fn, raise_on_failure, tf2_saved_model: as for
        `ModuleExporter.__init__`.
      metric: the key in the evaluation results to compare, e.g. "loss",
        "accuracy".
      mode: "min" if smaller values are better, "max" if larger are.
      exports_to_keep: how many of the best versions to keep; None keeps all.
      min_delta: an evaluation must beat the best so far by more than this
        (>= 0) to be exported. Ties never export.
    """
    super().__init__(
        name,
        serving_input_fn,
        exports_to_keep,
        raise_on_failure,
        tf2_saved_model,
    )
    if not isinstance(metric, str) or not metric:
      raise ValueError(
          "BestModuleExporter.metric must be a non-empty string. "
          "Details: got %r" % (metric,)
      )
    problem = layout.find_mode_error(mode)
    if problem:
      raise ValueError("BestModuleExporter." + problem)
    if (
        isinstance(min_delta, bool)
        or not isinstance(min_delta, (int, float))
        or not min_delta >= 0
        or math.isinf(min_delta)
    ):
      raise ValueError(
          "BestModuleExporter.min_delta must be a finite number "
          ">= 0. Details: got %r" % (min_delta,)
      )
    self._metric = metric
    self._mode = mode
    self._min_delta = float(min_delta)

  @property
  def metric(self) -> str:
    """The evaluation metric compared."""
    return self._metric

  @property
  def mode(self) -> str:
    """'min' or 'max': which values of `metric` are better."""
    return self._mode

  @property
  def policy(self) -> Dict[str, Any]:
    return {
        "exports_to_keep": self._exports_to_keep,
        "metric": self._metric,
        "mode": self._mode,
        "min_delta": self._min_delta,
    }

  def _check_eval_result(self, eval_result) -> None:
    if not eval_result:
      raise ValueError(
          "BestModuleExporter %r needs the evaluation results to compare %r, "
          "but got %r. Use it in an EvalSpec's exporters."
          % (self._name, self._metric, eval_result)
      )
    if self._metric not in eval_result:
      raise ValueError(
          "BestModuleExporter %r: metric %r is not in the evaluation results. "
          "Available metrics: %s. Set BestModuleExporter.metric to one of them."
          % (
              self._name,
              self._metric,
              ", ".join(sorted(str(k) for k in eval_result)),
          )
      )
    if layout.metric_value(eval_result[self._metric]) is None:
      raise ValueError(
          "BestModuleExporter %r: metric %r must be a scalar number. Details: "
          "got %r" % (self._name, self._metric, eval_result[self._metric])
      )

  def _scored(self, base_dir: str) -> List[Tuple[layout.Version, float]]:
    scored, unranked = layout.scored_versions(base_dir, self._metric)
    if unranked:
      logging.warning(
          "BestModuleExporter %r: ignoring (and keeping) versions without "
          "metric %r in their %s: %s",
          self._name,
          self._metric,
          layout.METADATA_FILENAME,
          ", ".join(v.path for v in unranked),
      )
    return scored

  def best_so_far(self, export_path) -> Optional[Tuple[float, str]]:
    """Returns (value, version path) of the best published version, or None."""
    best = layout.best_version(
        self._scored(tf.compat.as_str_any(export_path)), self._mode
    )
    if best is None:
      return None
    version, value = best
    return value, version.path

  def _decide(self, writer, checkpoint_path, eval_result, is_the_final_export):
    value = layout.metric_value(eval_result[self._metric])
    if math.isnan(value):
      return _Decision(False, "%s is NaN" % self._metric)
    best = self.best_so_far(writer.base_dir)
    if best is None:
      return _Decision(
          True, "first evaluation with %s=%r" % (self._metric, value)
      )
    best_value, best_path = best
    if layout.is_better(value, best_value, self._mode, self._min_delta):
      return _Decision(
          True,
          "%s=%r beats the best so far %r" % (self._metric, value, best_value),
      )
    return _Decision(
        False,
        "%s=%r does not beat the best so far %r (%s, mode=%s, min_delta=%r)"
        % (
            self._metric,
            value,
            best_value,
            best_path,
            self._mode,
            self._min_delta,
        ),
    )

  def _to_delete(self, writer, room=0):
    doomed = retention.best_to_delete(
        self._scored(writer.base_dir),
        self._keep(room),
        self._mode,
        lambda s: s[1],
        lambda s: s[0].version,
    )
    return [version for version, _ in doomed]


@gin.configurable(module="hub_estimator")
class PeriodicModuleExporter(ModuleExporter):
  """Exports every N steps and/or seconds, and always on the final evaluation.

  "A module every 10k steps, kept forever" is
  `PeriodicModuleExporter("every_10k", fn, every_n_steps=10000)`. The last
  export's step and time are read back from its export_metadata.json, so the
  period carries over restarts.
  """

  def __init__(
      self,
      name: str,
      serving_input_fn: Callable[[], Any],
      every_n_steps: Optional[int] = None,
      every_n_secs: Optional[float] = None,
      exports_to_keep: Optional[int] = None,
      raise_on_failure: bool = False,
      tf2_saved_model: bool = False,
  ):
    """Creates the exporter.

    Args:
      name, serving_input_fn, raise_on_failure, tf2_saved_model: as for
        `ModuleExporter.__init__`.
      every_n_steps: export when at least this many global steps passed since
        the last export (since step 0 before the first); None disables.
      every_n_secs: export when at least this many seconds passed since the
        last export (since this exporter was created before the first); None
        disables. At least one of the two must be set; either one triggers.
      exports_to_keep: how many of the newest versions to keep; None keeps all.
    """
    super().__init__(
        name,
        serving_input_fn,
        exports_to_keep,
        raise_on_failure,
        tf2_saved_model,
    )
    if every_n_steps is None and every_n_secs is None:
      raise ValueError(
          "PeriodicModuleExporter needs every_n_steps or "
          "every_n_secs (or both). Details: both are None"
      )
    if every_n_steps is not None and (
        isinstance(every_n_steps, bool)
        or not isinstance(every_n_steps, int)
        or every_n_steps <= 0
    ):
      raise ValueError(
          "PeriodicModuleExporter.every_n_steps must be a "
          "positive integer or None. Details: got %r" % (every_n_steps,)
      )
    if every_n_secs is not None and (
        isinstance(every_n_secs, bool)
        or not isinstance(every_n_secs, (int, float))
        or not every_n_secs > 0
    ):
      raise ValueError(
          "PeriodicModuleExporter.every_n_secs must be a "
          "positive number or None. Details: got %r" % (every_n_secs,)
      )
    self._every_n_steps = every_n_steps
    self._every_n_secs = every_n_secs
    self._created = time.time()

  @property
  def policy(self) -> Dict[str, Any]:
    return {
        "exports_to_keep": self._exports_to_keep,
        "every_n_steps": self._every_n_steps,
        "every_n_secs": self._every_n_secs,
    }

  def _last_export(self, writer) -> Optional[Dict[str, Any]]:
    for version in reversed(writer.versions()):
      metadata = layout.read_metadata(version.path)
      if metadata is not None:
        return metadata
    return None

  def _decide(self, writer, checkpoint_path, eval_result, is_the_final_export):
    step = provenance.global_step_of(eval_result, checkpoint_path)
    last = self._last_export(writer)
    last_step = last.get("global_step") if last else None
    if step is not None and last_step == step:
      return _Decision(False, "step %d is already exported" % step)
    if is_the_final_export:
      return _Decision(True, "final evaluation")
    if self._every_n_steps is not None and step is not None:
      since = step - (last_step if isinstance(last_step, int) else 0)
      if since >= self._every_n_steps:
        return _Decision(True, "%d steps since the last export" % since)
    if self._every_n_secs is not None:
      last_time = last.get("created_unix_time") if last else None
      if not isinstance(last_time, (int, float)):
        last_time = self._created
      elapsed = time.time() - last_time
      if elapsed >= self._every_n_secs:
        return _Decision(True, "%.0f s since the last export" % elapsed)
    return _Decision(
        False,
        "not due yet (every_n_steps=%r, every_n_secs=%r)"
        % (self._every_n_steps, self._every_n_secs),
    )
