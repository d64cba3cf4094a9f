"""Accuracy: the shipped fine-tuning experiment against its two alternatives.

All three train the multi-label digits head of gin/models/digits_finetune.gin
([is_even, is_at_least_5]) on the same 10% slice of the training examples
(`train/digits_input.fraction = 0.1`) for the same number of steps, and are
evaluated on the whole eval split:

  settings:  gin/experiments/digits_finetune_small.gin, i.e. the publisher's
             best export fine-tuned with FineTuning (frozen steps, module
             learning-rate multiplier, bn_momentum and dropout hparams);
  plain:     gin/experiments/digits_finetune.gin on the same slice: the same
             export fine-tuned without those settings;
  scratch:   the same body (gin/models/digits_mlp.gin's mlp) built fresh by a
             ModuleFnSource, trained from random initial values.

The publisher (gin/experiments/digits_mlp.gin) runs first unless
--publisher_dir names a finished run. Each variant runs once per seed
(RunSettings.tf_random_seed); the script prints each run's final eval
metrics and the mean per variant.

    .venv/bin/python benchmarks/finetune_benchmark.py [--steps 500]
        [--seeds 0,1,2] [--publisher_dir runs/digits_mlp]
"""

import argparse
import os
import statistics
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top,wrong-import-position
import gin

from hub_estimator import experiment
from hub_estimator import gin_utils
from hub_estimator import progress

_SCRATCH = [
    'Experiment.module_source = @ModuleFnSource()',
    'ModuleFnSource.module_fn = @mlp()',
    "ModuleFnSource.export_name = 'scratch'",
    'mlp.input_dim = 64',
    'mlp.units = [128, 64]',
    'mlp.batch_norm = True',
    'mlp.bn_momentum = 0.9',
    'mlp.dropout_rate = 0.1',
    'mlp.l2 = 0.0001',
]
_VARIANTS = {
    'settings': ('gin/experiments/digits_finetune_small.gin', []),
    'plain': (
        'gin/experiments/digits_finetune.gin',
        ['train/digits_input.fraction = 0.1'],
    ),
    'scratch': (
        'gin/experiments/digits_finetune.gin',
        ['train/digits_input.fraction = 0.1'] + _SCRATCH,
    ),
}


def run(gin_file, bindings):
  """Runs one experiment; returns its RunResult."""
  gin.clear_config()
  try:
    gin_utils.parse(
        [gin_file],
        ['import hub_estimator.models.module_fns'] + bindings,
    )
    return experiment.run()
  finally:
    gin.clear_config()


def main(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=int, default=500)
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--publisher_dir', default=None)
  args = parser.parse_args(argv)
  progress.quiet_tensorflow_logs()
  base = tempfile.mkdtemp(prefix='finetune_benchmark_')
  publisher = args.publisher_dir
  if publisher is None:
    publisher = os.path.join(base, 'publisher')
    run('gin/experiments/digits_mlp.gin', [f"MODEL_DIR = '{publisher}'"])
  results = {name: [] for name in _VARIANTS}
  for seed in [int(s) for s in args.seeds.split(',')]:
    for name, (gin_file, extra) in _VARIANTS.items():
      model_dir = os.path.join(base, f'{name}_{seed}')
      result = run(
          gin_file,
          [
              f"MODEL_DIR = '{model_dir}'",
              f"PUBLISHER_DIR = '{publisher}'",
              f'TRAIN_STEPS = {args.steps}',
              f'RunSettings.tf_random_seed = {seed}',
          ]
          + extra,
      )
      metrics = result.final_metrics
      results[name].append(metrics)
      print(
          f'seed {seed} {name:8s} accuracy {metrics["accuracy"]:.4f}'
          f' auc {metrics["auc"]:.4f}',
          flush=True,
      )
  print(
      f'\n{args.steps} steps on 10% of the training examples; eval split;'
      f' mean of seeds {args.seeds}; publisher {publisher}:'
  )
  for name, runs in results.items():
    accuracy = statistics.mean(m['accuracy'] for m in runs)
    auc = statistics.mean(m['auc'] for m in runs)
    print(f'  {name:8s} accuracy {accuracy:.4f}  auc {auc:.4f}')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
