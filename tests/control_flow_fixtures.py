"""Choosing how tf.cond and tf.while_loop are built, for tests."""

import contextlib

from tensorflow.python.ops import control_flow_util


@contextlib.contextmanager
def control_flow(v2):
  """Builds tf.cond / tf.while_loop as v2 function graphs or as TF1 did.

  TensorFlow 2.15 builds v2 control flow in graph mode too, unless a program
  calls `disable_v2_behavior()`; `v2=False` builds it as that program would.
  """
  saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
  control_flow_util.ENABLE_CONTROL_FLOW_V2 = v2
  try:
    yield
  finally:
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved
