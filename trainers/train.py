r"""Trains a gin-configured experiment and leaves hub modules behind.

  python -m trainers.train --gin_file=gin/experiments/digits_mlp.gin \
      --gin_param="MODEL_DIR='runs/digits_mlp'" --gin_param="TRAIN_STEPS=50"

--gin_file repeats (later files win); --gin_param (alias --gin_bindings)
repeats and is applied after the files. Gin files and their includes resolve
against the working directory first, then the configs shipped with the
package (the repository's gin/ folder); --list_configs prints those.

A configuration or input error (gin, TF_CONFIG, data files), or a run that
cannot finish correctly (the training input ran out, a bad record), prints
one line and exits with status 1; no traceback.
"""

import os
import sys

# Importing TensorFlow logs from C++ (cuDNN/cuFFT/cuBLAS registration errors,
# CPU and TensorRT notes) before anything else, also for --list_configs. 3
# keeps its C++ log to fatal errors; Python errors and this program's own
# lines still show. Set before the imports below import TensorFlow; a value
# the caller set wins (TF_CPP_MIN_LOG_LEVEL=0 shows everything).
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging

from hub_estimator import experiment
from hub_estimator import gin_utils
from hub_estimator import preemption
from hub_estimator import progress

# pylint: enable=g-import-not-at-top,wrong-import-position


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  flag_values = flags.FLAGS
  if flag_values.list_configs:
    print(_shipped_configs_text())
    return
  try:
    gin_utils.parse(flag_values.gin_file or [], flag_values.gin_param)
    progress.quiet_tensorflow_logs()
    experiment.run()
  except gin_utils.ConfigError as e:
    sys.exit(
        f'trainers.train: configuration error, nothing trained: {_one_line(e)}'
    )
  except experiment.ExportError as e:
    sys.exit(f'trainers.train: the final export failed.\n{e}')
  except preemption.Preempted as e:
    logging.warning(
        'trainers.train: %s Exiting with status %d (preempted).',
        e,
        preemption.PREEMPTED_EXIT_CODE,
    )
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
  except experiment.RunError as e:
    sys.exit(f'trainers.train: run failed: {_one_line(e)}')


def _one_line(error: Exception) -> str:
  """The error's message on one line (no traceback), for the terminal."""
  return ' '.join(line.strip() for line in str(error).splitlines() if line)


def _shipped_configs_text() -> str:
  """The --list_configs output: where the shipped configs are, then each."""
  root = gin_utils.shipped_config_root()
  if root is None:
    return 'No shipped gin configs found (the installed package lacks them).'
  lines = [
      f'Shipped gin configs (in {root}); pass one as'
      ' --gin_file=gin/experiments/NAME.gin:'
  ]
  lines += [f'  {name}' for name in gin_utils.list_shipped_configs()]
  return '\n'.join(lines)


def define_flags():
  """Defines the flags (only when run as a program)."""
  flags.DEFINE_multi_string(
      'gin_file', None, 'Gin config file; repeat for more (later files win).'
  )
  flags.DEFINE_multi_string(
      'gin_param', [], 'Gin binding such as "TRAIN_STEPS=50"; repeatable.'
  )
  flags.DEFINE_alias('gin_bindings', 'gin_param')
  flags.DEFINE_bool(
      'list_configs',
      False,
      'Print the gin configs shipped with the package and exit.',
  )


if __name__ == '__main__':
  define_flags()
  app.run(main)
