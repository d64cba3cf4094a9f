"""Module sources: where a model's hub module comes from, chosen in gin.

* `ModuleFnSource`: a module_fn from the library, built with `{"train"}` and
  default variants (publishing a new module).
* `PathSource`: a module directory on disk.
* `RunExportSource`: the newest version an exporter of another run published
  (`model_dir/export/<exporter_name>/<version>/<module>/`), e.g. the best
  export of a previous run.

Swapping the module a model uses is one gin line:
`run.module_source = @RunExportSource()`.
"""

import abc
import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import gin
import tensorflow as tf

from hub_estimator import gin_utils
from hub_estimator.consume import fine_tuning as fine_tuning_lib
from hub_estimator.consume import snapshot
from hub_estimator.export import layout
from hub_estimator.export import provenance as provenance_lib
from hub_estimator.export import registry
from hub_estimator.format import graph_index as graph_index_lib
from hub_estimator.format import module as module_lib
from hub_estimator.format import op_policy
from hub_estimator.format import spec as spec_lib
from hub_estimator.format import tags as tags_lib

_TRAIN = tf.estimator.ModeKeys.TRAIN

# `PathSource.allowed_ops = %hub_estimator.TRUST_ALL_OPS` trusts every op.
gin.constant('hub_estimator.TRUST_ALL_OPS', op_policy.TRUST_ALL_OPS)


def _tags_str(tags) -> str:
  return str(sorted(tags))


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ModuleSettings:
  """How a model applies its module; the same for every module source.

  Bind the fields in gin (`ModuleSettings.feature_keys = {...}`); every source
  made without explicit `settings` picks the bindings up.

  Attributes:
    signature: the signature applied to the features.
    output_key: the signature output fed to the head.
    feature_keys: map from signature input name to feature key; None means
      inputs and features share names (or there is one of each). Inputs
      with defaults are fed from features only when mapped here (else they
      take their default, or `FineTuning.hparams`).
    train_tags: the graph variant used in TRAIN mode; None means `{"train"}`
      when the module is trainable and has it, else the default variant.
      EVAL and PREDICT always use the default variant.
    name: the module's variable scope in the model.

  Raises:
    ConfigError: (a ValueError) a field has the wrong type, naming the gin
      key, e.g. `ModuleSettings.train_tags`.
  """

  signature: str = 'default'
  output_key: str = 'default'
  feature_keys: Optional[Mapping[str, str]] = None
  train_tags: Optional[Sequence[str]] = None
  name: str = 'module'

  def __post_init__(self):
    for key in ('signature', 'output_key', 'name'):
      value = getattr(self, key)
      if not isinstance(value, str) or not value:
        raise gin_utils.config_error(
            f'ModuleSettings.{key} must be a non-empty string; got {value!r}.'
        )
    if '/' in self.name:
      raise gin_utils.config_error(
          'ModuleSettings.name is a variable scope name without "/"; got'
          f' {self.name!r}.'
      )
    keys = self.feature_keys
    if keys is not None:
      if not isinstance(keys, Mapping) or not all(
          isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
      ):
        raise gin_utils.config_error(
            'ModuleSettings.feature_keys must map signature input names to'
            f' feature keys (strings), e.g. {{"x": "pixels"}}; got {keys!r}.'
        )
      object.__setattr__(self, 'feature_keys', dict(keys))
    tags = self.train_tags
    if tags is not None:
      if isinstance(tags, (str, bytes)) or not all(
          isinstance(t, str) for t in tags
      ):
        raise gin_utils.config_error(
            'ModuleSettings.train_tags must be a list of tag strings (e.g.'
            f" ['train']) or None; got {tags!r}."
        )
      object.__setattr__(self, 'train_tags', frozenset(tags))


class ModuleSource(abc.ABC):
  """Base class: builds a spec, instantiates and applies it in a model_fn."""

  def __init__(
      self,
      trainable: bool,
      export_name: Optional[str],
      settings: Optional[ModuleSettings],
      fine_tuning: Optional[fine_tuning_lib.FineTuning] = None,
  ):
    if fine_tuning is not None and not isinstance(
        fine_tuning, fine_tuning_lib.FineTuning
    ):
      raise gin_utils.config_error(
          f'{type(self).__name__}.fine_tuning must be @FineTuning() or None;'
          f' got {fine_tuning!r}.'
      )
    settings = ModuleSettings() if settings is None else settings
    self._settings = settings
    self._fine_tuning = fine_tuning
    self._trainable = bool(trainable)
    self._export_name = export_name
    self._signature = settings.signature
    if fine_tuning is not None and fine_tuning.signature is not None:
      if settings.signature not in ('default', fine_tuning.signature):
        raise gin_utils.config_error(
            f'ModuleSettings.signature={settings.signature!r} and'
            f' FineTuning.signature={fine_tuning.signature!r} disagree; set'
            ' only FineTuning.signature.'
        )
      self._signature = fine_tuning.signature
    self._output_key = settings.output_key
    self._feature_keys = settings.feature_keys
    self._train_tags = settings.train_tags
    self._name = settings.name
    self._spec = None
    self._record = None

  # -- what subclasses provide --

  @property
  def key(self) -> str:
    """The gin configurable name, used in error messages."""
    return type(self).__name__

  @abc.abstractmethod
  def describe(self) -> str:
    """A short human description of where the module comes from."""

  @abc.abstractmethod
  def _build_spec(self) -> Any:
    """Builds or loads the ModuleSpec (raising ConfigError when it cannot)."""

  def _origin(self) -> Dict[str, Any]:
    """Where the module comes from, for `provenance` (subclasses add to it)."""
    return {}

  def provenance(self) -> Dict[str, Any]:
    """Where the module came from and how it is fine-tuned (JSON-able).

    Recorded in every export's `export_metadata.json` (`module_sources`) and
    `operative_config.gin` header. Keys: `source` (the gin configurable),
    `description`, `export_name`, `trainable`, `signature`, `fine_tuning`
    (the FineTuning settings or None), plus what the source knows of the
    module's origin: `path`; for a published export also `run`, `exporter`,
    `version`, `global_step`, `metric` (the exporter's metric name, if any),
    `metrics` (the publisher's evaluation of that version) and `upstream`
    (the `module_sources` entry that version recorded for the module, so a
    consumer of a consumer's export traces the chain back to the first
    publisher; None when it records none).
    """
    if self._record is None:
      record = {
          'source': self.key,
          'description': self.describe(),
          'export_name': self._export_name,
          'trainable': self._trainable and not self._frozen,
          'signature': self._signature,
          'fine_tuning': (
              self._fine_tuning.as_record() if self._fine_tuning else None
          ),
      }
      record.update(self._origin())
      self._record = provenance_lib.json_safe(record)
    return dict(self._record)

  # -- shared behaviour --

  @property
  def trainable(self) -> bool:
    return self._trainable

  @property
  def export_name(self) -> Optional[str]:
    return self._export_name

  @property
  def settings(self) -> ModuleSettings:
    """How the model applies the module (`FineTuning.signature` wins)."""
    return self._settings

  @property
  def fine_tuning(self) -> Optional[fine_tuning_lib.FineTuning]:
    """The fine-tuning settings, or None (train as the source says)."""
    return self._fine_tuning

  @property
  def _frozen(self) -> bool:
    """True when fine-tuning freezes the module for the whole run."""
    return self._fine_tuning is not None and self._fine_tuning.frozen

  def use_model_dir(self, model_dir: str) -> None:
    """Tells the source the model_dir of the run that consumes it.

    Called by the experiment before anything else; sources that keep a copy
    of their module in the consumer's run (`RunExportSource`) put it there.
    """
    del model_dir

  def module_spec(self) -> Any:
    """Returns the module spec (built or loaded once).

    Raises:
      ConfigError: the module cannot be built or loaded.
    """
    if self._spec is None:
      self._spec = self._build_spec()
    return self._spec

  def tags(self, mode: str) -> set:
    """Returns the graph variant to use in `mode`.

    TRAIN uses `train_tags` (None means `{"train"}` when the module is
    trainable and has that variant); EVAL and PREDICT use the default variant.
    """
    if mode != _TRAIN or self._frozen:
      return set()
    if self._train_tags is not None:
      return set(self._train_tags)
    available = self.module_spec().get_tags()
    if self._trainable and tags_lib.TRAIN in available:
      return set(tags_lib.TRAIN)
    return set()

  def check(self) -> None:
    """Loads the spec and checks the variant, signature and output exist.

    Raises:
      ConfigError: naming the gin binding at fault.
    """
    spec = self.module_spec()
    available = spec.get_tags()
    for mode in (_TRAIN, tf.estimator.ModeKeys.EVAL):
      tags = self.tags(mode)
      if frozenset(tags) not in available:
        raise gin_utils.config_error(
            f'ModuleSettings.train_tags={_tags_str(tags)}: {self.describe()}'
            ' has no such graph variant; it has'
            f' {[sorted(t) for t in available]}.'
        )
    names = spec.get_signature_names()
    if self._signature not in names:
      key = 'ModuleSettings'
      if self._fine_tuning is not None and self._fine_tuning.signature:
        key = 'FineTuning'
      raise gin_utils.config_error(
          f'{key}.signature={self._signature!r}: {self.describe()} has'
          f' signatures {sorted(names)}; inputs with defaults:'
          f' {_optional_inputs(spec, names)}.'
      )
    if self._fine_tuning is not None:
      self._check_fine_tuning()
    outputs = spec.get_output_info_dict(signature=self._signature)
    if self._output_key not in outputs:
      raise gin_utils.config_error(
          f'ModuleSettings.output_key={self._output_key!r}: signature'
          f' {self._signature!r} of {self.describe()} has outputs'
          f' {sorted(outputs)}.'
      )
    name = self._export_name
    if name is not None and (
        not isinstance(name, str) or not name or '/' in name or name == '.'
    ):
      raise gin_utils.config_error(
          f'{self.key}.export_name must be a folder name (or None); got'
          f' {name!r}.'
      )

  def _check_fine_tuning(self) -> None:
    settings = self._fine_tuning
    if not self._trainable and not settings.frozen and not settings.is_plain:
      raise gin_utils.config_error(
          f'{self.key}.trainable=False, but FineTuning trains the module'
          f' (learning_rate_multiplier={settings.learning_rate_multiplier},'
          f' frozen_steps={settings.frozen_steps}, regularization_weight='
          f'{settings.regularization_weight}); set trainable=True, or leave'
          ' those at their defaults for a frozen module with hparams.'
      )
    both = sorted(set(settings.hparams) & set(self._feature_keys or ()))
    if both:
      raise gin_utils.config_error(
          f'Inputs {both} are fed twice: by ModuleSettings.feature_keys and by'
          ' FineTuning.hparams; keep one.'
      )
    for mode in (_TRAIN, tf.estimator.ModeKeys.EVAL):
      self._hparam_values(self.tags(mode))
    self._check_hparams_take_effect()

  def _check_hparams_take_effect(self) -> None:
    """Fails if an hparam reaches nothing the run computes.

    An input with a default counts when, in a graph variant the run applies
    (training and evaluation), an output of the signature depends on it, or
    one of the variant's UPDATE_OPS does while they run (a trainable, not
    frozen module's training variant: e.g. `bn_momentum` moves only the
    batch-norm moving averages). E.g. `dropout_rate` of a module frozen for
    the whole run reaches nothing: its inference variant has no dropout.

    Raises:
      ConfigError: naming the hparams that would be ignored and why.
    """
    settings = self._fine_tuning
    if not settings.hparams:
      return
    spec = self.module_spec()
    updates_run = self._trainable and not self._frozen
    variants = [(self.tags(_TRAIN), updates_run)]
    variants.append((self.tags(tf.estimator.ModeKeys.EVAL), False))
    reached = set()
    for tags, with_updates in variants:
      index = spec.graph_index(tags)
      signature = index.meta_graph.signature_def[self._signature]
      seeds = []
      for info in signature.outputs.values():
        encoding = info.WhichOneof('encoding')
        if encoding == 'name':
          seeds.append(graph_index_lib.op_name(info.name))
        elif encoding == 'coo_sparse':
          sparse = info.coo_sparse
          seeds.extend(
              graph_index_lib.op_name(n)
              for n in (
                  sparse.values_tensor_name,
                  sparse.indices_tensor_name,
                  sparse.dense_shape_tensor_name,
              )
          )
        else:
          return  # A composite output: cannot tell; trust the settings.
      if with_updates:
        seeds.extend(
            graph_index_lib.op_name(n)
            for n in index.node_list(tf.compat.v1.GraphKeys.UPDATE_OPS)
        )
      needed, _, _ = index.call_closure(seeds, set(), set())
      reached.update(
          key
          for key in settings.hparams
          if graph_index_lib.op_name(signature.inputs[key].name) in needed
      )
    idle = sorted(set(settings.hparams) - reached)
    if idle:
      if self._frozen:
        why = (
            'the module is frozen for the whole run'
            ' (FineTuning.learning_rate_multiplier=0), so only its inference'
            ' variant runs, without UPDATE_OPS'
        )
      elif not self._trainable:
        why = f'{self.key}.trainable=False, so its UPDATE_OPS do not run'

      else:
        why = 'the module does not use them in these variants'
      used = sorted({_tags_str(tags) for tags, _ in variants})
      raise gin_utils.config_error(
          f'FineTuning.hparams {idle} would have no effect: no output of'
          f' signature {self._signature!r} of {self.describe()}, nor an'
          ' UPDATE_OP that runs, depends on them in the graph variants this'
          f' run applies ({", ".join(used)}): {why}. Remove them, or let the'
          ' module train.'
      )

  def _hparam_values(self, tags) -> Mapping[str, Any]:
    """The fine-tuning hparams, checked against the variant's signature."""
    if self._fine_tuning is None or not self._fine_tuning.hparams:
      return {}
    info = self.module_spec().get_input_info_dict(self._signature, tags)
    where = (
        f'signature {self._signature!r} (tags {_tags_str(tags)}) of'
        f' {self.describe()}'
    )
    spec = self.module_spec()
    others = [n for n in spec.get_signature_names() if n != self._signature]
    elsewhere = _optional_inputs(spec, others)
    return self._fine_tuning.hparam_values(
        info, where, '' if elsewhere == 'none' else elsewhere
    )

  def input_info(self) -> Mapping[str, Any]:
    """The signature's input infos (name -> ParsedTensorInfo)."""
    return self.module_spec().get_input_info_dict(signature=self._signature)

  def _fed_inputs(self) -> list:
    """Signature inputs fed from features: all but those with defaults.

    An input with a default is fed from a feature only when `feature_keys`
    maps it; else it keeps its default or takes `FineTuning.hparams`.
    """
    mapped = set(self._feature_keys or ())
    return sorted(
        name
        for name, info in self.input_info().items()
        if not info.has_default or name in mapped
    )

  def feature_map(self, feature_names: Sequence[str]) -> Mapping[str, str]:
    """Maps each signature input to the feature feeding it.

    Args:
      feature_names: the keys of the features dict (or `[None]` when the
        features are a single tensor).

    Returns:
      Signature input name -> feature key (None for a single tensor).

    Raises:
      ConfigError: an input has no feature (the message names
        `feature_keys`).
    """
    inputs = self._fed_inputs()
    if self._feature_keys is not None:
      result = {name: self._feature_keys.get(name) for name in inputs}
    elif len(inputs) == 1 and len(feature_names) == 1:
      result = {inputs[0]: feature_names[0]}
    else:
      result = {name: name for name in inputs}
    missing = {k: v for k, v in result.items() if v not in feature_names}
    if missing or (self._feature_keys is not None and None in result.values()):
      raise gin_utils.config_error(
          f'Features do not fit the module signature: {self.describe()}'
          f' signature {self._signature!r} needs inputs {inputs}; the'
          f' input_fn gives features {sorted(map(str, feature_names))};'
          f' unmatched inputs {sorted(missing)}. Map them with'
          ' ModuleSettings.feature_keys = {"<input>": "<feature>"}.'
      )
    return result

  def check_features(self, feature_specs: Mapping[Any, tf.TypeSpec]) -> None:
    """Checks that features (as TypeSpecs) fit the signature's inputs.

    Args:
      feature_specs: feature key -> TypeSpec of the batched feature; the key
        None stands for features given as a single tensor.

    Raises:
      ConfigError: an input is missing or has the wrong dtype or shape.
    """
    mapping = self.feature_map(list(feature_specs))
    info = self.input_info()
    problems = []
    for name, feature in sorted(mapping.items(), key=lambda kv: kv[0]):
      want, got = info[name], feature_specs[feature]
      want_sparse = bool(getattr(want, 'is_sparse', False))
      got_sparse = isinstance(got, tf.SparseTensorSpec)
      shape_ok = want.get_shape().is_compatible_with(got.shape)
      if want.dtype != got.dtype or want_sparse != got_sparse or not shape_ok:
        problems.append(
            f'input {name!r} wants {"sparse " if want_sparse else ""}'
            f'{want.dtype.name}{want.get_shape()} but feature {feature!r} is'
            f' {"sparse " if got_sparse else ""}{got.dtype.name}{got.shape}'
        )
    if problems:
      raise gin_utils.config_error(
          'Features do not fit the module signature'
          f' {self._signature!r} of {self.describe()}: '
          + '; '.join(problems)
      )

  def instantiate(self, mode: str) -> Any:
    """Creates the module in the current graph and registers it for export."""
    module = module_lib.Module(
        self.module_spec(),
        trainable=self._trainable and not self._frozen,
        tags=self.tags(mode),
        name=self._name,
    )
    if self._export_name is not None:
      registry.register_module_for_export(module, self._export_name)
    registry.record_module_source(self.provenance())
    return module

  def apply(
      self, module: Any, features: Any, tags: Optional[set] = None
  ) -> tf.Tensor:
    """Applies the signature to `features`; returns the chosen output.

    Args:
      module: the instance `instantiate` made.
      features: the model_fn's features (a dict or a single tensor).
      tags: apply this graph variant of the module to the instance's state;
        None means the instance's own variant.

    Returns:
      The `output_key` output of the signature.
    """
    if isinstance(features, Mapping):
      mapping = self.feature_map(list(features))
      inputs = {name: features[key] for name, key in mapping.items()}
    else:
      mapping = self.feature_map([None])
      inputs = {name: features for name in mapping}
    # check() validated the hparams against every variant the run uses.
    inputs.update(fine_tuning_lib.constants(self._hparam_values(tags or ())))
    if tags is None:
      outputs = module(inputs, signature=self._signature, as_dict=True)
    else:
      outputs = module.call_variant(
          tags, inputs, signature=self._signature, as_dict=True
      )
    return outputs[self._output_key]

  def serving_input_fn(self):
    """Returns a serving_input_fn with one placeholder per signature input.

    The features carry the names the model_fn reads (via `feature_keys`).
    """

    def serving_input_fn():
      info = self.input_info()
      names = list(self._feature_keys.values()) if self._feature_keys else []
      mapping = self.feature_map(names or self._fed_inputs())
      features = {}
      for name, feature in mapping.items():
        spec = info[name]
        if getattr(spec, 'is_sparse', False):
          features[feature] = tf.compat.v1.sparse_placeholder(
              spec.dtype, spec.get_shape(), name=feature
          )
        else:
          features[feature] = tf.compat.v1.placeholder(
              spec.dtype, spec.get_shape(), name=feature
          )
      return tf.estimator.export.ServingInputReceiver(features, features)

    return serving_input_fn


@gin.configurable
class ModuleFnSource(ModuleSource):
  """A module built from a module_fn (the publishing case)."""

  def __init__(
      self,
      module_fn=gin.REQUIRED,
      trainable: bool = True,
      export_name: Optional[str] = 'module',
      settings: Optional[ModuleSettings] = None,
      tags_and_args=tags_lib.TRAIN_AND_DEFAULT,
      drop_collections: Optional[Sequence[str]] = None,
      fine_tuning: Optional[fine_tuning_lib.FineTuning] = None,
  ):
    """Creates the source.

    Args:
      module_fn: the module_fn, e.g. `@mlp()` (an evaluated reference to a
        factory of `hub_estimator.models.module_fns`).
      trainable: whether the module's variables train.
      export_name: the folder name of this module in every export; None
        means the module is not exported.
      settings: how the model applies the module; None means
        `ModuleSettings()` (with its gin bindings).
      tags_and_args: the variants to build (`create_module_spec`).
      drop_collections: collections to drop from the module graphs.
      fine_tuning: how the module is fine-tuned (`@FineTuning()`: hparams,
        learning-rate multiplier, frozen steps, regularization weight); None
        means as `trainable` says, with the signature's defaults.
    """
    super().__init__(trainable, export_name, settings, fine_tuning)
    if not callable(module_fn):
      raise gin_utils.config_error(
          'ModuleFnSource.module_fn must be a module_fn (e.g. @mlp()); got'
          f' {module_fn!r}.'
      )
    self._module_fn = module_fn
    self._tags_and_args = [(set(t), dict(a)) for t, a in tags_and_args]
    self._drop_collections = drop_collections

  def describe(self) -> str:
    fn = getattr(self._module_fn, '__qualname__', repr(self._module_fn))
    return f'the module built by module_fn {fn}'

  def _origin(self) -> Dict[str, Any]:
    return {
        'module_fn': getattr(
            self._module_fn, '__qualname__', repr(self._module_fn)
        )
    }

  def _build_spec(self):
    try:
      return spec_lib.create_module_spec(
          self._module_fn,
          tags_and_args=self._tags_and_args,
          drop_collections=self._drop_collections,
      )
    except (ValueError, TypeError) as e:
      raise gin_utils.config_error(
          f'ModuleFnSource.module_fn: cannot build the module spec: {e}'
      ) from e


@gin.configurable
class PathSource(ModuleSource):
  """A TF1 Hub module directory on disk."""

  def __init__(
      self,
      path: str = gin.REQUIRED,
      trainable: bool = False,
      export_name: Optional[str] = None,
      settings: Optional[ModuleSettings] = None,
      allowed_ops: Any = None,
      fine_tuning: Optional[fine_tuning_lib.FineTuning] = None,
  ):
    """Creates the source.

    Args:
      path: the module directory (holding tfhub_module.pb).
      trainable: whether to fine-tune the module's variables.
      export_name: re-export the (fine-tuned) module under this name; None
        means it is not exported.
      settings: how the model applies the module; None means
        `ModuleSettings()` (with its gin bindings).
      allowed_ops: op types the module may use beyond the default op policy
        for untrusted modules (e.g. `['PyFunc']`), or
        `%hub_estimator.TRUST_ALL_OPS` to trust every op; None means the
        default policy (see `hub_estimator.load_module_spec`).
      fine_tuning: how the module is fine-tuned (`@FineTuning()`: hparams,
        learning-rate multiplier, frozen steps, regularization weight); None
        means as `trainable` says, with the signature's defaults.
    """
    super().__init__(trainable, export_name, settings, fine_tuning)
    self._path = path
    self._allowed_ops = allowed_ops

  def describe(self) -> str:
    return f'module {self.path()}'

  def path(self) -> str:
    return self._path

  def _origin(self) -> Dict[str, Any]:
    """The path; for a module inside an export version, that version's record."""
    path = self.path()
    version_dir = os.path.dirname(path.rstrip('/'))
    origin = {'path': path}
    metadata = layout.read_metadata(version_dir)
    if metadata is not None:
      exporter = metadata.get('exporter') or {}
      origin.update(
          version=os.path.basename(version_dir),
          exporter=exporter.get('name'),
          metric=(exporter.get('policy') or {}).get('metric'),
          global_step=metadata.get('global_step'),
          metrics=metadata.get('metrics'),
          upstream=snapshot.upstream_record(
              metadata, os.path.basename(path.rstrip('/'))
          ),
      )
    return origin

  def _binding(self) -> str:
    return f'PathSource.path={self._path!r}'

  def _build_spec(self):
    path = self.path()
    marker = os.path.join(path, 'tfhub_module.pb')
    if not tf.io.gfile.exists(marker):
      what = (
          'does not exist'
          if not tf.io.gfile.exists(path)
          else ('is not a TF1 Hub module (no tfhub_module.pb)')
      )
      raise gin_utils.config_error(
          f'{self._binding()}: {path} {what} (working directory {os.getcwd()}).'
      )
    try:
      return spec_lib.load_module_spec(path, allowed_ops=self._allowed_ops)
    except op_policy.UnsafeModuleError as e:
      ops = sorted({finding.op for finding in e.findings})
      raise gin_utils.config_error(
          f'{self._binding()}: {e}\nIn gin, trust exactly these ops with'
          f' {self.key}.allowed_ops = {ops}.'
      ) from e
    except Exception as e:  # pylint: disable=broad-except
      raise gin_utils.config_error(
          f'{self._binding()}: cannot load the module at {path}: {e}'
      ) from e


@gin.configurable
class RunExportSource(PathSource):
  """The newest export an exporter of another run published."""

  def __init__(
      self,
      model_dir: str = gin.REQUIRED,
      exporter_name: str = 'best',
      module_name: Optional[str] = None,
      trainable: bool = True,
      export_name: Optional[str] = None,
      settings: Optional[ModuleSettings] = None,
      allowed_ops: Any = None,
      fine_tuning: Optional[fine_tuning_lib.FineTuning] = None,
  ):
    """Creates the source.

    Args:
      model_dir: the publishing run's model_dir.
      exporter_name: the exporter whose folder (`model_dir/export/<name>`) to
        read, e.g. `best` or `latest`; its newest version is used (for a best
        exporter that keeps one version, the best).
      module_name: the module folder inside the version; None means the only
        one there.
      trainable, export_name, settings, allowed_ops, fine_tuning: as for
        `PathSource` (`trainable` defaults to True here: a run's export is
        usually fine-tuned).
    """
    super().__init__(
        None, trainable, export_name, settings, allowed_ops, fine_tuning
    )
    self._model_dir = model_dir
    self._exporter_name = exporter_name
    self._module_name = module_name
    self._resolved = None
    self._consumer_dir = None

  def use_model_dir(self, model_dir: str) -> None:
    """Snapshots the resolved module into `model_dir` (see `snapshot`).

    Without it (library use outside an Experiment) the module is read from
    the publisher's folder directly, and the publisher's retention may
    delete it mid-run.
    """
    if self._consumer_dir != model_dir:
      self._consumer_dir = model_dir
      self._resolved = None
      self._spec = None
      self._record = None

  def _binding(self) -> str:
    return (
        f'RunExportSource.model_dir={self._model_dir!r},'
        f' RunExportSource.exporter_name={self._exporter_name!r}'
    )

  def _origin(self) -> Dict[str, Any]:
    record = None
    if self._consumer_dir is not None:
      self.path()  # Takes the snapshot if needed.
      record = snapshot.read_record(self._consumer_dir)
    if record is None:
      origin = super()._origin()
    else:
      # The publisher's version as it was when the snapshot was taken.
      origin = {
          'path': os.path.join(record['version_dir'], record['module_name']),
          'snapshot': self.path(),
          'version': record.get('version'),
          'exporter': record.get('exporter_name'),
          'metric': (record.get('metric') or {}).get('name'),
          'global_step': record.get('global_step'),
          'metrics': record.get('metrics'),
          'upstream': record.get('upstream'),
      }
    # The snapshot's run when there is one (the bindings may have changed).
    origin['run'] = (record or {}).get('publisher_model_dir', self._model_dir)
    origin.setdefault('exporter', self._exporter_name)
    return origin

  def path(self) -> str:
    """Resolves (once) and returns the module directory.

    With `use_model_dir`, that is the consumer's snapshot of the module
    (taken on first use, reused by later processes of the run).

    Raises:
      ConfigError: no export folder, version or module to use.
    """
    if self._resolved is None:
      if self._consumer_dir is None:
        self._resolved = self._resolve()
      else:
        try:
          self._resolved = snapshot.take_or_reuse(
              self._consumer_dir,
              self._resolve_with_provenance,
              self.describe_source(),
              {
                  'publisher_model_dir': self._model_dir,
                  'exporter_name': self._exporter_name,
                  'module_name': self._module_name,
              },
          )
        except RuntimeError as e:
          raise gin_utils.config_error(f'{self._binding()}: {e}') from e
    return self._resolved

  def describe_source(self) -> str:
    return f'the newest {self._exporter_name!r} export of run {self._model_dir}'

  def _resolve_with_provenance(self) -> snapshot.Resolved:
    module_dir = self._resolve()
    return snapshot.Resolved(
        module_dir,
        snapshot.version_provenance(
            self._model_dir, self._exporter_name, module_dir
        ),
    )

  def _resolve(self) -> str:
    base = layout.exporter_dir(self._model_dir, self._exporter_name)
    if not tf.io.gfile.isdir(base):
      raise gin_utils.config_error(
          f'{self._binding()}: no export folder {base} (working directory'
          f' {os.getcwd()}). Run the publishing experiment first.'
      )
    newest = layout.newest_version(base)
    if newest is None:
      raise gin_utils.config_error(
          f'{self._binding()}: {base} holds no published version yet.'
      )
    version_dir = newest.path
    modules = layout.module_names(version_dir)
    if self._module_name is not None:
      if self._module_name not in modules:
        raise gin_utils.config_error(
            f'RunExportSource.module_name={self._module_name!r}: not in'
            f' {version_dir}; it holds {modules}.'
        )
      return os.path.join(version_dir, self._module_name)
    if len(modules) != 1:
      raise gin_utils.config_error(
          f'{self._binding()}: {version_dir} holds modules {modules}; choose'
          ' one with RunExportSource.module_name.'
      )
    return os.path.join(version_dir, modules[0])


def _optional_inputs(spec, signatures) -> str:
  """Lists, per signature, the inputs that have defaults (for messages)."""
  parts = []
  for name in sorted(signatures):
    info = spec.get_input_info_dict(signature=name)
    optional = sorted(k for k, v in info.items() if v.has_default)
    if optional:
      parts.append(f'{name!r}: {optional}')
  return '; '.join(parts) or 'none'
