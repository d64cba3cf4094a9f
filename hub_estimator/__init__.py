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
# CPU notes) would come before their output; most of them import TensorFlow,
# so the default is set here, before that import, and only for such a command
# line. A value the caller set wins (TF_CPP_MIN_LOG_LEVEL=0 shows everything).
if _is_tool_command_line():
  _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
del _os, _sys, _is_tool_command_line

# The public names and the module each comes from. They are imported on first
# use (PEP 562), so that `import hub_estimator` and the tools that need no
# TensorFlow (`python -m hub_estimator.tools.export_text_embedding` writes a
# module without it) do not pay TensorFlow's import (seconds, hundreds of MB);
# `hub.Module` and the others import it when first touched.
_PUBLIC = {
    "attach_image_module_info": "hub_estimator.consume.feature_columns",
    "get_expected_image_size": "hub_estimator.consume.feature_columns",
    "get_num_image_channels": "hub_estimator.consume.feature_columns",
    "image_embedding_column": "hub_estimator.consume.feature_columns",
    "sparse_text_embedding_column": "hub_estimator.consume.feature_columns",
    "text_embedding_column": "hub_estimator.consume.feature_columns",
    "BestModuleExporter": "hub_estimator.export",
    "LatestModuleExporter": "hub_estimator.export",
    "PeriodicModuleExporter": "hub_estimator.export",
    "register_module_for_export": "hub_estimator.export",
    "eval_function_for_module": "hub_estimator.format.module",
    "Module": "hub_estimator.format.module",
    "TRUST_ALL_OPS": "hub_estimator.format.op_policy",
    "UnsafeModuleError": "hub_estimator.format.op_policy",
    "ImageModuleInfo": "hub_estimator.format.protos",
    "ModuleAttachment": "hub_estimator.format.protos",
    "ModuleFormatError": "hub_estimator.format.saved_model_io",
    "add_signature": "hub_estimator.format.spec",
    "attach_message": "hub_estimator.format.spec",
    "create_module_spec": "hub_estimator.format.spec",
    "create_module_spec_from_saved_model": "hub_estimator.format.spec",
    "load_module_spec": "hub_estimator.format.spec",
    "ModuleSpec": "hub_estimator.format.spec",
    "ParsedTensorInfo": "hub_estimator.format.tensor_info",
    "export_tf2_saved_model": "hub_estimator.format.tf2_bridge",
}


def __getattr__(name):
  module = _PUBLIC.get(name)
  if module is None:
    raise AttributeError("module 'hub_estimator' has no attribute %r" % name)
  import importlib  # pylint: disable=g-import-not-at-top

  value = getattr(importlib.import_module(module), name)
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(_PUBLIC))


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
