"""FineTuning settings carried by module sources and applied by make_model_fn."""

import os
import tempfile

from absl.testing import parameterized
import gin
import numpy as np
import tensorflow as tf

import hub_estimator as hub
from hub_estimator import gin_utils
from hub_estimator.consume import fine_tuning as fine_tuning_lib
from hub_estimator.consume import sources
from hub_estimator.models import heads
from hub_estimator.models import model_fn as model_fn_lib
from hub_estimator.models import module_fns
from hub_estimator.models import optimizers

_v1 = tf.compat.v1
_TRAIN = tf.estimator.ModeKeys.TRAIN
FineTuning = fine_tuning_lib.FineTuning

_X = np.random.RandomState(0).rand(16, 4).astype(np.float32)
_LABELS = np.array([0, 1] * 8, np.int32)


def _activity_penalty_module_fn(is_training=False):
  """A body whose training variant has an input-dependent penalty."""
  x = _v1.placeholder(tf.float32, [None, 4], name='x')
  h = tf.matmul(x, _v1.get_variable('kernel', [4, 3]))
  if is_training:
    _v1.add_to_collection(
        _v1.GraphKeys.REGULARIZATION_LOSSES, 0.01 * tf.reduce_mean(h * h)
    )
  hub.add_signature('default', {'x': x}, h)


def _int_hparam_module_fn(is_training=False):
  """A body with an int32 input that has a default."""
  del is_training  # One graph for both variants.
  x = _v1.placeholder(tf.float32, [None, 4], name='x')
  width = _v1.placeholder_with_default(3, [], name='width')
  out = x * tf.cast(width, tf.float32)
  hub.add_signature('default', {'x': x, 'width': width}, out)


def _mixed_module_fn(is_training=False):
  """A body with a partitioned resource variable, ref variables, a moving mean."""
  x = _v1.placeholder(tf.float32, [None, 4], name='x')
  momentum = _v1.placeholder_with_default(0.5, [], name='bn_momentum')
  kernel = _v1.get_variable(
      'part',
      [4, 3],
      partitioner=_v1.fixed_size_partitioner(2),
      regularizer=lambda w: 0.5 * tf.reduce_sum(tf.square(w)),
  )
  with _v1.variable_scope('refs', use_resource=False):
    scale = _v1.get_variable('scale', [3], initializer=_v1.ones_initializer())
    moving_mean = _v1.get_variable(
        'moving_mean', [3], initializer=_v1.zeros_initializer(), trainable=False
    )
  h = tf.matmul(x, kernel) * scale
  if is_training:
    mean = tf.reduce_mean(h, 0)
    update = _v1.assign_sub(moving_mean, (moving_mean - mean) * (1 - momentum))
    _v1.add_to_collection(_v1.GraphKeys.UPDATE_OPS, update)
    out = h - mean
  else:
    out = h - moving_mean
  hub.add_signature('default', {'x': x}, out)
  hub.add_signature('with_hparams', {'x': x, 'bn_momentum': momentum}, out)


def _publish(folder, module_fn):
  """Exports a module made by `module_fn` (train and default variants)."""
  spec = hub.create_module_spec(module_fn, module_fns.TAGS_AND_ARGS)
  path = os.path.join(folder, 'module')
  with tf.Graph().as_default():
    module = hub.Module(spec)
    with _v1.Session() as session:
      session.run(_v1.global_variables_initializer())
      module.export(path, session)
  return path


# The slot names of the optimizers in hub_estimator.models.optimizers.
_SLOTS = ('Adam', 'Adam_1', 'Momentum', 'Adagrad', 'RMSProp', 'RMSProp_1')


def _module_values(session):
  """Name -> value of the module's own variables (not optimizer slots)."""
  own = [
      v
      for v in _v1.global_variables()
      if v.op.name.startswith('module/')
      and v.op.name.split('/')[-1] not in _SLOTS
  ]
  return dict(zip([v.op.name for v in own], session.run(own)))


class _Case(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    # The configurables built here must not see bindings another test of
    # this process parsed (e.g. FineTuning.* of a shipped config).
    gin.clear_config()
    self.addCleanup(gin.clear_config)
    self.mlp_path = _publish(
        tempfile.mkdtemp(dir=self.get_temp_dir()),
        module_fns.mlp(
            input_dim=4,
            units=[6],
            batch_norm=True,
            dropout_rate=0.25,
            bn_momentum=0.9,
            l2=0.5,
        ),
    )

  def train_graph(
      self, source, optimizer_fn=optimizers.sgd, config=None, **kwargs
  ):
    """Builds the TRAIN graph; returns the EstimatorSpec."""
    source.check()
    model_fn = model_fn_lib.make_model_fn(
        module_source=source,
        head=heads.ClassificationHead(num_classes=2),
        optimizer_fn=optimizer_fn,
        learning_rate_fn=lambda step: optimizers.constant_rate(step, 0.1),
        **kwargs,
    )
    return model_fn(
        {'x': tf.constant(_X)}, tf.constant(_LABELS), _TRAIN, config
    )


class HparamsReachTheGraphTest(_Case):

  def test_dropout_rate_changes_training_outputs(self):
    outputs = {}
    with tf.Graph().as_default():
      for rate in (0.0, 0.5):
        source = sources.PathSource(
            path=self.mlp_path,
            trainable=True,
            settings=sources.ModuleSettings(name=f'module_{int(rate * 10)}'),
            fine_tuning=FineTuning(
                signature='with_hparams', hparams={'dropout_rate': rate}
            ),
        )
        source.check()
        module = source.instantiate(_TRAIN)
        outputs[rate] = source.apply(module, {'x': tf.constant(_X)})
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        first = session.run(outputs[0.0])
        again = session.run(outputs[0.0])
        dropped = session.run(outputs[0.5])
    self.assertAllEqual(first, again)  # rate 0: no randomness left.
    kept = dropped != 0
    self.assertGreater(np.mean(first != 0) - np.mean(kept), 0.15)
    # Inverted dropout: what survives at rate 0.5 is scaled by 2.
    self.assertAllClose(dropped[kept], 2 * first[kept], rtol=1e-5)

  def test_bn_momentum_zero_makes_moving_mean_the_last_batch_mean(self):
    source = sources.PathSource(
        path=self.mlp_path,
        trainable=True,
        fine_tuning=FineTuning(
            signature='with_hparams', hparams={'bn_momentum': 0.0}
        ),
    )
    with tf.Graph().as_default():
      spec = self.train_graph(source)
      variables = {v.op.name: v for v in _v1.global_variables()}
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        kernel, bias = session.run([
            variables['module/dense_0/kernel'],
            variables['module/dense_0/bias'],
        ])
        session.run(spec.train_op)
        moving_mean = session.run(variables['module/bn_0/moving_mean'])
    self.assertAllClose(moving_mean, np.mean(_X @ kernel + bias, 0), atol=1e-6)


class OptionalInputsTest(_Case):

  def test_inputs_with_defaults_need_no_feature(self):
    source = sources.PathSource(
        path=self.mlp_path,
        settings=sources.ModuleSettings(signature='with_hparams'),
    )
    source.check_features({'x': tf.TensorSpec([None, 4], tf.float32)})
    with tf.Graph().as_default():
      receiver = source.serving_input_fn()()
      self.assertEqual(list(receiver.features), ['x'])
    # Mapped explicitly, an input with a default is fed from its feature.
    mapped = sources.PathSource(
        path=self.mlp_path,
        settings=sources.ModuleSettings(
            signature='with_hparams',
            feature_keys={'x': 'x', 'dropout_rate': 'rate'},
        ),
    )
    with self.assertRaisesRegex(
        gin_utils.ConfigError, "unmatched inputs \\['dropout_rate'\\]"
    ):
      mapped.check_features({'x': tf.TensorSpec([None, 4], tf.float32)})


class LearningRateAndFreezingTest(_Case, parameterized.TestCase):

  def test_multiplier_zero_keeps_published_weights_bit_identical(self):
    source = sources.PathSource(
        path=self.mlp_path,
        trainable=True,
        fine_tuning=FineTuning(learning_rate_multiplier=0.0),
    )
    self.assertEqual(source.tags(_TRAIN), set())  # The inference variant.
    with tf.Graph().as_default():
      spec = self.train_graph(source, optimizers.adam, hidden_units=[5])
      self.assertEmpty(_v1.get_collection(_v1.GraphKeys.UPDATE_OPS))
      head = [v for v in _v1.trainable_variables() if 'head/' in v.name]
      self.assertLen(_v1.trainable_variables(), len(head))
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        head_before = session.run(head)
        for _ in range(3):
          session.run(spec.train_op)
        module_after = _module_values(session)
        head_after = session.run(head)
    checkpoint = os.path.join(self.mlp_path, 'variables', 'variables')
    self.assertLen(module_after, 6)
    for name, value in module_after.items():
      published = tf.train.load_variable(checkpoint, name[len('module/') :])
      self.assertEqual(value.tobytes(), published.tobytes(), name)
    for before, after in zip(head_before, head_after):
      self.assertNotAllEqual(before, after)

  @parameterized.named_parameters(
      ('sgd', optimizers.sgd),
      ('momentum', optimizers.momentum),
      ('adam', optimizers.adam),
      ('adagrad', optimizers.adagrad),
      ('rmsprop', optimizers.rmsprop),
  )
  def test_frozen_steps_with_partitioned_and_ref_variables(self, optimizer_fn):
    path = _publish(tempfile.mkdtemp(dir=self.get_temp_dir()), _mixed_module_fn)
    frozen_steps = 2
    source = sources.PathSource(
        path=path,
        trainable=True,
        fine_tuning=FineTuning(
            signature='with_hparams',
            hparams={'bn_momentum': 0.0},
            learning_rate_multiplier=0.5,
            frozen_steps=frozen_steps,
        ),
    )
    with tf.Graph().as_default():
      spec = self.train_graph(source, optimizer_fn, hidden_units=[5])
      step = _v1.train.get_global_step()
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        published = _module_values(session)
        self.assertCountEqual(
            published,
            [
                'module/part/part_0',
                'module/part/part_1',
                'module/refs/scale',
                'module/refs/moving_mean',
            ],
        )
        values = {}
        for _ in range(frozen_steps + 1):
          session.run(spec.train_op)
          values[session.run(step)] = _module_values(session)
    # Bit-identical (weights and moving mean) through step N...
    for at_step in range(1, frozen_steps + 1):
      for name, value in values[at_step].items():
        self.assertEqual(value.tobytes(), published[name].tobytes(), name)
    # ...and every one of them changed by the first step after.
    for name, value in values[frozen_steps + 1].items():
      self.assertNotAllClose(value, published[name], msg=name)

  def test_frozen_module_adds_nothing_to_the_clipping_norm(self):
    """While frozen, the head's clipped step is as with the module fixed.

    The module's L2 penalty is large here; if its gradient counted in the
    global norm while frozen, clipping would shrink the head's step.
    """
    path = _publish(
        tempfile.mkdtemp(dir=self.get_temp_dir()),
        module_fns.mlp(input_dim=4, units=[6], batch_norm=True, l2=50.0),
    )
    steps = {}
    for name, settings in (
        ('fixed', FineTuning(learning_rate_multiplier=0.0)),
        ('frozen_steps', FineTuning(frozen_steps=5)),
    ):
      source = sources.PathSource(
          path=path, trainable=True, fine_tuning=settings
      )
      with tf.Graph().as_default():
        tf.random.set_seed(0)  # The same head initial values in each graph.
        spec = self.train_graph(source, gradient_clip_norm=1.0)
        head = [v for v in _v1.trainable_variables() if 'head/' in v.name]
        norm = _v1.get_default_graph().get_tensor_by_name(
            'global_norm/global_norm:0'
        )
        with _v1.Session() as session:
          session.run(_v1.global_variables_initializer())
          before = session.run(head)
          _, norm_value = session.run([spec.train_op, norm])
          after = session.run(head)
      steps[name] = ([a - b for a, b in zip(after, before)], norm_value)
    (fixed, fixed_norm), (frozen, frozen_norm) = steps.values()
    self.assertAllClose(frozen_norm, fixed_norm, rtol=1e-5)
    for a, b in zip(frozen, fixed):
      self.assertAllClose(a, b, rtol=1e-4, atol=1e-7)

  def test_frozen_steps_refuse_input_dependent_penalties(self):
    path = _publish(
        tempfile.mkdtemp(dir=self.get_temp_dir()), _activity_penalty_module_fn
    )
    for weight, fails in ((1.0, True), (0.0, False)):
      source = sources.PathSource(
          path=path,
          trainable=True,
          fine_tuning=FineTuning(frozen_steps=3, regularization_weight=weight),
      )
      with tf.Graph().as_default():
        if not fails:
          self.train_graph(source)
          continue
        with self.assertRaisesRegex(
            ValueError,
            r"FineTuning.frozen_steps=3: the graph variant \['train'\] .* has"
            r' 1 input-dependent regularization losses',
        ):
          self.train_graph(source)

  def test_module_learns_at_the_multiplied_rate(self):
    """SGD: the module's step is the head's rate x multiplier."""
    updates = {}
    for multiplier in (1.0, 0.25):
      source = sources.PathSource(
          path=self.mlp_path,
          trainable=True,
          fine_tuning=FineTuning(
              signature='with_hparams',
              hparams={'dropout_rate': 0.0},
              learning_rate_multiplier=multiplier,
          ),
      )
      with tf.Graph().as_default():
        tf.random.set_seed(0)
        spec = self.train_graph(source)
        kernel = [
            v for v in _v1.global_variables() if v.op.name.endswith('kernel')
        ]
        with _v1.Session() as session:
          session.run(_v1.global_variables_initializer())
          before = session.run(kernel)
          session.run(spec.train_op)
          after = session.run(kernel)
      updates[multiplier] = [a - b for a, b in zip(after, before)]
    module_full, head_full = updates[1.0]
    module_low, head_low = updates[0.25]
    self.assertAllClose(module_low, 0.25 * module_full, rtol=1e-4, atol=1e-7)
    self.assertAllClose(head_low, head_full, rtol=1e-4, atol=1e-7)


class RestartTest(_Case):

  def source(self, **kwargs):
    return sources.PathSource(
        path=self.mlp_path, trainable=True, fine_tuning=FineTuning(**kwargs)
    )

  def variable_names(self, source):
    with tf.Graph().as_default():
      self.train_graph(source, optimizers.adam)
      return sorted(v.op.name for v in _v1.global_variables())

  def test_frozen_steps_may_change_between_restarts(self):
    """The same variables (so checkpoints) with and without frozen steps."""
    names = self.variable_names(self.source(learning_rate_multiplier=0.5))
    self.assertIn('module_update/beta1_power', names)
    self.assertEqual(
        self.variable_names(
            self.source(learning_rate_multiplier=0.5, frozen_steps=5)
        ),
        names,
    )

  def test_resuming_with_a_new_module_optimizer_fails_early(self):
    model_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    config = tf.estimator.RunConfig(model_dir=model_dir)
    with tf.Graph().as_default():  # A run that began without FineTuning.
      self.train_graph(
          sources.PathSource(path=self.mlp_path, trainable=True),
          optimizers.adam,
          config,
      )
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        _v1.train.Saver().save(session, os.path.join(model_dir, 'model.ckpt'))
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          ValueError,
          r'FineTuning.learning_rate_multiplier=0.1 and'
          r' FineTuning.frozen_steps=0 give the module its own optimizer, but'
          r' checkpoint .*model.ckpt was written without it \(it lacks'
          r" \['module_update/beta1_power', 'module_update/beta2_power'\]\)",
      ):
        self.train_graph(
            self.source(learning_rate_multiplier=0.1), optimizers.adam, config
        )
    with tf.Graph().as_default():  # The same settings resume.
      self.train_graph(
          sources.PathSource(path=self.mlp_path, trainable=True),
          optimizers.adam,
          config,
      )


class RegularizationWeightTest(_Case):

  def test_weight_scales_the_module_regularization_exactly(self):
    results = {}
    for weight in (1.0, 0.25, 0.0):
      source = sources.PathSource(
          path=self.mlp_path,
          trainable=True,
          fine_tuning=FineTuning(
              signature='with_hparams',
              hparams={'dropout_rate': 0.0},  # The same data loss each time.
              regularization_weight=weight,
          ),
      )
      with tf.Graph().as_default():
        tf.random.set_seed(0)  # The same head initial values in each graph.
        spec = self.train_graph(source)
        module_losses = _v1.get_collection(
            _v1.GraphKeys.REGULARIZATION_LOSSES, 'module/'
        )
        self.assertLen(module_losses, 1)
        regularization = module_losses[0]
        if weight != 1:
          regularization = _v1.get_default_graph().get_tensor_by_name(
              'regularization_loss:0'
          )
        with _v1.Session() as session:
          session.run(_v1.global_variables_initializer())
          results[weight] = session.run(
              [regularization, module_losses[0], spec.loss]
          )
    _, raw, _ = results[1.0]
    self.assertGreater(raw, 0)
    for weight in (0.25, 0.0):
      value, module_raw, loss = results[weight]
      self.assertEqual(module_raw, raw)
      self.assertEqual(value, np.float32(weight) * raw)
    # The total loss moves by exactly the removed part of the penalty.
    self.assertAllClose(results[1.0][2] - results[0.0][2], raw, rtol=1e-6)


class BadSettingsTest(_Case):

  def assert_config_error(self, patterns, fn):
    with self.assertRaises(gin_utils.ConfigError) as cm:
      fn()
    for pattern in patterns:
      self.assertIn(pattern, str(cm.exception))

  def check(self, **kwargs):
    trainable = kwargs.pop('trainable', True)
    sources.PathSource(
        path=self.mlp_path,
        trainable=trainable,
        fine_tuning=FineTuning(**kwargs),
    ).check()

  def test_unknown_hparam_lists_the_inputs_with_defaults(self):
    self.assert_config_error(
        [
            "FineTuning.hparams: ['bn_momentm'] are not inputs with a default",
            "signature 'with_hparams'",
            'bn_momentum (default 0.9',
            'dropout_rate (default 0.25)',
        ],
        lambda: self.check(
            signature='with_hparams', hparams={'bn_momentm': 0.5}
        ),
    )
    # The default signature has no such input at all; the message points to
    # the one that has.
    self.assert_config_error(
        [
            "['dropout_rate'] are not inputs",
            'inputs with defaults: none',
            (
                'Other signatures with such inputs (FineTuning.signature):'
                " 'with_hparams': ['bn_momentum', 'dropout_rate']."
            ),
        ],
        lambda: self.check(hparams={'dropout_rate': 0.5}),
    )

  def test_missing_signature_names_the_key(self):
    self.assert_config_error(
        [
            "FineTuning.signature='hparam'",
            "'with_hparams': ['bn_momentum', 'dropout_rate']",
        ],
        lambda: self.check(signature='hparam'),
    )

  def test_values_must_fit_dtype_and_shape(self):
    self.assert_config_error(
        ["FineTuning.hparams['dropout_rate']='high'", 'float32'],
        lambda: self.check(
            signature='with_hparams', hparams={'dropout_rate': 'high'}
        ),
    )
    self.assert_config_error(
        ["FineTuning.hparams['bn_momentum']=True"],
        lambda: self.check(
            signature='with_hparams', hparams={'bn_momentum': True}
        ),
    )
    self.assert_config_error(
        ["FineTuning.hparams['bn_momentum']=[0.9, 0.9]", 'shape ()'],
        lambda: self.check(
            signature='with_hparams', hparams={'bn_momentum': [0.9, 0.9]}
        ),
    )

  def test_values_must_fit_in_the_dtype(self):
    int_input = _publish(
        tempfile.mkdtemp(dir=self.get_temp_dir()), _int_hparam_module_fn
    )
    for value in (2**31, -(2**31) - 1, 2**40):
      self.assert_config_error(
          [f"FineTuning.hparams['width']={value}: does not fit in int32"],
          lambda: sources.PathSource(
              path=int_input,
              fine_tuning=FineTuning(hparams={'width': value}),
          ).check(),
      )
    source = sources.PathSource(
        path=int_input, fine_tuning=FineTuning(hparams={'width': 2**31 - 1})
    )
    source.check()
    self.assertEqual(source._hparam_values(set()), {'width': 2**31 - 1})
    self.assert_config_error(
        ["FineTuning.hparams['bn_momentum']=1e+50: does not fit in float32"],
        lambda: self.check(
            signature='with_hparams', hparams={'bn_momentum': 1e50}
        ),
    )

  def test_bad_numbers_name_the_field(self):
    for kwargs, key in (
        ({'learning_rate_multiplier': -0.1}, 'learning_rate_multiplier'),
        (
            {'learning_rate_multiplier': float('nan')},
            'learning_rate_multiplier',
        ),
        ({'regularization_weight': -1}, 'regularization_weight'),
        ({'frozen_steps': 2.5}, 'frozen_steps'),
        ({'frozen_steps': -1}, 'frozen_steps'),
        ({'hparams': [('bn_momentum', 0.9)]}, 'hparams'),
    ):
      self.assert_config_error(
          [f'FineTuning.{key}'], lambda: FineTuning(**kwargs)
      )
    self.assert_config_error(
        ['FineTuning.frozen_steps=10 contradicts'],
        lambda: FineTuning(learning_rate_multiplier=0, frozen_steps=10),
    )

  def test_training_a_frozen_source_is_refused(self):
    self.assert_config_error(
        ['PathSource.trainable=False', 'learning_rate_multiplier=0.5'],
        lambda: self.check(trainable=False, learning_rate_multiplier=0.5),
    )
    self.assert_config_error(
        ['PathSource.trainable=False', 'frozen_steps=10'],
        lambda: self.check(trainable=False, frozen_steps=10),
    )
    # Consistent: frozen by the multiplier, or hparams alone (that matter).
    self.check(trainable=False, learning_rate_multiplier=0.0)
    int_input = _publish(
        tempfile.mkdtemp(dir=self.get_temp_dir()), _int_hparam_module_fn
    )
    sources.PathSource(
        path=int_input, fine_tuning=FineTuning(hparams={'width': 5})
    ).check()

  def test_hparams_that_reach_nothing_are_refused(self):
    # A frozen module runs its inference variant, without UPDATE_OPS: no
    # dropout, and batch-norm momentum moves nothing.
    for kwargs, why in (
        (
            {'learning_rate_multiplier': 0.0},
            (
                'the module is frozen for the whole run'
                ' (FineTuning.learning_rate_multiplier=0)'
            ),
        ),
        ({'trainable': False}, 'PathSource.trainable=False'),
    ):
      self.assert_config_error(
          [
              (
                  "FineTuning.hparams ['bn_momentum', 'dropout_rate'] would"
                  " have no effect: no output of signature 'with_hparams' of"
                  ' module'
              ),
              'in the graph variants this run applies ([])',
              why,
          ],
          lambda: self.check(
              signature='with_hparams',
              hparams={'bn_momentum': 0.5, 'dropout_rate': 0.2},
              **kwargs,
          ),
      )
    # Trainable: dropout reaches the training variant's output, and the
    # momentum its UPDATE_OPS (also when they only run after frozen steps).
    for kwargs in ({}, {'frozen_steps': 3}):
      self.check(
          signature='with_hparams',
          hparams={'bn_momentum': 0.5, 'dropout_rate': 0.2},
          **kwargs,
      )

  def test_input_fed_by_feature_and_hparams_is_refused(self):
    self.assert_config_error(
        ["Inputs ['bn_momentum'] are fed twice", 'ModuleSettings.feature_keys'],
        lambda: sources.PathSource(
            path=self.mlp_path,
            trainable=True,
            settings=sources.ModuleSettings(
                feature_keys={'x': 'x', 'bn_momentum': 'm'}
            ),
            fine_tuning=FineTuning(
                signature='with_hparams', hparams={'bn_momentum': 0.5}
            ),
        ).check(),
    )

  def test_signature_set_twice_must_agree(self):
    self.assert_config_error(
        [
            "ModuleSettings.signature='hparams'",
            "FineTuning.signature='with_hparams'",
        ],
        lambda: sources.PathSource(
            path=self.mlp_path,
            settings=sources.ModuleSettings(signature='hparams'),
            fine_tuning=FineTuning(signature='with_hparams'),
        ),
    )


if __name__ == '__main__':
  tf.test.main()
