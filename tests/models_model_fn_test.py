"""Tests for hub_estimator.models.model_fn.make_model_fn."""

import inspect

import gin
import numpy as np
import tensorflow as tf

# pylint: disable-next=g-direct-tensorflow-import
from tensorflow.python.util import function_utils

from hub_estimator import export as export_lib
from hub_estimator.consume import sources
from hub_estimator.models import heads
from hub_estimator.models import model_fn as model_fn_lib
from hub_estimator.models import module_fns
from hub_estimator.models import optimizers

_v1 = tf.compat.v1
_ModeKeys = tf.estimator.ModeKeys


def _source(**kwargs):
  return sources.ModuleFnSource(
      module_fn=module_fns.mlp(
          input_dim=4, units=[3], batch_norm=True, l2=0.5, dropout_rate=0.0
      ),
      export_name='body',
      **kwargs,
  )


def _decorated(features, labels, mode, config):
  del features, labels, mode, config


def _features():
  return {'x': tf.constant(np.random.RandomState(0).rand(8, 4), tf.float32)}


class MakeModelFnTest(tf.test.TestCase):

  def test_returns_plain_model_fn(self):
    model_fn = model_fn_lib.make_model_fn(
        module_source=_source(), head=heads.ClassificationHead(num_classes=2)
    )
    self.assertEqual(
        inspect.getfullargspec(model_fn).args,
        ['features', 'labels', 'mode', 'config'],
    )
    # What tf.estimator reads to decide which arguments to pass. A
    # gin-decorated model_fn would show none (the trap in STYLE.md).
    self.assertEqual(
        function_utils.fn_args(model_fn),
        ('features', 'labels', 'mode', 'config'),
    )
    self.assertEqual(function_utils.fn_args(gin.configurable(_decorated)), ())

  def test_train_adds_regularization_and_runs_update_ops(self):
    model_fn = model_fn_lib.make_model_fn(
        module_source=_source(),
        head=heads.ClassificationHead(num_classes=2),
        optimizer_fn=optimizers.sgd,
        hidden_units=[5],
        gradient_clip_norm=1.0,
    )
    with tf.Graph().as_default():
      labels = tf.constant([0, 1] * 4)
      spec = model_fn(_features(), labels, _ModeKeys.TRAIN, None)
      registered = export_lib.get_registered_modules()
      regularization = _v1.losses.get_regularization_loss()
      moving_mean = [
          v for v in _v1.global_variables() if 'moving_mean' in v.name
      ][0]
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        before = session.run(moving_mean)
        reg_value = session.run(regularization)
        session.run(spec.train_op)
        after = session.run(moving_mean)
    self.assertEqual([name for name, _ in registered], ['body'])
    self.assertGreater(reg_value, 0)  # The module's L2 penalty is in the loss.
    self.assertNotAllClose(before, after)  # Batch-norm update ran.

  def test_eval_and_predict(self):
    model_fn = model_fn_lib.make_model_fn(
        module_source=_source(), head=heads.RegressionHead(label_dimension=2)
    )
    with tf.Graph().as_default():
      spec = model_fn(_features(), tf.zeros([8, 2]), _ModeKeys.EVAL, None)
      value, update = spec.eval_metric_ops['root_mean_squared_error']
      with _v1.Session() as session:
        session.run([
            _v1.global_variables_initializer(),
            _v1.local_variables_initializer(),
        ])
        predictions = session.run(spec.predictions)
        session.run(update)
        rmse = session.run(value)
    # Labels are zero, so the RMSE is that of the predictions themselves.
    predicted = next(iter(predictions.values()))
    self.assertEqual(predicted.shape, (8, 2))
    self.assertAllClose(rmse, np.sqrt(np.mean(np.square(predicted))))
    with tf.Graph().as_default():
      spec = model_fn(_features(), None, _ModeKeys.PREDICT, None)
      registered = export_lib.get_registered_modules()
      output = spec.export_outputs['serving_default']
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        served = session.run(output.outputs)
    self.assertEqual([name for name, _ in registered], ['body'])
    self.assertEqual([v.shape for v in served.values()], [(8, 2)])

  def test_frozen_module_keeps_its_variables(self):
    model_fn = model_fn_lib.make_model_fn(
        module_source=_source(trainable=False),
        head=heads.ClassificationHead(num_classes=2),
    )
    with tf.Graph().as_default():
      model_fn(_features(), tf.constant([0] * 8), _ModeKeys.TRAIN, None)
      trainable = [v.name for v in _v1.trainable_variables()]
      module_variables = [
          v.name for v in _v1.global_variables() if v.name.startswith('module')
      ]
      regularization = _v1.get_collection(_v1.GraphKeys.REGULARIZATION_LOSSES)
    self.assertNotEmpty(trainable)
    self.assertNotEmpty(module_variables)  # The module is there, frozen.
    self.assertEqual([n for n in trainable if not n.startswith('head/')], [])
    self.assertEqual(regularization, [])  # A frozen module's L2 stays out.

  def test_bad_arguments_name_the_key(self):
    with self.assertRaisesRegex(ValueError, 'make_model_fn.dropout_rate'):
      model_fn_lib.make_model_fn(
          module_source=_source(),
          head=heads.ClassificationHead(num_classes=2),
          dropout_rate=2.0,
      )


if __name__ == '__main__':
  tf.test.main()
