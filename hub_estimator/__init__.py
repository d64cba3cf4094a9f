"""hub-estimator: TF1 Hub modules for tf.estimator users.

A drop-in for tensorflow_hub's TF1 API: `import hub_estimator as hub`.
"""

import os as _os
import sys as _sys


def _is_tool_command_line():
  """Whether this process is `python -m hub_estimator.<tool>`."""
  argv = getattr(_sys, "orig_argv", None)  # Python 3.10+
  if argv is None:
    # Python 3.9: argv[0] is "-m" while `-m` imports the module's packages.
    return bool(_sys.argv) and _sys.argv[0] == "-m"
  for flag, value in zip(argv, argv[1:]):
    if flag == "-m":
      return value.startswith("hub_estimator.")
  return False


# For the command-line tools (`python -m hub_estimator.tools.inspect_module`,
# ...), TensorFlow's C++ start-up log (cuDNN/cuFFT/cuBLAS registration errors,
# CPU notes) would come before their output; this package imports TensorFlow,
# so the default is set here, before that import, and only for such a command
# line. A value the caller set wins (TF_CPP_MIN_LOG_LEVEL=0 shows everything).
if _is_tool_command_line():
  _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
del _os, _sys, _is_tool_command_line

# pylint: disable=g-import-not-at-top,wrong-import-position
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
