"""The import layers of hub-estimator, in machine-readable form.

`tests/layers_test.py` parses every module of the package and of `trainers/`
(with `ast`, nothing imported) and fails on an import that runs against this
table or forms a cycle, naming both files. `docs/architecture.md` explains the
table; change both together.

A module belongs to the first layer whose prefix matches its dotted name. It
may import modules of its own layer (without forming a cycle) and of the
layers listed in `ALLOWED`. Nothing inside the package imports the top-level
`hub_estimator` package itself (only its subpackages and modules).

This file must stay free of imports: the test reads it without importing
TensorFlow.
"""

# Layer name -> dotted module prefixes it covers (most specific first wins).
LAYERS = {
    # The TF1 Hub format: protos, saved_model io, specs, Module. Knows
    # nothing of estimators or gin.
    'format': ('hub_estimator.format',),
    # Publishing: register modules, export core, exporters, the export
    # layout (version folders, metadata, best version), retention.
    'export': ('hub_estimator.export',),
    # Consuming: module sources and feature columns. Reads the export layout
    # ("the best export of run X"); never imports models.
    'consume': ('hub_estimator.consume',),
    # What a person sees while a run trains: progress lines, quiet logs.
    'progress': ('hub_estimator.progress',),
    # gin parsing and ConfigError, shared by the gin-facing layers; the
    # checks of what gin bound (unused, misspelled, wrong types).
    'gin_utils': ('hub_estimator.gin_utils', 'hub_estimator.gin_checks'),
    # Checks of configured values (one wording), usable from any layer.
    'checks': ('hub_estimator.checks',),
    # gin-configurable building blocks: module_fns, heads, model_fn, inputs.
    'models': ('hub_estimator.models',),
    # gin -> Estimator -> train_and_evaluate, run results; preemption
    # (signals, checkpoint on SIGTERM, redoing an interrupted evaluation);
    # TF_CONFIG checks.
    'experiment': (
        'hub_estimator.experiment',
        'hub_estimator.preemption',
        'hub_estimator.run_result',
        'hub_estimator.cluster',
    ),
    # Command-line tools (python -m hub_estimator.tools.X).
    'tools': ('hub_estimator.tools',),
    # The public API (`import hub_estimator as hub`) and this table.
    'api': ('hub_estimator.__init__', 'hub_estimator.layers'),
    # absl entry points.
    'trainers': ('trainers',),
}

# Layer name -> the other layers its modules may import.
ALLOWED = {
    'format': ('checks',),
    'export': ('format', 'checks'),
    'consume': ('format', 'export', 'gin_utils', 'checks'),
    'progress': (),
    'gin_utils': (),
    'checks': (),
    'models': ('format', 'export', 'consume', 'gin_utils', 'checks'),
    'experiment': (
        'format',
        'export',
        'consume',
        'progress',
        'gin_utils',
        'checks',
        'models',
    ),
    'tools': ('format', 'models', 'checks'),
    'api': ('format', 'export', 'consume'),
    'trainers': ('experiment', 'gin_utils', 'progress'),
}
