"""Finds gin bindings that nothing uses or whose values do not fit.

gin itself (`skip_unknown=False`) rejects unknown configurables and parameter
names, but accepts a misspelled macro (`TRAIN_STEP = 5`), a misspelled scope
(`bset/BestModuleExporter.metric = 'loss'`), a binding of a configurable the
run never calls, and a value of the wrong type (`mlp.units = 128`): each is
silently unused or fails far from its binding. The helpers here find those
and return a message (or None), in the style of tensorflow_hub's
`find_*_error` helpers; `gin_utils` raises them as `ConfigError`.

They read gin 0.5.0's parsed config (`gin.config._CONFIG`) and the record of
what was called (`gin.config._OPERATIVE_CONFIG`); gin-config is pinned to
0.5.0 (its last release), and these two tables are the only access to what
was bound and what was used.
"""

import difflib
import inspect
import typing
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import gin
import typeguard

_MACRO_SELECTOR = 'gin.macro'
# (scope, selector) -> {parameter: value}, as gin keeps its config.
Config = Mapping[Tuple[str, str], Mapping[str, Any]]


def parsed_config() -> Config:
  """(scope, selector) -> {parameter: value} of everything bound so far."""
  return gin.config._CONFIG  # pylint: disable=protected-access


def operative_config() -> Config:
  """(scope, selector) -> {parameter: value} of every configurable called."""
  return gin.config._OPERATIVE_CONFIG  # pylint: disable=protected-access


def snapshot(config: Config) -> Config:
  """A copy of `config` that later parsing does not change."""
  return {key: dict(params) for key, params in config.items()}


def changed_keys(before: Config, after: Config) -> List[Tuple[str, str, str]]:
  """(scope, selector, parameter) bound anew or rebound between two configs."""
  changed = []
  for key, params in after.items():
    old = before.get(key, {})
    for param, value in params.items():
      if param not in old or old[param] is not value:
        changed.append((key[0], key[1], param))
  return changed


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
  """' Did you mean X?' for the closest candidate, or '' when none is close."""
  close = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
  return f' Did you mean {close[0]}?' if close else ''


def binding_key(scope: str, selector: str, param: str) -> str:
  """The binding as a user writes it, e.g. `train/digits_input.batch_size`."""
  if selector == _MACRO_SELECTOR:
    return scope
  name = selector.rsplit('.', 1)[-1]
  return f'{scope}/{name}.{param}' if scope else f'{name}.{param}'


def _references(value: Any) -> List[Any]:
  """Every gin reference (`@x`, `@x()`, `%X`) nested anywhere in `value`."""
  return list(gin.config.iterate_references(value))


def _is_macro(ref: Any) -> bool:
  return ref.configurable.selector == _MACRO_SELECTOR


def _macro_name(ref: Any) -> str:
  return '/'.join(ref.scopes)


def find_unused_macro_or_scope_error(
    config: Config, earlier: Optional[Config] = None
) -> Optional[str]:
  """Finds a macro nothing references, or a scope no reference enters.

  Args:
    config: the parsed config, `parsed_config()`.
    earlier: an earlier `snapshot` (e.g. after the gin files, before the
      command-line bindings); its references count too, so a binding that
      replaces the only reference to a scope (`Experiment.exporter_fns=[]`)
      leaves the bindings of that scope known rather than misspelled.

  Returns:
    A message naming the binding (with the closest used name, if any), or
    None when every macro is referenced and every scope is entered.
  """
  all_values = [
      v
      for c in (config, earlier or {})
      for params in c.values()
      for v in params.values()
  ]
  refs = _references(all_values)
  used_macros = {_macro_name(r) for r in refs if _is_macro(r)}
  entered_scopes = {s for r in refs if not _is_macro(r) for s in r.scopes}
  bound_macros = sorted(s for s, sel in config if sel == _MACRO_SELECTOR)
  for name in bound_macros:
    if name not in used_macros:
      return (
          f'Gin macro {name} is bound but nothing uses it (no %{name} in any'
          ' binding), so the setting would be silently ignored.'
          + did_you_mean(name, used_macros)
      )
  for scope, selector in sorted(config):
    if selector == _MACRO_SELECTOR or not scope:
      continue
    for component in scope.split('/'):
      if component not in entered_scopes:
        param = sorted(config[(scope, selector)])[0]
        return (
            f'Gin scope {component!r} of the binding'
            f' {binding_key(scope, selector, param)} is never entered (no'
            f' reference @{component}/... in any binding), so the binding'
            ' would be silently ignored.'
            + did_you_mean(component, entered_scopes)
        )
  return None


def _signature_types(fn_or_cls: Any) -> Dict[str, Any]:
  """Parameter name -> annotation of a configurable ({} when unknown)."""
  target = fn_or_cls.__init__ if inspect.isclass(fn_or_cls) else fn_or_cls
  try:
    hints = typing.get_type_hints(target)
  except Exception:  # pylint: disable=broad-except
    # Annotations that do not resolve (forward references to names the
    # module does not define at run time) are not checked.
    return {}
  hints.pop('return', None)
  return hints


def _resolve_macros(value: Any, config: Config) -> Tuple[Any, List[str]]:
  """(value, macros followed): a top-level `%MACRO` replaced by its value."""
  macros = []
  while (
      isinstance(value, gin.config.ConfigurableReference)
      and _is_macro(value)
      and len(macros) < 20
  ):
    bound = config.get((_macro_name(value), _MACRO_SELECTOR), {})
    if 'value' not in bound:
      break
    macros.append(_macro_name(value))
    value = bound['value']
  return value, macros


def _describe(annotation: Any) -> str:
  text = getattr(annotation, '__name__', None)
  if text is None or typing.get_args(annotation):
    text = str(annotation).replace('typing.', '')
  return text


def find_value_type_error(config: Config) -> Optional[str]:
  """Finds a bound literal value that does not fit its parameter's type.

  Values that are (or hold) references to other configurables are not
  checked here (they are made when the run calls them); macros are followed
  to their literal value. Parameters without a type annotation are not
  checked.

  Args:
    config: the parsed config, `parsed_config()`.

  Returns:
    A message naming the binding, the expected type and the value found, or
    None.
  """
  for (scope, selector), params in sorted(config.items()):
    if selector == _MACRO_SELECTOR:
      continue
    configurable = gin.config._REGISTRY.get_match(selector)  # pylint: disable=protected-access
    if configurable is None:
      continue
    hints = _signature_types(configurable.wrapped)
    for param, value in sorted(params.items()):
      if param not in hints:
        continue
      value, macros = _resolve_macros(value, config)
      if value is gin.REQUIRED or _references(value):
        continue
      try:
        typeguard.check_type(
            value,
            hints[param],
            collection_check_strategy=typeguard.CollectionCheckStrategy.ALL_ITEMS,
        )
      except typeguard.TypeCheckError:
        through = f' (set through macro {macros[-1]})' if macros else ''
        return (
            f'Gin binding {binding_key(scope, selector, param)}{through}'
            f' expects {_describe(hints[param])}; got {value!r}'
            f' ({type(value).__name__}).'
        )
  return None


def _scope_prefixes(scope: str) -> List[str]:
  parts = scope.split('/') if scope else []
  return ['/'.join(parts[:i]) for i in range(len(parts) + 1)]


def find_unused_binding_error(
    config: Config,
    operative: Config,
    keys: Iterable[Tuple[str, str, str]],
) -> Optional[str]:
  """Finds a binding of a parameter that no call of the run received.

  A binding `scope/name.param` is used when `name` was called in `scope` (or
  a scope nested in it) and `param` was not passed by the caller itself.
  Call this after everything the run configures has been built once.

  Args:
    config: the parsed config, `parsed_config()`.
    operative: what was called, `operative_config()`.
    keys: the (scope, selector, parameter) bindings to check (macros are
      skipped; `find_unused_macro_or_scope_error` covers them).

  Returns:
    A message naming the unused binding and why it is unused, or None.
  """
  for scope, selector, param in sorted(keys):
    if selector == _MACRO_SELECTOR or param not in config.get(
        (scope, selector), {}
    ):
      continue
    calls = [
        used
        for (op_scope, op_selector), used in operative.items()
        if op_selector == selector and scope in _scope_prefixes(op_scope)
    ]
    if any(param in used for used in calls):
      continue
    key = binding_key(scope, selector, param)
    name = selector.rsplit('.', 1)[-1]
    where = f' in scope {scope!r}' if scope else ''
    if not calls:
      return (
          f'Gin binding {key} is never used: nothing in this run calls'
          f' {name}{where}. Remove the binding, or reference'
          f' @{scope + "/" if scope else ""}{name} where it should be used.'
      )
    return (
        f'Gin binding {key} is never used: the code passes {param!r} to'
        f' {name} itself, so the binding has no effect. Remove it.'
    )
  return None


def find_unknown_parameter_suggestion(message: str) -> str:
  """' Did you mean X?' for gin's "doesn't have a parameter named" error."""
  marker = "doesn't have a parameter named '"
  if marker not in message:
    return ''
  head, _, tail = message.partition(marker)
  param = tail.split("'", 1)[0]
  name = head.rsplit("Configurable '", 1)[-1].split("'", 1)[0]
  configurable = gin.config._REGISTRY.get_match(name)  # pylint: disable=protected-access
  if configurable is None:
    return ''
  target = configurable.wrapped
  try:
    params = inspect.signature(target).parameters
  except (TypeError, ValueError):
    return ''
  return did_you_mean(param, params)
