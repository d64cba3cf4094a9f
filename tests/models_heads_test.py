"""Tests for heads and for optimizers / learning-rate schedules."""

import numpy as np
import tensorflow as tf

from hub_estimator.models import heads
from hub_estimator.models import optimizers

_v1 = tf.compat.v1


def _evaluate(tensors, metric_ops=None):
  """Runs `tensors` (and one update of `metric_ops`) in a fresh session."""
  with _v1.Session() as session:
    session.run(
        [_v1.global_variables_initializer(), _v1.local_variables_initializer()]
    )
    if metric_ops:
      session.run({k: v[1] for k, v in metric_ops.items()})
      return session.run(tensors), session.run(
          {k: v[0] for k, v in metric_ops.items()}
      )
    return session.run(tensors)


class ClassificationHeadTest(tf.test.TestCase):

  def test_loss_predictions_and_metrics(self):
    with tf.Graph().as_default():
      head = heads.ClassificationHead(num_classes=3)
      logits = tf.constant([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
      labels = tf.constant([0, 2], tf.int64)
      predictions = head.predictions(logits)
      loss = head.loss(logits, labels)
      metrics = head.eval_metric_ops(predictions, labels)
      (loss_value, classes), values = _evaluate(
          (loss, predictions['class_ids']), metrics
      )
    expected = np.mean(
        [-np.log(np.exp(5) / (np.exp(5) + 2)), -np.log(1 / (np.exp(5) + 2))]
    )
    self.assertAllClose(loss_value, expected, rtol=1e-5)
    self.assertAllEqual(classes, [0, 1])
    self.assertAllClose(values['accuracy'], 0.5)
    self.assertIn('auc', values)
    self.assertEqual(head.logits_dimension, 3)

  def test_binary_adds_precision_and_recall(self):
    with tf.Graph().as_default():
      head = heads.ClassificationHead(num_classes=2)
      predictions = head.predictions(tf.constant([[0.0, 1.0], [1.0, 0.0]]))
      metrics = head.eval_metric_ops(predictions, tf.constant([[1], [1]]))
      _, values = _evaluate(predictions, metrics)
    self.assertAllClose(values['precision'], 1.0)
    self.assertAllClose(values['recall'], 0.5)

  def test_rejects_labels_it_cannot_take(self):
    head = heads.ClassificationHead(num_classes=3)
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, 'MultiLabelHead'):
        head.loss(tf.zeros([4, 3]), tf.zeros([4, 2]))
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, 'shape \\[batch, 2\\]'):
        heads.MultiLabelHead(num_labels=2).loss(
            tf.zeros([4, 2]), tf.zeros([4, 3])
        )
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, 'RegressionHead'):
        heads.RegressionHead(label_dimension=2).loss(
            tf.zeros([4, 2]), tf.zeros([4])
        )

  def test_bad_num_classes_names_the_key(self):
    with self.assertRaisesRegex(ValueError, 'ClassificationHead.num_classes'):
      heads.ClassificationHead(num_classes=1)


class MultiLabelHeadTest(tf.test.TestCase):

  def test_loss_and_metrics(self):
    with tf.Graph().as_default():
      head = heads.MultiLabelHead(num_labels=2)
      logits = tf.constant([[3.0, -3.0], [-3.0, -3.0]])
      labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
      predictions = head.predictions(logits)
      loss = head.loss(logits, labels)
      metrics = head.eval_metric_ops(predictions, labels)
      (loss_value, predicted), values = _evaluate(
          (loss, predictions['labels']), metrics
      )
    self.assertAllEqual(predicted, [[1, 0], [0, 0]])
    self.assertGreater(loss_value, 0)
    self.assertAllClose(values['accuracy'], 0.75)
    self.assertAllClose(values['precision'], 1.0)
    self.assertAllClose(values['recall'], 0.5)


class RegressionHeadTest(tf.test.TestCase):

  def test_loss_and_metrics(self):
    with tf.Graph().as_default():
      head = heads.RegressionHead()
      logits = tf.constant([[1.0], [3.0]])
      labels = tf.constant([2.0, 3.0])
      predictions = head.predictions(logits)
      loss = head.loss(logits, labels)
      metrics = head.eval_metric_ops(predictions, labels)
      loss_value, values = _evaluate(loss, metrics)
    self.assertAllClose(loss_value, 0.5)
    self.assertAllClose(values['mean_absolute_error'], 0.5)
    self.assertAllClose(values['root_mean_squared_error'], 0.5**0.5)


class OptimizersTest(tf.test.TestCase):

  def test_every_optimizer_minimizes(self):
    for optimizer_fn in (
        optimizers.sgd,
        optimizers.momentum,
        optimizers.adam,
        optimizers.adagrad,
        optimizers.rmsprop,
    ):
      with tf.Graph().as_default():
        w = _v1.get_variable('w', initializer=3.0)
        loss = tf.square(w)
        train = optimizer_fn(0.1).minimize(loss)
        with _v1.Session() as session:
          session.run(_v1.global_variables_initializer())
          before = session.run(loss)
          for _ in range(3):
            session.run(train)
          self.assertLess(session.run(loss), before, optimizer_fn.__name__)

  def test_schedules(self):
    with tf.Graph().as_default():
      step = tf.constant(50, tf.int64)
      rates = {
          'constant': optimizers.constant_rate(step, value=0.1),
          'exponential': optimizers.exponential_decay(
              step, initial=1.0, decay_steps=50, decay_rate=0.5
          ),
          'cosine': optimizers.cosine_decay(step, initial=1.0, decay_steps=100),
          'piecewise': optimizers.piecewise_constant(
              step, boundaries=[10, 100], values=[1.0, 0.5, 0.1]
          ),
          'warmup': optimizers.linear_warmup(
              step,
              schedule_fn=lambda s: optimizers.constant_rate(s, value=1.0),
              warmup_steps=101,
          ),
      }
      values = _evaluate(rates)
    self.assertAllClose(values['constant'], 0.1)
    self.assertAllClose(values['exponential'], 0.5)
    self.assertAllClose(values['cosine'], 0.5)
    self.assertAllClose(values['piecewise'], 0.5)
    self.assertAllClose(values['warmup'], 51 / 101)

  def test_bad_schedule_names_the_key(self):
    with self.assertRaisesRegex(ValueError, 'piecewise_constant.values'):
      optimizers.piecewise_constant(tf.constant(1), [10], [1.0])


if __name__ == '__main__':
  tf.test.main()
