"""Checks of configured values, with one error wording for the whole project.

Every check raises ValueError naming the gin key (e.g. `digits_input.batch_size`)
and the value received; the experiment turns it into a ConfigError that also
names the gin files and bindings parsed.
"""

import math
import numbers
from typing import Any


def check_positive(
    value: Any, key: str, *, integer: bool = True, allow_none: bool = False
) -> Any:
  """Returns `value` if it is a positive number (or None when allowed).

  Args:
    value: the configured value. `bool` is never a number here, and neither
      is NaN or infinity.
    key: the gin key that set it, for the message.
    integer: whether only an `int` (numpy integers included) is accepted.
    allow_none: whether None is accepted (e.g. "no limit").

  Raises:
    ValueError: `{key} must be a positive integer (or None); got {value!r}.`
  """
  if value is None and allow_none:
    return value
  if _is_positive(value, integer):
    return value
  what = 'a positive integer' if integer else 'a positive number'
  raise ValueError(
      f'{key} must be {what}{" or None" if allow_none else ""}; got {value!r}.'
  )


def _is_positive(value: Any, integer: bool) -> bool:
  if isinstance(value, bool):
    return False
  if integer:
    return isinstance(value, numbers.Integral) and value > 0
  return isinstance(value, numbers.Real) and math.isfinite(value) and value > 0
