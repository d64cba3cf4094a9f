"""`FineTuning`: how a consumer fine-tunes the module a source provides.

A module source carries one `FineTuning` (gin: `RunExportSource.fine_tuning =
@FineTuning()`); the model_fn factory (`hub_estimator.models.model_fn`)
applies it. The settings are the ones fine-tuning guides ask for:
hyperparameters fed to the module's optional signature inputs, a smaller
learning rate for the pretrained module than for the new head, training the
head alone for a while before the module, and a weight on the module's
regularization losses (e.g. for a small target data set).

What "frozen" means (for the whole run at `learning_rate_multiplier = 0`, or
for the first `frozen_steps` steps):

* the module's variables get no optimizer update, and its optimizer state
  (slots such as Adam's moments, Adam's beta powers) stays at its initial
  values until it trains (it exists, and is checkpointed, from the start);
* the module is applied in its default graph variant (inference: no dropout,
  batch norm with its moving statistics), so its UPDATE_OPS, such as the
  batch-norm moving averages, do not run; its `{"train"}` variant (or
  whichever the source's `train_tags` name) is used only while it trains;
* no gradient reaches its variables: the head sees its output through
  `tf.stop_gradient`, and its weighted regularization losses count in the
  loss as a constant, so its gradients are exactly zero and add nothing to
  the global norm `make_model_fn.gradient_clip_norm` clips the head's
  gradients by.

A module frozen for the whole run is instantiated as if the source had
`trainable = False`: its variables are not trainable and it adds no
regularization losses. While frozen for `frozen_steps`, its weighted
regularization losses still count in the loss value (constant then; they
move the reported loss, not the module).
"""

import dataclasses
import math
from typing import Any, Dict, Mapping, Optional

import gin
import numpy as np
import tensorflow as tf

from hub_estimator import gin_utils
from hub_estimator.format import tensor_info as tensor_info_lib

# numpy dtype kinds a Python value may have to feed an input of each kind.
_ACCEPTED_KINDS = {
    'f': 'iuf',  # float inputs take ints and floats (never bools)
    'c': 'iufc',
    'i': 'iu',
    'u': 'u',
    'b': 'b',
    'S': 'SU',  # tf.string
    'O': 'SU',
}


def _number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class FineTuning:
  """Validated fine-tuning settings of a consumed module.

  Attributes:
    signature: the signature to apply, e.g. `with_hparams`; None means the
      source's `signature`. Must exist in the module (checked before
      training).
    hparams: signature input name -> value, fed as constants to inputs that
      have defaults (`placeholder_with_default`), e.g. `{'bn_momentum': 0.9,
      'dropout_rate': 0.2}`. Each value must fit the input's dtype and shape,
      and must reach something the run computes (an output of the signature,
      or an UPDATE_OP that runs, in a graph variant the run applies): e.g.
      `dropout_rate` of a module frozen for the whole run would be ignored,
      and is refused. Empty means every optional input keeps its default.
    learning_rate_multiplier: the module variables' learning rate is the
      head's times this (>= 0): each of the two uses its own optimizer from
      `make_model_fn.optimizer_fn`, so the multiplier means the same for
      every optimizer (not a gradient scale, which Adam would undo). The
      head's rate is `make_model_fn.learning_rate_fn` of the global step, so
      the module follows the same schedule; after `frozen_steps` it starts
      at the schedule's rate of that step (a warm-up does not restart). 0
      freezes the module for the whole run (see the module docstring).
    frozen_steps: the module is frozen while the global step is below this
      (steps 0 .. frozen_steps - 1), then trains; 0 means it trains from the
      start. Counted in global steps, so a restart resumes the schedule (and
      may change it). A run resumed with a multiplier other than 1 or with
      `frozen_steps` from a checkpoint written without either fails before
      training: the module's optimizer state is not in it. The
      switch is a `tf.compat.v1.cond` between the two graph variants; a
      module whose training variant has input-dependent regularization
      losses (activity penalties) cannot be switched so and is refused before
      training, unless `regularization_weight` is 0.
    regularization_weight: multiplies the module's REGULARIZATION_LOSSES
      (e.g. its L2 penalties) in the training loss (>= 0); 1 keeps them as
      published, 0 drops them. Other regularization losses are unchanged.
  """

  signature: Optional[str] = None
  hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  learning_rate_multiplier: float = 1.0
  frozen_steps: int = 0
  regularization_weight: float = 1.0

  def __post_init__(self):
    if self.signature is not None and (
        not isinstance(self.signature, str) or not self.signature
    ):
      raise gin_utils.config_error(
          'FineTuning.signature must be a signature name or None; got'
          f' {self.signature!r}.'
      )
    if not isinstance(self.hparams, Mapping) or not all(
        isinstance(k, str) for k in self.hparams
    ):
      raise gin_utils.config_error(
          'FineTuning.hparams must be a dict from signature input name to'
          f' value; got {self.hparams!r}.'
      )
    object.__setattr__(self, 'hparams', dict(self.hparams))
    for name in ('learning_rate_multiplier', 'regularization_weight'):
      value = getattr(self, name)
      if not _number(value) or not math.isfinite(value) or value < 0:
        raise gin_utils.config_error(
            f'FineTuning.{name} must be a finite number >= 0; got {value!r}.'
        )
    steps = self.frozen_steps
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
      raise gin_utils.config_error(
          f'FineTuning.frozen_steps must be an integer >= 0; got {steps!r}.'
      )
    if steps and self.frozen:
      raise gin_utils.config_error(
          f'FineTuning.frozen_steps={steps} contradicts'
          ' FineTuning.learning_rate_multiplier=0, which freezes the module'
          ' for the whole run; set one of them.'
      )

  @property
  def frozen(self) -> bool:
    """True when the module is frozen for the whole run (multiplier 0)."""
    return self.learning_rate_multiplier == 0

  @property
  def is_plain(self) -> bool:
    """True when training is as without settings (besides hparams)."""
    return (
        self.learning_rate_multiplier == 1
        and not self.frozen_steps
        and self.regularization_weight == 1
    )

  def hparam_values(
      self, input_info: Mapping[str, Any], where: str, elsewhere: str = ''
  ) -> Dict[str, np.ndarray]:
    """Checks `hparams` against a signature's inputs; returns them converted.

    Args:
      input_info: the signature's inputs (name -> ParsedTensorInfo).
      where: the signature and module, for messages (e.g. "signature
        'with_hparams' of module /path").
      elsewhere: the module's other signatures that have inputs with
        defaults, for the message about an unknown key (e.g. "'with_hparams':
        ['bn_momentum', 'dropout_rate']"); empty when there are none.

    Returns:
      Input name -> numpy value of the input's dtype.

    Raises:
      ConfigError: a key is not an input with a default (the message lists
        those that have one), or a value does not fit its input's dtype or
        shape, or does not fit in that dtype (an integer out of its range, a
        number that would overflow to infinity).
    """
    optional = sorted(k for k, v in input_info.items() if v.has_default)
    unknown = sorted(set(self.hparams) - set(optional))
    if unknown:
      listed = ', '.join(
          f'{k} (default {tensor_info_lib.describe_default(input_info[k])})'
          for k in optional
      )
      other = (
          ' Other signatures with such inputs (FineTuning.signature):'
          f' {elsewhere}.'
          if elsewhere
          else ''
      )
      raise gin_utils.config_error(
          f'FineTuning.hparams: {unknown} are not inputs with a default of'
          f' {where}; inputs with defaults: {listed or "none"}.{other}'
      )
    values = {}
    for key, value in sorted(self.hparams.items()):
      info = input_info[key]
      want = info.dtype
      array = np.asarray(value)
      accepted = _ACCEPTED_KINDS.get(np.dtype(want.as_numpy_dtype).kind, '')
      if array.dtype.kind not in accepted:
        raise gin_utils.config_error(
            f'FineTuning.hparams[{key!r}]={value!r}: input {key!r} of {where}'
            f' is {want.name}{info.get_shape()}; got a value of type'
            f' {array.dtype.name}.'
        )
      if not info.get_shape().is_compatible_with(array.shape):
        raise gin_utils.config_error(
            f'FineTuning.hparams[{key!r}]={value!r}: input {key!r} of {where}'
            f' has shape {info.get_shape()}; got shape {list(array.shape)}.'
        )
      with np.errstate(over='ignore', invalid='ignore'):
        converted = array.astype(want.as_numpy_dtype)
      if array.dtype.kind in 'iu':
        fits = np.array_equal(converted, array)
      elif array.dtype.kind == 'f':
        fits = np.array_equal(np.isfinite(converted), np.isfinite(array))
      else:
        fits = True
      if not fits:
        raise gin_utils.config_error(
            f'FineTuning.hparams[{key!r}]={value!r}: does not fit in'
            f' {want.name}, the dtype of input {key!r} of {where}.'
        )
      values[key] = converted
    return values

  def as_record(self) -> Dict[str, Any]:
    """The settings as plain JSON-able values, for export provenance."""
    return {
        'signature': self.signature,
        'hparams': {k: np.asarray(v).tolist() for k, v in self.hparams.items()},
        'learning_rate_multiplier': self.learning_rate_multiplier,
        'frozen_steps': self.frozen_steps,
        'regularization_weight': self.regularization_weight,
    }


def constants(values: Mapping[str, np.ndarray]) -> Dict[str, tf.Tensor]:
  """Returns the hparam values as constant tensors, keyed like `values`."""
  return {key: tf.constant(value) for key, value in values.items()}
