"""The import layers of `hub_estimator/layers.py` hold, and there is no cycle.

Every module of `hub_estimator/` and `trainers/` is parsed with `ast` (nothing
is imported, so no TensorFlow either). A failure names both files.
"""

import ast
import os
import runpy
import tempfile
import textwrap
import unittest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGES = ('hub_estimator', 'trainers')
_TOP = 'hub_estimator'


def _module_files(root):
  """Dotted module name -> path relative to `root`, for both packages."""
  result = {}
  for package in _PACKAGES:
    for folder, dirs, files in os.walk(os.path.join(root, package)):
      dirs[:] = sorted(d for d in dirs if not d.startswith(('.', '__')))
      for name in sorted(files):
        if not name.endswith('.py'):
          continue
        rel = os.path.relpath(os.path.join(folder, name), root)
        parts = rel[: -len('.py')].split(os.sep)
        if parts[-1] == '__init__':
          parts = parts[:-1]
        result['.'.join(parts)] = rel
  return result


def _imported_modules(tree, module, is_package, known):
  """(line, dotted name) of every project module `tree` imports explicitly."""
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        found.append((node.lineno, alias.name))
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        anchor = module.split('.')
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = '.'.join(anchor + ([base] if base else []))
      for alias in node.names:
        candidate = f'{base}.{alias.name}'
        found.append((node.lineno, candidate if candidate in known else base))
  result = []
  for line, name in found:
    # `import a.b.c` names the deepest project module that exists.
    while name and name not in known and '.' in name:
      name = name.rsplit('.', 1)[0]
    if name in known:
      result.append((line, name))
  return result


def _layer_of(module, layers):
  """The layer whose longest prefix matches `module` (None if none does)."""
  if module == _TOP:
    module = _TOP + '.__init__'
  best, best_len = None, -1
  for layer, prefixes in layers.items():
    for prefix in prefixes:
      if (module == prefix or module.startswith(prefix + '.')) and len(
          prefix
      ) > best_len:
        best, best_len = layer, len(prefix)
  return best


def check_layers(root, layers, allowed):
  """Returns the problems (strings) of the import graph under `root`."""
  known = _module_files(root)
  problems = []
  edges = {}
  for module, rel in sorted(known.items()):
    with open(os.path.join(root, rel), encoding='utf-8') as f:
      tree = ast.parse(f.read(), filename=rel)
    is_package = rel.endswith('__init__.py')
    source_layer = _layer_of(module, layers)
    if source_layer is None:
      problems.append(
          f'{rel}: belongs to no layer of hub_estimator/layers.py; add it'
          ' to LAYERS.'
      )
      continue
    for line, target in _imported_modules(tree, module, is_package, known):
      if target == module:
        continue
      edges.setdefault(module, {}).setdefault(target, line)
      where = f'{rel}:{line} imports {known[target]}'
      if target == _TOP and module.startswith(_TOP + '.'):
        problems.append(
            f'{where}: nothing inside the package imports the top-level'
            f' `{_TOP}` package; import the subpackage module instead.'
        )
        continue
      target_layer = _layer_of(target, layers)
      if target_layer != source_layer and target_layer not in allowed.get(
          source_layer, ()
      ):
        problems.append(
            f'{where}: layer {source_layer!r} may not import layer'
            f' {target_layer!r} (allowed: {list(allowed[source_layer])}).'
        )
  problems.extend(_cycles(edges, known))
  return problems


def _cycles(edges, known):
  """One message per import cycle (strongly connected component)."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def visit(node):  # Tarjan's algorithm; the graph is small.
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in sorted(edges.get(node, ())):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        components.append(sorted(component))

  for node in sorted(edges):
    if node not in index:
      visit(node)
  messages = []
  for component in components:
    links = [
        f'{known[a]}:{edges[a][b]} imports {known[b]}'
        for a in component
        for b in sorted(edges.get(a, ()))
        if b in component
    ]
    messages.append('import cycle: ' + '; '.join(links) + '.')
  return messages


def _table():
  values = runpy.run_path(os.path.join(_ROOT, _TOP, 'layers.py'))
  return values['LAYERS'], values['ALLOWED']


class LayersTest(unittest.TestCase):

  def test_the_package_respects_its_layers(self):
    layers, allowed = _table()
    problems = check_layers(_ROOT, layers, allowed)
    self.assertEqual(problems, [], '\n' + '\n'.join(problems))

  def test_every_layer_is_described(self):
    layers, allowed = _table()
    self.assertEqual(sorted(layers), sorted(allowed))
    for layer, others in allowed.items():
      self.assertLessEqual(set(others), set(layers), layer)
      self.assertNotIn(layer, others)


class PublicNamesTest(unittest.TestCase):

  def test_every_subpackage_declares_what_it_exports(self):
    for folder, dirs, files in os.walk(os.path.join(_ROOT, _TOP)):
      dirs[:] = [d for d in dirs if not d.startswith(('.', '__'))]
      if '__init__.py' not in files or folder == os.path.join(_ROOT, _TOP):
        continue
      path = os.path.join(folder, '__init__.py')
      with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
      declared, bound = None, set()
      for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, 'id', None) == '__all__' for t in node.targets
        ):
          declared = ast.literal_eval(node.value)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
          bound.update(a.asname or a.name for a in node.names)
      rel = os.path.relpath(path, _ROOT)
      self.assertIsNotNone(declared, f'{rel} declares no __all__')
      modules = {n[: -len('.py')] for n in files if n.endswith('.py')}
      modules |= set(dirs)
      unknown = [n for n in declared if n not in bound and n not in modules]
      self.assertEqual(unknown, [], f'{rel}: __all__ names nothing there')
      self.assertEqual(len(set(declared)), len(declared), rel)


class CheckerTest(unittest.TestCase):
  """The checker itself fails on forbidden imports and cycles."""

  _LAYERS = {
      'low': ('hub_estimator.low',),
      'high': ('hub_estimator.high',),
      'api': ('hub_estimator.__init__',),
      'trainers': ('trainers',),
  }
  _ALLOWED = {'low': (), 'high': ('low',), 'api': ('low',), 'trainers': ()}

  def _check(self, files):
    with tempfile.TemporaryDirectory() as root:
      for rel, text in dict(
          {
              'hub_estimator/__init__.py': '',
              'hub_estimator/low/__init__.py': '',
              'hub_estimator/high/__init__.py': '',
              'trainers/__init__.py': '',
          },
          **files,
      ).items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
          f.write(textwrap.dedent(text))
      return check_layers(root, self._LAYERS, self._ALLOWED)

  def test_allowed_imports_pass(self):
    self.assertEqual(
        self._check({
            'hub_estimator/low/a.py': 'import os\n',
            'hub_estimator/high/b.py': (
                'from hub_estimator.low import a\nfrom . import c\n'
            ),
            'hub_estimator/high/c.py': 'import hub_estimator.low.a\n',
        }),
        [],
    )

  def test_upward_import_names_both_files(self):
    problems = self._check({
        'hub_estimator/low/a.py': (
            'def f():\n  from hub_estimator.high import b\n'
        ),
        'hub_estimator/high/b.py': '',
    })
    self.assertEqual(len(problems), 1, problems)
    self.assertIn(
        'hub_estimator/low/a.py:2 imports hub_estimator/high/b.py', problems[0]
    )
    self.assertIn("layer 'low' may not import layer 'high'", problems[0])

  def test_top_level_package_import_fails(self):
    problems = self._check(
        {'hub_estimator/high/b.py': 'import hub_estimator\n'}
    )
    self.assertEqual(len(problems), 1, problems)
    self.assertIn(
        'hub_estimator/high/b.py:1 imports hub_estimator/__init__.py',
        problems[0],
    )
    self.assertIn('top-level', problems[0])

  def test_cycle_names_both_files(self):
    problems = self._check({
        'hub_estimator/low/a.py': 'from hub_estimator.low import b\n',
        'hub_estimator/low/b.py': (
            'def f():\n  from hub_estimator.low import a\n'
        ),
    })
    self.assertEqual(len(problems), 1, problems)
    self.assertIn('import cycle', problems[0])
    self.assertIn(
        'hub_estimator/low/a.py:1 imports hub_estimator/low/b.py', problems[0]
    )
    self.assertIn(
        'hub_estimator/low/b.py:2 imports hub_estimator/low/a.py', problems[0]
    )

  def test_module_outside_every_layer_fails(self):
    problems = self._check({'hub_estimator/stray.py': ''})
    self.assertEqual(len(problems), 1, problems)
    self.assertIn('hub_estimator/stray.py: belongs to no layer', problems[0])


if __name__ == '__main__':
  unittest.main()
