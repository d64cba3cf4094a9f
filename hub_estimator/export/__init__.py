"""Estimator integration for publishers: register modules, export them.

In the `model_fn` (PREDICT mode included), register each module to publish:

    module = hub_estimator.Module(spec, trainable=True)
    hub_estimator.register_module_for_export(module, "embedding")

and give `tf.estimator.EvalSpec` one or more exporters:

    exporters=[
        LatestModuleExporter("latest", serving_input_fn, exports_to_keep=3),
        BestModuleExporter("best", serving_input_fn, metric="accuracy",
                           mode="max", exports_to_keep=1),
        PeriodicModuleExporter("every_10k", serving_input_fn,
                               every_n_steps=10000),
    ]

After each evaluation every exporter's policy decides; exports land in
`model_dir/export/<exporter name>/<version>/<export_name>/` (the layout of
tensorflow_hub 0.15) with `export_metadata.json` (global step, metrics,
checkpoint, exporter policy, time, package versions) and, when gin is in use,
`operative_config.gin` beside the modules. Versions appear atomically (staged
in `temp-*`, published by rename); state (best so far, last export) is read
back from the metadata, so restarts are safe. Every argument is gin-bindable,
e.g. `BestModuleExporter.metric = 'accuracy'`.
"""

from hub_estimator.export.policies import BestModuleExporter
from hub_estimator.export.policies import ExportError
from hub_estimator.export.policies import LatestModuleExporter
from hub_estimator.export.policies import ModuleExporter
from hub_estimator.export.policies import PeriodicModuleExporter
from hub_estimator.export.layout import METADATA_FILENAME
from hub_estimator.export.layout import read_metadata
from hub_estimator.export.provenance import GIN_CONFIG_ATTACHMENT_KEY
from hub_estimator.export.provenance import GIN_CONFIG_FILENAME
from hub_estimator.export.registry import get_registered_modules
from hub_estimator.export.registry import register_module_for_export

__all__ = [
    "BestModuleExporter",
    "ExportError",
    "GIN_CONFIG_ATTACHMENT_KEY",
    "GIN_CONFIG_FILENAME",
    "get_registered_modules",
    "LatestModuleExporter",
    "METADATA_FILENAME",
    "ModuleExporter",
    "PeriodicModuleExporter",
    "read_metadata",
    "register_module_for_export",
]
