"""hub-estimator: TF1 Hub modules for tf.estimator users.

A drop-in for tensorflow_hub's TF1 API: `import hub_estimator as hub`.
"""

from hub_estimator.consume.feature_columns import attach_image_module_info
from hub_estimator.consume.feature_columns import get_expected_image_size
from hub_estimator.consume.feature_columns import get_num_image_channels
from hub_estimator.consume.feature_columns import image_embedding_column
from hub_estimator.consume.feature_columns import sparse_text_embedding_column
from hub_estimator.consume.feature_columns import text_embedding_column
from hub_estimator.export import BestModuleExporter
from hub_estimator.export import LatestModuleExporter
from hub_estimator.export import PeriodicModuleExporter
from hub_estimator.export import register_module_for_export
from hub_estimator.format.module import eval_function_for_module
from hub_estimator.format.module import Module
from hub_estimator.format.op_policy import TRUST_ALL_OPS
from hub_estimator.format.op_policy import UnsafeModuleError
from hub_estimator.format.protos import ImageModuleInfo
from hub_estimator.format.protos import ModuleAttachment
from hub_estimator.format.saved_model_io import ModuleFormatError
from hub_estimator.format.spec import add_signature
from hub_estimator.format.spec import attach_message
from hub_estimator.format.spec import create_module_spec
from hub_estimator.format.spec import create_module_spec_from_saved_model
from hub_estimator.format.spec import load_module_spec
from hub_estimator.format.spec import ModuleSpec
from hub_estimator.format.tensor_info import ParsedTensorInfo
from hub_estimator.format.tf2_bridge import export_tf2_saved_model

__all__ = [
    "add_signature",
    "attach_image_module_info",
    "attach_message",
    "BestModuleExporter",
    "create_module_spec",
    "create_module_spec_from_saved_model",
    "eval_function_for_module",
    "export_tf2_saved_model",
    "get_expected_image_size",
    "get_num_image_channels",
    "image_embedding_column",
    "ImageModuleInfo",
    "LatestModuleExporter",
    "load_module_spec",
    "Module",
    "ModuleAttachment",
    "ModuleFormatError",
    "ModuleSpec",
    "ParsedTensorInfo",
    "PeriodicModuleExporter",
    "register_module_for_export",
    "sparse_text_embedding_column",
    "text_embedding_column",
    "TRUST_ALL_OPS",
    "UnsafeModuleError",
]

__version__ = "0.1.0"
