"""Prints what a TF1 Hub module holds: graph variants, signatures, variables, assets.

Usage: python -m hub_estimator.tools.inspect_module PATH [PATH ...]
"""

import os
import sys

import tensorflow as tf

from hub_estimator.format import saved_model_io
from hub_estimator.format import spec as spec_lib
from hub_estimator.format import tensor_info as tensor_info_lib


def _format_info(info):
  if info.is_composite:
    return str(info.type_spec)
  text = "%s %s" % (info.dtype.name, info.get_shape())
  if info.has_default:
    text += " (optional, default %s)" % tensor_info_lib.describe_default(info)
  return text


def describe(path):
  """Returns a human-readable description of the module at `path`.

  Raises:
    tf.errors.NotFoundError, ValueError: as `load_module_spec` does.
  """
  spec = spec_lib.load_module_spec(path)
  lines = ["module %s" % path]
  for tags in spec.get_tags():
    lines.append("  graph variant tags=%s" % sorted(tags))
    for name in sorted(spec.get_signature_names(tags)):
      lines.append("    signature %r" % name)
      for key, info in sorted(spec.get_input_info_dict(name, tags).items()):
        lines.append("      input  %-20s %s" % (key, _format_info(info)))
      for key, info in sorted(spec.get_output_info_dict(name, tags).items()):
        lines.append("      output %-20s %s" % (key, _format_info(info)))
    collections = spec.get_meta_graph(tags).collection_def
    attachments = collections.get(spec_lib.ATTACHMENTS_COLLECTION)
    if attachments is not None:
      lines.append(
          "    attached messages: %d" % len(attachments.bytes_list.value)
      )
  prefix = saved_model_io.variables_prefix(path)
  if tf.io.gfile.exists(prefix + ".index"):
    variables = tf.train.list_variables(prefix)
    total = 0
    for name, shape in variables:
      size = 1
      for dim in shape:
        size *= dim
      total += size
      lines.append("  variable %-40s %s" % (name, shape))
    lines.append("  %d variables, %d weights" % (len(variables), total))
  else:
    lines.append("  no variables")
  assets_dir = os.path.join(path, saved_model_io.ASSETS_DIRNAME)
  assets = (
      sorted(tf.io.gfile.listdir(assets_dir))
      if tf.io.gfile.isdir(assets_dir)
      else []
  )
  lines.append("  assets: %s" % (", ".join(assets) if assets else "none"))
  return "\n".join(lines)


def main(argv):
  if len(argv) < 2:
    print(__doc__.strip().splitlines()[-1], file=sys.stderr)
    return 2
  status = 0
  for path in argv[1:]:
    try:
      print(describe(path))
    except (tf.errors.NotFoundError, ValueError) as e:
      print("error: %s" % e, file=sys.stderr)
      status = 1
  return status


if __name__ == "__main__":
  sys.exit(main(sys.argv))
