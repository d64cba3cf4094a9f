"""Converts a TF1 Hub module into a TF2 Reusable SavedModel.

Usage:
  python -m hub_estimator.tools.convert_to_tf2 --module=PATH --export_path=PATH

The result loads with `tf.saved_model.load` and with tensorflow_hub's
`hub.KerasLayer(PATH, trainable=True)`; see
`hub_estimator.export_tf2_saved_model` for what it holds. Exit status: 0 on
success, 1 when the module cannot be read or converted (one message naming
why), 2 for a usage error.
"""

import sys

from absl import app
from absl import flags
import tensorflow as tf

from hub_estimator.format import tf2_bridge

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Unexpected arguments: %s" % argv[1:])
  try:
    path = tf2_bridge.export_tf2_saved_model(FLAGS.module, FLAGS.export_path)
  except (ValueError, OSError, tf.errors.OpError) as e:
    print("convert_to_tf2: %s" % e, file=sys.stderr)
    sys.exit(1)
  print(
      "Wrote TF2 Reusable SavedModel %s (from module %s)" % (path, FLAGS.module)
  )


if __name__ == "__main__":
  flags.DEFINE_string("module", None, "TF1 Hub module directory to convert.")
  flags.DEFINE_string(
      "export_path",
      None,
      "TF2 SavedModel directory to create (must not exist).",
  )
  flags.mark_flags_as_required(["module", "export_path"])
  app.run(main)
