"""Estimator integration for publishers: register modules, export them."""

from hub_estimator.export.policies import BestModuleExporter
from hub_estimator.export.policies import ExportError
from hub_estimator.export.policies import LatestModuleExporter
from hub_estimator.export.policies import ModuleExporter
from hub_estimator.export.policies import PeriodicModuleExporter
from hub_estimator.export.provenance import GIN_CONFIG_ATTACHMENT_KEY
from hub_estimator.export.provenance import METADATA_FILENAME
from hub_estimator.export.registry import get_registered_modules
from hub_estimator.export.registry import register_module_for_export
