"""Runs a gin-configured experiment: Estimator, exporters, train_and_evaluate.

`run()` builds the `Experiment` configured in gin, checks everything that can
be checked before training (module source, features against the module
signature, exporters), writes `model_dir/config.gin`, then trains and
evaluates with `tf.estimator.train_and_evaluate` (which also handles the
TF_CONFIG roles chief / worker / ps / evaluator) and returns a `RunResult`.
"""

import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from absl import logging
import gin
import gin.tf
import tensorflow as tf

from hub_estimator import cluster
from hub_estimator import gin_checks
from hub_estimator import gin_utils
from hub_estimator import preemption
from hub_estimator import progress
from hub_estimator import run_result
from hub_estimator import export as export_lib
from hub_estimator.consume import sources
from hub_estimator.export import layout
from hub_estimator.models import data_files
from hub_estimator.models import heads
from hub_estimator.models import model_fn as model_fn_lib

# What `run()` raises when the final evaluation's export fails (no later
# evaluation would retry it); a re-run of the same command redoes it.
ExportError = export_lib.ExportError

_v1 = tf.compat.v1


class RunError(RuntimeError):
  """A run started but cannot finish correctly; the message says why."""


class InputEndedError(RunError):
  """The training input ended before `train_steps` (and that was not meant)."""


class DataError(RunError):
  """TensorFlow rejected a record; the message names the file and record."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class RunSettings:
  """Checkpointing, logging and evaluation cadence of a run.

  Attributes:
    save_checkpoints_steps: checkpoint (and so evaluate and export) every N
      steps; None means use `save_checkpoints_secs`.
    save_checkpoints_secs: checkpoint every N seconds (when steps is None).
    keep_checkpoint_max: checkpoints kept; 0 or None keeps all.
    tf_random_seed: graph-level seed; None means nondeterministic.
    save_summary_steps: TensorBoard train summaries every N steps.
    log_every_n_steps: progress line (step, loss, steps/sec) every N steps.
    eval_steps: batches per evaluation; None means until the eval input_fn
      ends.
    eval_throttle_secs: minimum seconds between evaluations; 0 evaluates at
      every new checkpoint.
    evaluator_poll_secs: on a TF_CONFIG `evaluator` task, the least seconds
      between two looks for a new checkpoint (the evaluator loops; at 0 it
      would spin); the evaluator uses max(eval_throttle_secs, this).
  """

  save_checkpoints_steps: Optional[int] = 500
  save_checkpoints_secs: Optional[int] = None
  keep_checkpoint_max: Optional[int] = 3
  tf_random_seed: Optional[int] = 0
  save_summary_steps: int = 100
  log_every_n_steps: int = 100
  eval_steps: Optional[int] = None
  eval_throttle_secs: int = 0
  evaluator_poll_secs: int = 2

  def __post_init__(self):
    def check(name, allow_none, minimum):
      value = getattr(self, name)
      if value is None and allow_none:
        return
      if isinstance(value, bool) or not isinstance(value, int):
        problem = 'an integer'
      elif value < minimum:
        problem = 'a positive integer' if minimum == 1 else f'>= {minimum}'
      else:
        return
      raise gin_utils.config_error(
          f'RunSettings.{name} must be {problem}'
          f'{" or None" if allow_none else ""}; got {value!r}.'
      )

    if self.save_checkpoints_steps is not None and (
        self.save_checkpoints_secs is not None
    ):
      raise gin_utils.config_error(
          'Set only one of RunSettings.save_checkpoints_steps and'
          ' RunSettings.save_checkpoints_secs; got'
          f' {self.save_checkpoints_steps} and {self.save_checkpoints_secs}.'
      )
    if self.save_checkpoints_steps is None and (
        self.save_checkpoints_secs is None
    ):
      raise gin_utils.config_error(
          'One of RunSettings.save_checkpoints_steps and'
          ' RunSettings.save_checkpoints_secs must be set (evaluation and'
          ' export happen at checkpoints).'
      )
    check('save_checkpoints_steps', True, 1)
    check('save_checkpoints_secs', True, 1)
    check('keep_checkpoint_max', True, 0)
    check('tf_random_seed', True, 0)
    check('save_summary_steps', False, 1)
    check('log_every_n_steps', False, 1)
    check('eval_steps', True, 1)
    check('eval_throttle_secs', False, 0)
    check('evaluator_poll_secs', False, 1)


def _element_spec(input_fn: Callable[[], Any], key: str) -> Any:
  """Builds `input_fn` in a scratch graph; returns its element TypeSpecs."""
  with tf.Graph().as_default():
    try:
      result = input_fn()
    except Exception as e:  # pylint: disable=broad-except
      raise gin_utils.config_error(f'{key} failed to build: {e}') from e
    if isinstance(result, tf.data.Dataset):
      return result.element_spec
    return tf.nest.map_structure(tf.type_spec_from_value, result)


def _split(spec: Any):
  """(features, labels) of an element spec; labels None when absent."""
  if isinstance(spec, tuple) and len(spec) == 2:
    return spec
  return spec, None


def _feature_specs(features: Any) -> Dict[Any, Any]:
  """Feature key -> TypeSpec; the key None stands for a single tensor."""
  if isinstance(features, Mapping):
    return dict(features)
  return {None: features}


def _graph_error(mode: str, key: str, error: Exception) -> str:
  """What failed while building the model's graph, blaming the configurable."""
  text = str(error).strip()
  marker = "In call to configurable '"
  where = ''
  if marker in text:
    name = text.rsplit(marker, 1)[1].split("'", 1)[0]
    where = f' in configurable {name}'
  first = text.splitlines()[0] if text else type(error).__name__
  return (
      f"Building the model's {mode.upper()} graph (for {key}) failed{where}:"
      f' {type(error).__name__}: {first}'
  )


def _labels_check(head: Any) -> Optional[Callable[[Any], Optional[str]]]:
  """element -> the head's complaint about its labels (or None)."""
  find_labels_error = getattr(head, 'find_labels_error', None)
  if find_labels_error is None:
    return None

  def check(element):
    _, labels = _split(element)
    return None if labels is None else find_labels_error(labels)

  return check


def _data_error_text(
    input_fn: Callable[[], Any], error: Exception, head: Any
) -> str:
  """TensorFlow's error, with the file and record when they can be found.

  The input's files are re-read to find the first record that fails to
  read or whose labels the head rejects; it is named only when it fails
  the way TensorFlow reported (`data_files.explains`), so a bad record
  elsewhere is never blamed for another error.
  """
  text = data_files.error_text(error)
  find_data_error = getattr(input_fn, 'find_data_error', None)
  if find_data_error is None:
    return f'{text} (TensorFlow {type(error).__name__})'
  try:
    located = find_data_error(check=_labels_check(head))
  except (tf.errors.OpError, ValueError) as e:
    logging.warning('Could not locate the data error: %s', e)
    located = None
  if data_files.explains(located, error):
    return str(located)
  return (
      f'{text} (TensorFlow {type(error).__name__}; re-reading the input files'
      ' did not find the record that fails this way)'
  )


class _EvalPhase(tf.estimator.SessionRunHook):
  """Knows whether an evaluation is running, to blame the right input_fn.

  In a local run, evaluations run inside training (at each checkpoint), so
  an error during one belongs to the eval input_fn: `begin` is called once
  the evaluation graph is built, `end` only when it completes.
  """

  def __init__(self, evaluating: bool):
    self.evaluating = evaluating
    self._default = evaluating

  def begin(self):
    self.evaluating = True

  def end(self, session):
    del session
    self.evaluating = self._default


def _cardinality(input_fn: Callable[[], Any]) -> int:
  """Batches `input_fn`'s dataset yields, as tf.data knows it.

  Returns:
    A count, tf.data.INFINITE_CARDINALITY (-1) or UNKNOWN_CARDINALITY (-2,
    also for an input_fn that returns tensors rather than a dataset).
  """
  with tf.Graph().as_default():
    dataset = input_fn()
    if not isinstance(dataset, tf.data.Dataset):
      return tf.data.UNKNOWN_CARDINALITY
    cardinality = tf.data.experimental.cardinality(dataset)
    with _v1.Session() as session:
      return int(session.run(cardinality))


def _placeholders(spec: Any) -> Any:
  """Placeholders shaped like `spec` (dense or sparse), in the default graph."""

  def make(s):
    if isinstance(s, tf.SparseTensorSpec):
      return _v1.sparse_placeholder(s.dtype, s.shape)
    return _v1.placeholder(s.dtype, s.shape)

  return tf.nest.map_structure(make, spec)


@gin.configurable
class Experiment:
  """One training run, entirely described by gin."""

  def __init__(
      self,
      model_dir: Optional[str] = None,
      train_steps: Optional[int] = None,
      module_source: Optional[sources.ModuleSource] = None,
      train_input_fn: Optional[Callable[[], Any]] = None,
      eval_input_fn: Optional[Callable[[], Any]] = None,
      model_fn_factory: Callable[..., Any] = model_fn_lib.make_model_fn,
      exporter_fns: Sequence[Callable[..., Any]] = (),
      settings: Optional[RunSettings] = None,
      best_metric: Optional[str] = None,
      best_metric_mode: str = 'min',
      train_input_is_finite: bool = False,
  ):
    """Creates the experiment; nothing runs yet.

    Args:
      model_dir: run directory (checkpoints, summaries, export/); bind it to
        the `MODEL_DIR` macro.
      train_steps: global step to train to; bind it to `TRAIN_STEPS`.
      module_source: where the module comes from, e.g. `@ModuleFnSource()`.
      train_input_fn: training input_fn, e.g. `@train/digits_input()`.
      eval_input_fn: evaluation input_fn, e.g. `@eval/digits_input()`.
      model_fn_factory: called as `model_fn_factory(module_source=...)`,
        returns the model_fn (default `make_model_fn`, configured in gin).
      exporter_fns: exporter classes or factories, each called with
        `serving_input_fn=` (derived from the module signature), e.g.
        `[@best/BestModuleExporter, @latest/LatestModuleExporter]` with their
        `name` bound per scope. Empty means no exports.
      settings: checkpoint / logging / eval cadence; None means
        `RunSettings()` defaults.
      best_metric: the evaluation metric the final summary reports the best
        value of; None means the metric and mode of the first
        `BestModuleExporter` of `exporter_fns` (so gin sets them once), or
        `loss` when there is none.
      best_metric_mode: `min` or `max`: which values of an explicitly set
        `best_metric` are better.
      train_input_is_finite: False (the default) means a run whose training
        input ends before `train_steps` fails with `InputEndedError` (a
        header-only CSV or an exhausted `num_epochs` must not pass as a
        finished run); True means the training input is meant to end
        (`num_epochs` set) and stopping at its end is a success.
    """
    missing = [
        k
        for k, v in (
            ('model_dir', model_dir),
            ('train_steps', train_steps),
            ('module_source', module_source),
            ('train_input_fn', train_input_fn),
            ('eval_input_fn', eval_input_fn),
        )
        if v is None
    ]
    if missing:
      raise gin_utils.config_error(
          'Experiment needs '
          + ', '.join(f'Experiment.{k}' for k in missing)
          + ' to be bound (MODEL_DIR and TRAIN_STEPS are macros).'
      )
    if not isinstance(train_steps, int) or train_steps <= 0:
      raise gin_utils.config_error(
          'Experiment.train_steps (macro TRAIN_STEPS) must be a positive'
          f' integer; got {train_steps!r}.'
      )
    if not isinstance(model_dir, str) or not model_dir:
      raise gin_utils.config_error(
          'Experiment.model_dir (macro MODEL_DIR) must be a non-empty path;'
          f' got {model_dir!r}.'
      )
    problem = layout.find_mode_error(best_metric_mode)
    if problem:
      raise gin_utils.config_error(f'Experiment.best_metric_{problem}')
    self.model_dir = model_dir
    self.train_steps = train_steps
    self.module_source = module_source
    self.train_input_fn = train_input_fn
    self.eval_input_fn = eval_input_fn
    self.settings = settings or RunSettings()
    self.best_metric = best_metric
    self.best_metric_mode = best_metric_mode
    self.train_input_is_finite = bool(train_input_is_finite)
    self._model_fn_factory = model_fn_factory
    self._exporter_fns = list(exporter_fns)
    self.model_fn = None
    self.exporters = None

  def prepare(self) -> None:
    """Checks everything that can fail before training and builds the parts.

    Checked, in order: TF_CONFIG; the run settings as tf.estimator's
    RunConfig takes them; the module source; the input files (exist,
    readable, hold a record, not truncated); features against the module
    signature; the TRAIN, EVAL and PREDICT graphs; a first batch of each
    input_fn (there is data, and its labels fit the head); the exporters and
    the metrics they compare against those the EVAL graph produces.

    Raises:
      ConfigError: naming the gin binding, TF_CONFIG field or data file at
        fault.
    """
    problem = cluster.find_tf_config_error(os.environ.get(cluster.ENV_VAR))
    if problem:
      raise gin_utils.config_error(problem)
    try:
      config = self.run_config()
    except ValueError as e:
      raise gin_utils.config_error(
          'tf.estimator.RunConfig rejects the run settings (RunSettings.*,'
          f' Experiment.model_dir): {e}'
      ) from e
    self.module_source.use_model_dir(self.model_dir)
    self.module_source.check()
    input_fns = {
        'Experiment.train_input_fn': self.train_input_fn,
        'Experiment.eval_input_fn': self.eval_input_fn,
    }
    element_specs = {}
    for key, input_fn in input_fns.items():
      find_input_error = getattr(input_fn, 'find_input_error', None)
      problem = find_input_error() if find_input_error else None
      if problem:
        raise gin_utils.config_error(f'{key}: {problem}')
      element_specs[key] = _element_spec(input_fn, key)
      features, _ = _split(element_specs[key])
      try:
        self.module_source.check_features(_feature_specs(features))
      except gin_utils.ConfigError as e:
        raise gin_utils.ConfigError(f'{key}: {e}') from e
    try:
      self.model_fn = self._model_fn_factory(module_source=self.module_source)
    except gin_utils.ConfigError:
      raise
    except (ValueError, TypeError, RuntimeError) as e:
      # A configurable the factory's bindings call (the head, the
      # optimizer); gin's RuntimeError names missing required bindings.
      raise gin_utils.config_error(
          f'Experiment.model_fn_factory failed to build the model_fn: {e}'
      ) from e
    # Build the training and evaluation graphs once on placeholders, so that
    # labels the head cannot take (and the like) fail now, not mid-run.
    eval_metrics = None
    for key, mode in (
        ('Experiment.train_input_fn', tf.estimator.ModeKeys.TRAIN),
        ('Experiment.eval_input_fn', tf.estimator.ModeKeys.EVAL),
    ):
      features_spec, labels_spec = _split(element_specs[key])
      with tf.Graph().as_default():
        features = _placeholders(features_spec)
        labels = None if labels_spec is None else _placeholders(labels_spec)
        try:
          spec = self.model_fn(features, labels, mode, config)
        except heads.LabelsError as e:
          raise gin_utils.config_error(
              f'The model does not fit the data of {key} (check the head,'
              f' make_model_fn.head, against its labels): {e}'
          ) from e
        except (ValueError, TypeError) as e:
          raise gin_utils.config_error(_graph_error(mode, key, e)) from e
        if mode == tf.estimator.ModeKeys.EVAL:
          # The Estimator adds `loss` and `global_step` to every evaluation.
          eval_metrics = sorted(
              set(spec.eval_metric_ops or {}) | {'loss', 'global_step'}
          )
    for key, input_fn in input_fns.items():
      self._check_first_batch(key, input_fn)
    self._check_input_lengths(config)
    serving_input_fn = self.module_source.serving_input_fn()
    with tf.Graph().as_default():  # What every exporter will build.
      receiver = serving_input_fn()
      try:
        self.model_fn(
            receiver.features, None, tf.estimator.ModeKeys.PREDICT, config
        )
      except (ValueError, TypeError) as e:
        raise gin_utils.config_error(
            'The PREDICT graph the exporters build does not fit'
            f' {self.module_source.describe()}: {e}'
        ) from e
    self.exporters = []
    for fn in self._exporter_fns:
      try:
        self.exporters.append(fn(serving_input_fn=serving_input_fn))
      except (TypeError, ValueError) as e:
        raise gin_utils.config_error(
            f'Experiment.exporter_fns: cannot create exporter {fn!r}: {e}'
        ) from e
    if self.best_metric is None:
      best = [
          e
          for e in self.exporters
          if isinstance(e, export_lib.BestModuleExporter)
      ]
      self.best_metric, self.best_metric_mode = (
          (best[0].metric, best[0].mode) if best else ('loss', 'min')
      )
    names = [e.name for e in self.exporters]
    reserved = (preemption.EVAL_COMPLETED_NAME,)
    if len(set(names)) != len(names) or set(reserved) & set(names):
      raise gin_utils.config_error(
          'Experiment.exporter_fns: exporter names must be unique (and not'
          f' {" or ".join(map(repr, reserved))}); got {names}. Bind `name`'
          " per scope, e.g. best/BestModuleExporter.name = 'best'."
      )
    self._check_metrics(eval_metrics)

  def _check_metrics(self, eval_metrics: List[str]) -> None:
    """The metrics exporters and the summary compare exist in evaluations."""
    wanted = [
        (
            f'{type(e).__name__}.metric of exporter {e.name!r}',
            e.policy['metric'],
        )
        for e in self.exporters
        if isinstance(getattr(e, 'policy', None), dict) and 'metric' in e.policy
    ]
    wanted.append(('Experiment.best_metric', self.best_metric))
    for key, metric in wanted:
      if metric not in eval_metrics:
        raise gin_utils.config_error(
            f'{key} is {metric!r}, which the evaluation does not produce; it'
            f' produces {eval_metrics} (from the head, make_model_fn.head).'
            f'{gin_checks.did_you_mean(metric, eval_metrics)}'
        )

  def _check_input_lengths(self, config: tf.estimator.RunConfig) -> None:
    """An evaluation ends; a local run's training input lasts its steps.

    Uses the datasets' cardinality (batches; tf.data knows it for repeated
    inputs, in-memory arrays and fixed-size data, not for files read once).
    """
    if self.settings.eval_steps is None and (
        _cardinality(self.eval_input_fn) == tf.data.INFINITE_CARDINALITY
    ):
      raise gin_utils.config_error(
          'Experiment.eval_input_fn repeats forever (num_epochs=None) and'
          ' RunSettings.eval_steps is None, so no evaluation would ever end'
          ' (nothing would be evaluated or exported). Bind num_epochs = 1 in'
          ' its eval/ scope (e.g. eval/digits_input.num_epochs = 1), or set'
          ' RunSettings.eval_steps.'
      )
    if self.train_input_is_finite or config.cluster_spec:
      return  # Several workers share the steps of a cluster.
    batches = _cardinality(self.train_input_fn)
    if batches < 0:
      return  # Infinite or unknown.
    checkpoint = tf.train.latest_checkpoint(self.model_dir)
    done = 0
    if checkpoint:
      done = int(tf.train.load_variable(checkpoint, 'global_step'))
    if done + batches < self.train_steps:
      raise gin_utils.config_error(
          f'Experiment.train_input_fn holds {batches} batch(es), but'
          f' training to step {self.train_steps} (Experiment.train_steps,'
          f' macro TRAIN_STEPS) from step {done} needs'
          f' {self.train_steps - done}; the input would run out. Repeat it'
          ' (num_epochs=None), lower TRAIN_STEPS, or set'
          ' Experiment.train_input_is_finite = True if stopping at its end'
          ' is intended.'
      )

  def _check_first_batch(self, key: str, input_fn: Callable[[], Any]):
    """Reads one batch: the input has data and its labels fit the head."""
    with tf.Graph().as_default():
      result = input_fn()
      if isinstance(result, tf.data.Dataset):
        result = _v1.data.make_one_shot_iterator(result.take(1)).get_next()
      _, labels = _split(result)
      if labels is None:
        return
      with _v1.Session() as session:
        try:
          labels = session.run(labels)
        except tf.errors.OutOfRangeError as e:
          raise gin_utils.config_error(
              f'{key} yields no data: its first batch is already the end of'
              ' the input (empty files or arrays, or a filter that drops'
              ' everything).'
          ) from e
        except tf.errors.OpError as e:
          head = getattr(self.model_fn, 'head', None)
          raise gin_utils.config_error(
              f'{key}: reading the first batch failed:'
              f' {_data_error_text(input_fn, e, head)}'
          ) from e
    head = getattr(self.model_fn, 'head', None)
    find_labels_error = getattr(head, 'find_labels_error', None)
    problem = find_labels_error(labels) if find_labels_error else None
    if problem:
      raise gin_utils.config_error(f'{key}, first batch: {problem}')

  def run_config(self) -> tf.estimator.RunConfig:
    s = self.settings
    return tf.estimator.RunConfig(
        model_dir=self.model_dir,
        tf_random_seed=s.tf_random_seed,
        save_summary_steps=s.save_summary_steps,
        save_checkpoints_steps=s.save_checkpoints_steps,
        save_checkpoints_secs=s.save_checkpoints_secs,
        keep_checkpoint_max=s.keep_checkpoint_max,
        log_step_count_steps=s.log_every_n_steps,
    )

  def eval_throttle_secs(self, config: tf.estimator.RunConfig) -> int:
    """Seconds between evaluations; an evaluator task never polls at 0."""
    if config.task_type == 'evaluator':
      return max(
          self.settings.eval_throttle_secs, self.settings.evaluator_poll_secs
      )
    return self.settings.eval_throttle_secs

  def train_hooks(self, config: tf.estimator.RunConfig) -> List[Any]:
    """Progress logging everywhere; the operative gin config on the chief."""
    hooks = [
        progress.ProgressHook(
            self.settings.log_every_n_steps,
            self.train_steps,
            loss_collection=model_fn_lib.TOTAL_LOSS_COLLECTION,
        )
    ]
    if config.is_chief:
      hooks.append(gin.tf.GinConfigSaverHook(self.model_dir))
    return hooks

  def train_and_evaluate(self) -> run_result.RunResult:
    """Trains and evaluates (exporting at each evaluation); returns results.

    Raises:
      preemption.Preempted: on SIGTERM / SIGINT, after the step in flight
        and its checkpoint (see `hub_estimator.preemption`).
    """
    if self.run_config().task_type == 'ps':
      # A ps serves in C++ until killed: a Python handler would never run,
      # so SIGTERM keeps its default action there.
      return self._train_and_evaluate()
    with preemption.handle_signals():
      return self._train_and_evaluate()

  def _train_and_evaluate(self) -> run_result.RunResult:
    if self.model_fn is None:
      self.prepare()
    config = self.run_config()
    if config.is_chief:
      path = gin_utils.write_config(self.model_dir)
      logging.info('Wrote %s', path)
    estimator = tf.estimator.Estimator(model_fn=self.model_fn, config=config)
    hooks = self.train_hooks(config)
    hooks.append(preemption.TrainHook(self.model_dir, config.is_chief))
    if config.is_chief and config.save_checkpoints_steps:
      hooks.append(
          preemption.GridCheckpointSaverHook(
              self.model_dir,
              config.save_checkpoints_steps,
              save_graph_def=config.checkpoint_save_graph_def,
          )
      )
    eval_dir = estimator.eval_dir()
    phase = _EvalPhase(evaluating=config.task_type == 'evaluator')
    eval_hooks = [preemption.EvalHook(self.model_dir, eval_dir), phase]
    # EvalCompleted last: an evaluation is complete once every exporter ran.
    exporters = self.exporters + [preemption.EvalCompleted(eval_dir)]
    train_spec = tf.estimator.TrainSpec(
        self.train_input_fn, max_steps=self.train_steps, hooks=hooks
    )
    eval_spec = tf.estimator.EvalSpec(
        self.eval_input_fn,
        steps=self.settings.eval_steps,
        exporters=exporters,
        start_delay_secs=0,
        throttle_secs=self.eval_throttle_secs(config),
        hooks=eval_hooks,
    )
    logging.info(
        'Training %s to step %d in %s; exporters %s',
        self.module_source.describe(),
        self.train_steps,
        self.model_dir,
        [e.name for e in self.exporters],
    )
    start = time.time()
    try:
      if config.task_type == 'evaluator' or not config.cluster_spec:
        self._redo_interrupted_evaluation(
            estimator, eval_dir, eval_hooks, exporters
        )
      tf.estimator.train_and_evaluate(estimator, train_spec, eval_spec)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
      key, input_fn = (
          ('Experiment.eval_input_fn', self.eval_input_fn)
          if phase.evaluating
          else ('Experiment.train_input_fn', self.train_input_fn)
      )
      what = 'evaluation' if phase.evaluating else 'training'
      head = getattr(self.model_fn, 'head', None)
      raise DataError(
          f'Bad data in {key} ({what} stopped):'
          f' {_data_error_text(input_fn, e, head)}'
      ) from e
    except tf.compat.v1.train.NanLossDuringTrainingError as e:
      raise RunError(
          'The training loss became NaN, training stopped (TensorFlow'
          ' NanLossDuringTrainingError). Lower the learning rate'
          ' (make_model_fn.learning_rate_fn) or check the features for NaN'
          ' or huge values.'
      ) from e
    result = run_result.collect(
        estimator, time.time() - start, self.best_metric, self.best_metric_mode
    )
    logging.info('%s', result.summary())
    if (
        config.is_chief
        and result.global_step < self.train_steps
        and not self.train_input_is_finite
    ):
      raise InputEndedError(
          f'Training stopped at global step {result.global_step} of'
          f' {self.train_steps} (Experiment.train_steps, macro TRAIN_STEPS):'
          ' Experiment.train_input_fn ran out of data. Repeat the input'
          ' (num_epochs=None), lower TRAIN_STEPS, or set'
          ' Experiment.train_input_is_finite=True if stopping at its end is'
          ' intended.'
      )
    return result

  def _redo_interrupted_evaluation(
      self, estimator, eval_dir, eval_hooks, exporters
  ) -> None:
    """Evaluates and exports the checkpoint an earlier process left pending."""
    checkpoint = preemption.read_pending(eval_dir)
    if checkpoint is None:
      return
    if not tf.io.gfile.exists(checkpoint + '.index'):
      logging.warning(
          'The evaluation of %s was interrupted in an earlier process, but'
          ' the checkpoint is gone (RunSettings.keep_checkpoint_max); not'
          ' redone.',
          checkpoint,
      )
      preemption.clear_pending(eval_dir)
      return
    logging.info(
        'Redoing the evaluation and exports of %s, interrupted in an earlier'
        ' process.',
        checkpoint,
    )
    metrics = estimator.evaluate(
        self.eval_input_fn,
        steps=self.settings.eval_steps,
        checkpoint_path=checkpoint,
        hooks=eval_hooks,
    )
    final = int(metrics.get('global_step', 0)) >= self.train_steps
    for exporter in exporters:
      exporter.export(
          estimator,
          os.path.join(self.model_dir, 'export', exporter.name),
          checkpoint,
          metrics,
          final,
      )


def run() -> run_result.RunResult:
  """Builds the gin-configured `Experiment`, checks it, trains, evaluates.

  Returns:
    The RunResult (its `summary()` is also logged).

  Raises:
    ConfigError: the configuration or its input is unusable; raised before
      training with a message naming the gin binding, TF_CONFIG field or data
      file (and the gin files and bindings parsed). A gin binding that
      nothing in the run used is one too.
    InputEndedError: the training input ended before `train_steps`.
    DataError: TensorFlow rejected a record mid-run (the message names the
      file and record).
  """
  try:
    experiment = Experiment()
  except gin_utils.ConfigError as e:
    # gin appends "In call to configurable 'X' (<class ...>)" to errors
    # raised inside a configurable; ours already name the gin key.
    raise gin_utils.ConfigError(gin_utils.without_gin_call_notes(str(e))) from e
  except (ValueError, TypeError, RuntimeError) as e:
    # Raised by a configurable called while gin builds the experiment; their
    # messages name their own gin key (e.g. mlp.activation), and gin's own
    # RuntimeError names missing required bindings.
    raise gin_utils.config_error(f'Bad configuration: {e}') from e
  experiment.prepare()
  gin_utils.check_bindings_used()
  return experiment.train_and_evaluate()
