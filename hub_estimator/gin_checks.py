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

import dataclasses
import difflib
import inspect
import os
import typing
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

import gin
from gin import config_parser
import typeguard

_MACRO_SELECTOR = 'gin.macro'
# (scope, selector) -> {parameter: value}, as gin keeps its config.
Config = Mapping[Tuple[str, str], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a binding was written.

  Attributes:
    file: the gin file as resolved (None for a command-line binding).
    line: 1-based line in `file` (or in the command-line bindings).
    included: whether `file` was pulled in by an `include` line rather than
      given directly (--gin_file).
  """

  file: Optional[str]
  line: int
  included: bool = False

  def describe(self) -> str:
    if self.file is None:
      return '--gin_param'
    return f'{self.file}, line {self.line}'


# (scope, selector, parameter) -> the Source of its last (winning) binding;
# macros are (name, 'gin.macro', 'value') as gin keeps them.
Sources = Dict[Tuple[str, str, str], Source]


@dataclasses.dataclass
class Scan:
  """What the gin files and bindings of a run say, statement by statement.

  Attributes:
    sources: where the winning binding of each key was written.
    used_macros: every macro some statement references (`%NAME`), also in
      statements a later one overrides.
    entered_scopes: every scope some statement's reference enters
      (`@scope/name`), also in statements a later one overrides: replacing
      the only reference to a scope (`Experiment.exporter_fns = []`) leaves
      the bindings of that scope known defaults, not misspellings.
  """

  sources: Sources = dataclasses.field(default_factory=dict)
  used_macros: Set[str] = dataclasses.field(default_factory=set)
  entered_scopes: Set[str] = dataclasses.field(default_factory=set)


class _NameRecorder(config_parser.ParserDelegate):
  """Records the names references use; the values themselves do not matter."""

  def __init__(self, scan: Scan):
    self._scan = scan

  def configurable_reference(self, scoped_name, evaluate):
    self._scan.entered_scopes.update(scoped_name.split('/')[:-1])

  def macro(self, macro_name):
    self._scan.used_macros.add(macro_name)


def _open_config(name: str):
  """(path, open file) of a gin file as gin's `parse_config_file` finds it."""
  prefixes = gin.config._LOCATION_PREFIXES if not os.path.isabs(name) else ['']  # pylint: disable=protected-access
  for prefix in prefixes:
    path = os.path.join(prefix, name)
    for reader, exists in gin.config._FILE_READERS:  # pylint: disable=protected-access
      if exists(path):
        return path, reader(path)
  return None, None


def _canonical_key(statement: Any) -> Tuple[str, str, str]:
  """The key gin files a binding statement under (full selector)."""
  scope, selector, param = (
      statement.scope,
      statement.selector,
      statement.arg_name,
  )
  if not param:
    return (
        f'{scope}/{selector}' if scope else selector,
        _MACRO_SELECTOR,
        'value',
    )
  configurable = gin.config._REGISTRY.get_match(selector)  # pylint: disable=protected-access
  return (scope, configurable.selector if configurable else selector, param)


def _scan(
    text_or_file: Any, file: Optional[str], included: bool, scan: Scan
) -> None:
  parser = config_parser.ConfigParser(text_or_file, _NameRecorder(scan))
  for statement in parser:
    if isinstance(statement, config_parser.BindingStatement):
      line = statement.location.line_num
      scan.sources[_canonical_key(statement)] = Source(file, line, included)
    elif isinstance(statement, config_parser.IncludeStatement):
      path, reader = _open_config(statement.filename)
      if reader is not None:
        with reader as f:
          _scan(f, path, True, scan)


def scan_bindings(
    gin_files: Iterable[str], gin_bindings: Iterable[str]
) -> Scan:
  """Reads the files (with their includes) and the bindings statement by statement.

  Call it after gin parsed the same files and bindings without error; it
  follows gin's order and gin's file search.

  Args:
    gin_files: the files given to gin, in order.
    gin_bindings: the binding strings given after the files.

  Returns:
    The Scan: where each binding was written, and every macro and scope
    the statements reference.
  """
  scan = Scan()
  for name in gin_files:
    path, reader = _open_config(name)
    if reader is not None:
      with reader as f:
        _scan(f, path, False, scan)
  _scan('\n'.join(gin_bindings), None, False, scan)
  return scan


def _where(sources: Optional[Sources], key: Tuple[str, str, str]) -> str:
  """' (file, line N)' for a binding whose source is known, else ''."""
  source = (sources or {}).get(key)
  return f' ({source.describe()})' if source else ''


def parsed_config() -> Config:
  """(scope, selector) -> {parameter: value} of everything bound so far."""
  return gin.config._CONFIG  # pylint: disable=protected-access


def operative_config() -> Config:
  """(scope, selector) -> {parameter: value} of every configurable called."""
  return gin.config._OPERATIVE_CONFIG  # pylint: disable=protected-access


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
    config: Config,
    scan: Optional[Scan] = None,
) -> Optional[str]:
  """Finds a macro nothing references, or a scope no reference enters.

  Args:
    config: the parsed config, `parsed_config()`.
    scan: the files' and bindings' `scan_bindings`: where each binding was
      written (named in the message), and the references of statements a
      later one overrode, which count too.

  Returns:
    A message naming the binding (with the closest used name, if any), or
    None when every macro is referenced and every scope is entered.
  """
  scan = scan or Scan()
  sources = scan.sources
  refs = _references([v for p in config.values() for v in p.values()])
  used_macros = {_macro_name(r) for r in refs if _is_macro(r)}
  used_macros |= scan.used_macros
  entered_scopes = {s for r in refs if not _is_macro(r) for s in r.scopes}
  entered_scopes |= scan.entered_scopes
  bound_macros = sorted(s for s, sel in config if sel == _MACRO_SELECTOR)
  for name in bound_macros:
    if name not in used_macros:
      where = _where(sources, (name, _MACRO_SELECTOR, 'value'))
      return (
          f'Gin macro {name}{where} is bound but nothing uses it (no %{name}'
          ' in any binding), so the setting would be silently ignored.'
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
            f' {binding_key(scope, selector, param)}'
            f'{_where(sources, (scope, selector, param))} is never entered (no'
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
  except (NameError, TypeError, AttributeError):
    # Annotations that do not resolve (forward references to names the
    # module does not define at run time, or objects that are not types)
    # are not checked: the binding is then accepted as gin parsed it.
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


def find_value_type_error(
    config: Config, sources: Optional[Sources] = None
) -> Optional[str]:
  """Finds a bound literal value that does not fit its parameter's type.

  Values that are (or hold) references to other configurables are not
  checked here (they are made when the run calls them); macros are followed
  to their literal value. Parameters without a type annotation are not
  checked.

  Args:
    config: the parsed config, `parsed_config()`.
    sources: where each binding was written (`Scan.sources`), named in
      the message when known.

  Returns:
    A message naming the binding (and its file and line), the expected type
    and the value found, or None.
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
      if not _accepts(value, hints[param]):
        if macros:
          # The value was written where the last macro was bound.
          source = (sources or {}).get((macros[-1], _MACRO_SELECTOR, 'value'))
          at = f', {source.describe()}' if source else ''
          where, through = '', f' (set through macro {macros[-1]}{at})'
        else:
          where, through = _where(sources, (scope, selector, param)), ''
        return (
            f'Gin binding {binding_key(scope, selector, param)}{where}{through}'
            f' expects {_describe(hints[param])}; got {value!r}'
            f' ({type(value).__name__}).{_type_fix(value, hints[param])}'
        )
  return None


def _accepts(value: Any, annotation: Any) -> bool:
  """Whether `value` fits the type annotation (every item of a collection)."""
  try:
    typeguard.check_type(
        value,
        annotation,
        collection_check_strategy=typeguard.CollectionCheckStrategy.ALL_ITEMS,
    )
  except typeguard.TypeCheckError:
    return False
  return True


def _type_fix(value: Any, annotation: Any) -> str:
  """' Write [128].' when the obvious fix of a value is known, else ''."""
  if isinstance(value, str):
    try:
      number = int(value)
    except ValueError:
      try:
        number = float(value)
      except ValueError:
        number = None
    if number is not None and _accepts(number, annotation):
      return f' Write {number!r}, without quotes.'
  if not isinstance(value, (list, tuple, dict)) and _accepts(
      [value], annotation
  ):
    return f' Write it as a list: [{value!r}].'
  return ''


def _scope_prefixes(scope: str) -> List[str]:
  parts = scope.split('/') if scope else []
  return ['/'.join(parts[:i]) for i in range(len(parts) + 1)]


def find_unused_binding_error(
    config: Config,
    operative: Config,
    keys: Iterable[Tuple[str, str, str]],
    sources: Optional[Sources] = None,
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
    sources: where each binding was written (`Scan.sources`), named in
      the message when known.

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
    key = binding_key(scope, selector, param) + _where(
        sources, (scope, selector, param)
    )
    name = selector.rsplit('.', 1)[-1]
    where = f' in scope {scope!r}' if scope else ''
    if not calls:
      called = {
          binding_key(s, sel, '').rstrip('.')
          for s, sel in operative
          if sel != _MACRO_SELECTOR
      }
      scoped_name = f'{scope}/{name}' if scope else name
      return (
          f'Gin binding {key} is never used: nothing in this run calls'
          f' {name}{where}, so it would be silently ignored.'
          + did_you_mean(scoped_name, called)
          + ' Remove the binding, or reference'
          f' @{scoped_name} where it should be used'
          + (
              ' (or, if it is a default for runs that do call it, move it to'
              ' a gin file that this one includes).'
              if (sources or {})
              .get((scope, selector, param), Source(None, 0))
              .file
              else '.'
          )
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
