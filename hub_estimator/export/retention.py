"""Which published versions to delete: newest-N and best-N retention rules.

Pure functions over lists of versions, so the rules are testable without files.
"Best" ranks as layout.py's comparer does.
"""

from typing import Callable, List, Optional, Sequence, TypeVar

from hub_estimator.export import layout

V = TypeVar("V")


def find_exports_to_keep_error(exports_to_keep) -> Optional[str]:
  """Returns why `exports_to_keep` is invalid, or None if it is valid."""
  if exports_to_keep is None:
    return None
  if (
      isinstance(exports_to_keep, bool)
      or not isinstance(exports_to_keep, int)
      or exports_to_keep <= 0
  ):
    return (
        "exports_to_keep, if provided, must be a positive number. "
        "Details: got %r" % (exports_to_keep,)
    )
  return None


def newest_to_delete(
    versions: Sequence[V],
    exports_to_keep: Optional[int],
    version_fn: Callable[[V], int],
) -> List[V]:
  """Returns the versions beyond the `exports_to_keep` newest ones.

  Args:
    versions: published versions, in any order.
    exports_to_keep: how many of the newest to keep; None keeps all.
    version_fn: returns the integer version of an element.
  """
  if exports_to_keep is None:
    return []
  ordered = sorted(versions, key=version_fn)
  return ordered[: max(0, len(ordered) - exports_to_keep)]


def best_to_delete(
    scored: Sequence[V],
    exports_to_keep: Optional[int],
    mode: str,
    value_fn: Callable[[V], float],
    version_fn: Callable[[V], int],
) -> List[V]:
  """Returns the scored versions outside the true top `exports_to_keep`.

  The best version is never returned (exports_to_keep is at least 1).

  Args:
    scored: published versions that have a value for the metric.
    exports_to_keep: how many of the best to keep; None keeps all.
    mode: 'min' or 'max'.
    value_fn: returns the metric value of an element.
    version_fn: returns the integer version of an element.
  """
  if exports_to_keep is None:
    return []
  ranked = layout.rank_best_first(scored, mode, value_fn, version_fn)
  return ranked[max(1, exports_to_keep) :]
