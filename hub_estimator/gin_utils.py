"""Parses gin files and bindings the same way for every entry point and test."""

import glob
import logging as pylogging
import os
import re
import tokenize
from typing import List, Optional, Sequence, Tuple

from absl import logging
import gin
import tensorflow as tf

from hub_estimator import gin_checks

# The repository root, in a checkout: its top-level gin/ folder holds the
# shipped configs.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# In an installed package, the copy of that gin/ folder the wheel carries
# (pyproject.toml packages it as hub_estimator/configs/gin).
PACKAGED_CONFIG_ROOT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'configs'
)

CONFIG_FILENAME = 'config.gin'

_added_search_paths = set()
_last_sources = {'files': (), 'bindings': ()}
# Where the last `parse` found each binding (gin_checks.Scan.sources).
_binding_sources = {}


class ConfigError(ValueError):
  """A configuration is unusable; the message names the gin file or binding."""


def add_search_path(path: str) -> None:
  """Adds `path` to gin's include/config search path once.

  Args:
    path: a directory against which relative gin file names are resolved.
  """
  path = os.path.abspath(path)
  if path not in _added_search_paths:
    gin.add_config_file_search_path(path)
    _added_search_paths.add(path)


def shipped_config_root() -> Optional[str]:
  """Returns the folder whose `gin/` subfolder holds the shipped configs.

  Returns:
    `PACKAGED_CONFIG_ROOT` in an installed package, else `REPO_ROOT` in a
    checkout (or an editable install); None if neither has a `gin/` folder.
  """
  for root in (PACKAGED_CONFIG_ROOT, REPO_ROOT):
    if os.path.isdir(os.path.join(root, 'gin')):
      return root
  return None


def list_shipped_configs() -> List[str]:
  """Returns the shipped gin files as `gin/...` names (for --gin_file), sorted."""
  root = shipped_config_root()
  if root is None:
    return []
  paths = glob.glob(os.path.join(root, 'gin', '**', '*.gin'), recursive=True)
  return sorted(os.path.relpath(p, root).replace(os.sep, '/') for p in paths)


def describe_sources() -> str:
  """Returns the gin files and bindings of the last `parse` call, for errors."""
  files = ', '.join(_last_sources['files']) or '(none)'
  bindings = '; '.join(_last_sources['bindings']) or '(none)'
  return f'gin files: {files}; gin bindings: {bindings}'


# What gin appends to an error raised inside a configurable it calls.
_GIN_CALL_NOTE = re.compile(
    r"\s*In call to configurable '([^']*)' \(<[^>]*>\)(?: in scope '([^']*)')?"
)


def config_error(message: str) -> ConfigError:
  """Returns a ConfigError whose message also names the parsed gin sources.

  gin's "In call to configurable 'X' (<class ...>) in scope 'S'" notes are
  shortened to "(calling S/X)".

  Args:
    message: what is wrong, naming the gin binding (e.g. `PathSource.path`).
  """
  message = without_gin_call_notes(message)
  return ConfigError(f'{message}\n  ({describe_sources()})')


def without_gin_call_notes(text: str) -> str:
  """`text` with gin's "In call to configurable 'X' (<...>)" notes shortened.

  Returns:
    `text` where each note reads "(calling scope/X)" (no Python repr).
  """

  def short(match):
    scope = f'{match.group(2)}/' if match.group(2) else ''
    return f' (calling {scope}{match.group(1)})'

  return _GIN_CALL_NOTE.sub(short, text)


def parse(
    gin_files: Sequence[str],
    gin_bindings: Sequence[str] = (),
    search_paths: Optional[Sequence[str]] = None,
    finalize: bool = True,
) -> None:
  """Parses gin files then bindings (later ones win), rejecting unknown keys.

  A relative file name, given here or on an `include` line, resolves against
  the working directory first, then the shipped configs (see
  `shipped_config_root`), then `search_paths`: `gin/runs/default.gin` works
  from any working directory, and a `gin/` folder of your own in the working
  directory wins over the shipped one.

  Args:
    gin_files: config files, parsed in order.
    gin_bindings: binding strings such as `"TRAIN_STEPS=50"`, parsed after the
      files.
    search_paths: extra directories to resolve gin files against, after the
      working directory and the shipped configs.
    finalize: whether to finalize (lock) the config, which also reports
      `%gin.REQUIRED` macros that were never overridden.

  Raises:
    ConfigError: a file is missing, a key or macro is unknown, a value does
      not parse or does not fit the parameter's type annotation, a required
      macro is not set, or a macro or scope is bound that nothing references
      (a misspelling: `TRAIN_STEP = 5` would otherwise be silently ignored).
      The message names the file and line or the binding, suggests the
      closest known name, and lists every file and binding given.
  """
  _last_sources['files'] = tuple(gin_files)
  _last_sources['bindings'] = tuple(gin_bindings)
  shipped_root = shipped_config_root()
  if shipped_root is not None:
    add_search_path(shipped_root)
  for path in search_paths or ():
    add_search_path(path)
  if not gin_files:
    raise config_error(
        'No gin file given: pass at least one --gin_file (--list_configs'
        ' lists the shipped ones).'
    )
  try:
    scan = _parse_without_search_misses(gin_files, gin_bindings, finalize)
  except (
      ValueError,
      KeyError,
      IOError,
      ImportError,
      SyntaxError,
      TypeError,
      tokenize.TokenError,  # An unclosed bracket at the end of the text.
  ) as e:
    message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    if 'set to `%gin.REQUIRED` but not subsequently overridden' in message:
      macro = message.split('/', 1)[0]
      message = (
          f'Required gin macro {macro} is not set. Pass'
          f' --gin_param="{macro}=..." or bind it in a gin file. Details:'
          f' {message}'
      )
    elif message.startswith('Unable to open file'):
      message += (
          ' Relative names resolve against the working directory'
          f' ({os.getcwd()}), then the shipped configs'
          f' ({shipped_root or "none found"});'
          ' `python -m trainers.train --list_configs` lists those.'
      )
    unparsable = _find_unparsable_text(gin_files, gin_bindings)
    if unparsable:
      message = unparsable
    first, _, rest = message.partition('\n')
    suggestion = gin_checks.find_unknown_parameter_suggestion(first)
    message = first + suggestion + (f'\n{rest}' if rest else '')
    raise config_error(f'Bad gin configuration: {message}') from e
  config = gin_checks.parsed_config()
  _binding_sources.clear()
  _binding_sources.update(scan.sources)
  problem = gin_checks.find_unused_macro_or_scope_error(
      config, scan=scan
  ) or gin_checks.find_value_type_error(config, sources=_binding_sources)
  if problem:
    raise config_error(problem)
  logging.info('Parsed %s', describe_sources())
  logging.debug('Gin config:\n%s', gin.config_str())


class _DropSearchMisses(pylogging.Filter):
  """Drops the lines of gin's system-path reader (gin/resource_reader.py).

  gin-config 0.5.0 logs `Path not found` at ERROR level for each search
  location that lacks a file, even when a later one (the shipped configs) has
  it; a file found nowhere still fails `parse` with one ConfigError.
  """

  def filter(self, record: pylogging.LogRecord) -> bool:
    return not record.pathname.endswith(
        os.path.join('gin', 'resource_reader.py')
    )


def _parse_error(text: str) -> Optional[Exception]:
  """gin's parse error of `text` alone (configurables not looked up), or None."""
  parser = gin.config_parser.ConfigParser(
      text, gin.config.ParserDelegate(skip_unknown=True)
  )
  try:
    list(parser)  # Parses every statement.
  except (SyntaxError, ValueError, tokenize.TokenError) as e:
    return e
  return None


def _find_unparsable_text(
    gin_files: Sequence[str], gin_bindings: Sequence[str]
) -> Optional[str]:
  """Names the first gin file or --gin_param that does not parse on its own.

  gin parses all bindings as one text, so its error points at a "line" of
  that text (a later binding, when one leaves a bracket open); an unclosed
  bracket at the end of a file is reported without the file. Each readable
  file (for that error only) and each binding is parsed alone here.

  Returns:
    A message naming the file or binding and gin's parse error, or None when
    each parses alone (the error is elsewhere, e.g. in an included file).
  """
  for path in gin_files:
    if not os.path.isfile(path):
      continue  # Resolved by gin's search paths; gin names it if it fails.
    with open(path) as f:
      error = _parse_error(f.read())
    # gin names the file and line of its other parse errors itself.
    if isinstance(error, tokenize.TokenError):
      return (
          f'gin file {path} does not parse ({error}); check its brackets and'
          ' quotes.'
      )
  for binding in gin_bindings:
    error = _parse_error(binding)
    if error:
      return (
          f'the binding --gin_param={binding!r} does not parse ({error});'
          ' check its brackets and quotes (quote it for the shell, e.g.'
          ' --gin_param="mlp.units=[128, 64]").'
      )
  return None


def _parse_without_search_misses(
    gin_files: Sequence[str], gin_bindings: Sequence[str], finalize: bool
) -> gin_checks.Scan:
  """Parses files then bindings, minus gin's search-miss lines.

  Returns:
    The statement-by-statement scan of the files and bindings (where each
    binding was written, what the statements reference).
  """
  root_logger = pylogging.getLogger()  # gin logs them through the root logger.
  search_misses = _DropSearchMisses()
  root_logger.addFilter(search_misses)
  try:
    gin.parse_config_files_and_bindings(
        list(gin_files),
        list(gin_bindings),
        skip_unknown=False,
        finalize_config=False,
    )
    if finalize:
      gin.finalize()
    return gin_checks.scan_bindings(gin_files, gin_bindings)
  finally:
    root_logger.removeFilter(search_misses)


def _is_shipped(path: str) -> bool:
  root = shipped_config_root()
  if root is None:
    return False
  shipped = os.path.realpath(os.path.join(root, 'gin'))
  return os.path.realpath(path).startswith(shipped + os.sep)


def checked_binding_keys() -> List[Tuple[str, str, str]]:
  """The bindings of the last `parse` that must each be used by the run.

  Those written on the command line (--gin_param) or in a file given
  directly (--gin_file), except the shipped configs of gin/. Bindings in a
  file pulled in by an `include` line, and in the shipped configs, are
  layered defaults: they may configure parts the run swaps out (the
  exporters of gin/runs/default.gin when `Experiment.exporter_fns=[]`, the
  csv_input settings of a base file when an experiment reads TFRecord).

  Returns:
    (scope, selector, parameter) keys, macros excluded.
  """
  return sorted(
      key
      for key, source in _binding_sources.items()
      if source.file is None
      or not (source.included or _is_shipped(source.file))
  )


def check_bindings_used() -> None:
  """Fails if a binding the user wrote directly is not used by any call.

  Checked are the keys of `checked_binding_keys` (the command line and the
  files given with --gin_file, not their includes nor the shipped configs):
  each must reach a call, else it would be silently ignored (a binding of
  `constant_rate` when the run's learning rate is `cosine_decay`). Call it
  once everything the run configures has been built (the experiment's
  checks build every part once before training).

  Raises:
    ConfigError: naming the unused binding, its file and line (or
      --gin_param), and why it is unused.
  """
  problem = gin_checks.find_unused_binding_error(
      gin_checks.parsed_config(),
      gin_checks.operative_config(),
      checked_binding_keys(),
      sources=_binding_sources,
  )
  if problem:
    raise config_error(problem)


def write_config(model_dir: str) -> str:
  """Writes the parsed gin config to `model_dir/config.gin`.

  Args:
    model_dir: the run directory; created if missing.

  Returns:
    The path written.
  """
  tf.io.gfile.makedirs(model_dir)
  path = os.path.join(model_dir, CONFIG_FILENAME)
  header = f'# Gin config parsed at start of the run.\n# {describe_sources()}\n'
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(header + gin.config_str())
  return path
