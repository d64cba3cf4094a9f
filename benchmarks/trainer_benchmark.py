"""Training speed: a model_fn built from a module spec vs a hand-written one.

Both train the same network on the same data with `Estimator.train`:
scikit-learn's digits (offline), an MLP body (dense -> batch norm -> relu ->
dropout per layer, L2 on the kernels), a 10-way softmax head, Adam with cosine
decay.

  module:  hub_estimator.models.model_fn.make_model_fn over a ModuleFnSource
           of hub_estimator.models.module_fns.mlp (the body is a hub.Module,
           {"train"} variant, registered for export);
  hand:    an ordinary estimator model_fn written with tf.compat.v1.layers;
  finetune:   the model_fn over a PathSource of that body, exported once
              (trainable, {"train"} variant): plain fine-tuning;
  multiplier: the same with FineTuning(learning_rate_multiplier=0.1): the
              module's variables get their own optimizer at a tenth of the
              rate;
  unfrozen:   the same with FineTuning(frozen_steps=1): the module trains
              from step 1 on, so every measured step runs the training
              branch of the conds that switch variants and updates (the cost
              of `frozen_steps` once the module trains).

Steps/sec is measured by a hook between step `--warmup` and the last step
(graph building, session start and warm-up are excluded). Repetitions
alternate which variant runs first; the median of each is reported, and the
median of the per-repetition ratios (runs next to each other in time see the
same machine load, so this is the figure to read on a shared machine).
`--clock cpu` counts the process's CPU seconds (all threads) instead of
elapsed seconds: steps per CPU-second hardly move with other processes' load,
where wall-clock rates swing threefold between runs on a busy machine;
with `--threads 1` no thread pool spins either.

    .venv/bin/python benchmarks/trainer_benchmark.py [--steps 1500]
        [--repeats 10] [--units 128,64] [--batch_size 64]
        [--compare all|hand|multiplier|frozen_steps] [--clock wall|cpu]
        [--threads 0]

Targets: module / hand >= 0.97 (issue 4); multiplier / finetune >= 0.97
(issue 12); unfrozen / finetune is reported (no target).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

import hub_estimator as hub
from hub_estimator.consume import fine_tuning as fine_tuning_lib
from hub_estimator.consume import sources
from hub_estimator.models import heads
from hub_estimator.models import inputs
from hub_estimator.models import model_fn as model_fn_lib
from hub_estimator.models import module_fns
from hub_estimator.models import optimizers

_v1 = tf.compat.v1
_ModeKeys = tf.estimator.ModeKeys

DROPOUT = 0.1
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
L2 = 1e-4
LEARNING_RATE = 0.003


def _mlp(units):
  return module_fns.mlp(
      input_dim=64,
      units=units,
      dropout_rate=DROPOUT,
      batch_norm=True,
      bn_momentum=BN_MOMENTUM,
      bn_epsilon=BN_EPSILON,
      l2=L2,
  )


def export_body(units, folder):
  """Exports the MLP body (initial values) as a module; returns its path."""
  spec = hub.create_module_spec(_mlp(units), module_fns.TAGS_AND_ARGS)
  path = os.path.join(folder, 'body')
  with tf.Graph().as_default():
    module = hub.Module(spec)
    with _v1.Session() as session:
      session.run(_v1.global_variables_initializer())
      module.export(path, session)
  return path


def module_model_fn(units, steps, source=None):
  """The model_fn built by the library from a module source.

  Args:
    units: the MLP's layer sizes.
    steps: the learning-rate decay length.
    source: the module source; None means a ModuleFnSource of the MLP.
  """
  if source is None:
    source = sources.ModuleFnSource(module_fn=_mlp(units), export_name='body')
  return model_fn_lib.make_model_fn(
      module_source=source,
      head=heads.ClassificationHead(num_classes=10),
      optimizer_fn=optimizers.adam,
      learning_rate_fn=lambda step: optimizers.cosine_decay(
          step, initial=LEARNING_RATE, decay_steps=steps, alpha=0.05
      ),
  )


def hand_model_fn(units, steps):
  """The same network, written by hand as an ordinary estimator model_fn."""

  def model_fn(features, labels, mode, config):
    del config
    training = mode == _ModeKeys.TRAIN
    regularizer = lambda w: L2 * tf.reduce_sum(tf.square(w))
    net = features['x']
    for i, size in enumerate(units):
      net = _v1.layers.dense(
          net, size, kernel_regularizer=regularizer, name=f'dense_{i}'
      )
      net = _v1.layers.batch_normalization(
          net,
          momentum=BN_MOMENTUM,
          epsilon=BN_EPSILON,
          training=training,
          name=f'bn_{i}',
      )
      net = tf.nn.relu(net)
      if training:
        net = tf.nn.dropout(net, rate=DROPOUT)
    logits = _v1.layers.dense(net, 10, name='logits')
    loss = (
        _v1.losses.sparse_softmax_cross_entropy(
            labels, logits, loss_collection=None
        )
        + _v1.losses.get_regularization_loss()
    )
    global_step = _v1.train.get_or_create_global_step()
    rate = _v1.train.cosine_decay(LEARNING_RATE, global_step, steps, 0.05)
    optimizer = _v1.train.AdamOptimizer(rate)
    with tf.control_dependencies(_v1.get_collection(_v1.GraphKeys.UPDATE_OPS)):
      train_op = optimizer.minimize(loss, global_step=global_step)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

  return model_fn


class _RateHook(tf.estimator.SessionRunHook):
  """Times the steps after `warmup` with `clock` (seconds)."""

  def __init__(self, warmup, clock):
    self._clock = clock
    self._warmup = warmup
    self._count = 0
    self.t_start = self.t_end = None
    self.steps = 0

  def after_run(self, run_context, run_values):
    self._count += 1
    if self._count == self._warmup:
      self.t_start = self._clock()
    elif self._count > self._warmup:
      self.t_end = self._clock()
      self.steps = self._count - self._warmup

  @property
  def steps_per_sec(self):
    return self.steps / (self.t_end - self.t_start)


_CLOCKS = {
    # Elapsed time: what a user waits for.
    'wall': time.perf_counter,
    # CPU time of the process, all threads: barely moved by other processes
    # on a busy shared machine, where wall-clock rates swing 3x between runs.
    'cpu': time.process_time,
}


def measure(model_fn, input_fn, steps, warmup, seed, clock='wall', threads=0):
  """Trains `steps` steps in a fresh model_dir; returns steps per second.

  Args:
    model_fn: the model_fn to train.
    input_fn: the training input_fn.
    steps: steps to train.
    warmup: steps before timing starts.
    seed: the graph-level random seed.
    clock: `wall` (elapsed seconds) or `cpu` (process CPU seconds).
    threads: TensorFlow's intra- and inter-op thread pool sizes; 0 means
      TensorFlow's default (one per core).
  """
  config = tf.estimator.RunConfig(
      model_dir=tempfile.mkdtemp(prefix='trainer_benchmark_'),
      tf_random_seed=seed,
      save_checkpoints_steps=None,
      save_checkpoints_secs=None,
      save_summary_steps=10**9,
      log_step_count_steps=10**9,
      session_config=tf.compat.v1.ConfigProto(
          intra_op_parallelism_threads=threads,
          inter_op_parallelism_threads=threads,
      ),
  )
  hook = _RateHook(warmup, _CLOCKS[clock])
  tf.estimator.Estimator(model_fn, config=config).train(
      input_fn, steps=steps, hooks=[hook]
  )
  return hook.steps_per_sec


def main(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=int, default=1500)
  parser.add_argument('--warmup', type=int, default=200)
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--units', default='128,64')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument(
      '--clock',
      default='wall',
      choices=sorted(_CLOCKS),
      help='wall: steps per second; cpu: steps per process CPU-second',
  )
  parser.add_argument(
      '--threads',
      type=int,
      default=0,
      help='TensorFlow thread pool sizes; 0 means one per core',
  )
  parser.add_argument(
      '--compare',
      default='all',
      choices=['all', 'hand', 'multiplier', 'frozen_steps'],
      help=(
          'hand: module vs hand only; multiplier: finetune vs multiplier'
          ' only; frozen_steps: finetune vs unfrozen only'
      ),
  )
  args = parser.parse_args(argv)
  tf.get_logger().setLevel('ERROR')
  warnings.filterwarnings('ignore', category=UserWarning)
  units = [int(u) for u in args.units.split(',')]
  input_fn = inputs.digits_input(batch_size=args.batch_size)
  body = export_body(units, tempfile.mkdtemp(prefix='trainer_benchmark_'))
  multiplier = fine_tuning_lib.FineTuning(learning_rate_multiplier=0.1)
  variants = {
      'module': module_model_fn(units, args.steps),
      'hand': hand_model_fn(units, args.steps),
      'finetune': module_model_fn(
          units, args.steps, sources.PathSource(path=body, trainable=True)
      ),
      'multiplier': module_model_fn(
          units,
          args.steps,
          sources.PathSource(path=body, trainable=True, fine_tuning=multiplier),
      ),
      'unfrozen': module_model_fn(
          units,
          args.steps,
          sources.PathSource(
              path=body,
              trainable=True,
              fine_tuning=fine_tuning_lib.FineTuning(frozen_steps=1),
          ),
      ),
  }
  pairs = {
      'hand': ('module', 'hand'),
      'multiplier': ('multiplier', 'finetune'),
      'frozen_steps': ('unfrozen', 'finetune'),
  }
  if args.compare != 'all':
    variants = {k: variants[k] for k in pairs[args.compare]}
  rates = {name: [] for name in variants}
  unit = 'steps/sec' if args.clock == 'wall' else 'steps/CPU-sec'
  for repeat in range(args.repeats):
    # Compared pairs run next to each other; the order flips every repeat.
    order = list(variants)[:: -1 if repeat % 2 else 1]
    for name in order:
      rate = measure(
          variants[name],
          input_fn,
          args.steps,
          args.warmup,
          repeat,
          args.clock,
          args.threads,
      )
      rates[name].append(rate)
      print(f'repeat {repeat} {name:10s} {rate:8.1f} {unit}', flush=True)
  print(
      f'\nMLP {units}, batch {args.batch_size}, {args.steps} steps'
      f' ({args.warmup} warm-up), median of {args.repeats}:'
  )
  labels = {
      'module': 'module spec model_fn',
      'hand': 'hand-written model_fn',
      'finetune': 'fine-tuning, plain',
      'multiplier': 'fine-tuning, x0.1 lr',
      'unfrozen': 'after frozen_steps',
  }
  for ours, peer in pairs.values():
    if ours not in rates:
      continue
    median_ours = statistics.median(rates[ours])
    median_peer = statistics.median(rates[peer])
    paired = statistics.median(o / p for o, p in zip(rates[ours], rates[peer]))
    print(f'  {labels[ours]:22s}: {median_ours:8.1f} {unit}')
    print(f'  {labels[peer]:22s}: {median_peer:8.1f} {unit}')
    print(f'  {"ratio of medians":22s}: {median_ours / median_peer:8.3f}')
    target = '(no target)' if ours == 'unfrozen' else '(target >= 0.97)'
    print(f'  {"median paired ratio":22s}: {paired:8.3f}  {target}')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
