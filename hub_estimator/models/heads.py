"""Heads: turn logits into a loss, predictions and eval metrics."""

import abc
from typing import Dict, Optional

import gin
import numpy as np
import tensorflow as tf

from hub_estimator import checks

_v1 = tf.compat.v1


class LabelsError(ValueError):
  """The labels do not fit the head (dtype, shape or values)."""


class Head(abc.ABC):
  """What a model_fn needs from a task: logits size, loss, outputs, metrics."""

  @property
  @abc.abstractmethod
  def logits_dimension(self) -> int:
    """The number of logits the model must produce per example."""

  @abc.abstractmethod
  def loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Returns the mean training loss (a scalar) of a batch."""

  @abc.abstractmethod
  def predictions(self, logits: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Returns the prediction tensors keyed by name."""

  @abc.abstractmethod
  def eval_metric_ops(
      self, predictions: Dict[str, tf.Tensor], labels: tf.Tensor
  ) -> Dict[str, tuple]:
    """Returns tf.compat.v1.metrics `(value, update_op)` pairs keyed by name.

    The Estimator adds the mean `loss` itself.
    """

  def find_labels_error(self, labels: np.ndarray) -> Optional[str]:
    """Checks the values of a batch of labels; returns what is wrong or None.

    The head checks every batch at run time as well (its loss and metrics
    fail with an InvalidArgumentError whose text holds the same rule, the
    part of this message before ';'), so a mid-run failure can be traced
    back to the record by re-reading the data with this method.

    Args:
      labels: one batch (or one example) of labels as read from the
        input_fn.

    Returns:
      '<rule>; <what this batch breaks>' or None.
    """
    del labels  # Any value is a valid label unless a head says otherwise.
    return None


def _describe(labels) -> str:
  return f'{labels.dtype.name}{labels.shape}'


def _outside(labels: np.ndarray, bad: np.ndarray) -> str:
  """'label 12 is outside' for one label, else 'N of M are outside (...)'."""
  if labels.size == 1:
    return f'label {labels.reshape(-1)[0]} is outside'
  return (
      f'{int(bad.sum())} of {labels.size} are outside (min'
      f' {np.nanmin(labels)}, max {np.nanmax(labels)})'
  )


def _checked(labels: tf.Tensor, ok: tf.Tensor, rule: str) -> tf.Tensor:
  """`labels`, failing at run time (InvalidArgumentError) unless `ok`.

  Every batch is checked, not only the first one the trainer reads before
  training: a bad label deep in the data would otherwise train silently
  (one_hot of an out-of-range id is all zeros) or fail with a message that
  names no label. The error text starts with `rule`.
  """
  as_float = tf.cast(labels, tf.float64)
  check = tf.debugging.Assert(
      tf.reduce_all(ok),
      [rule, 'min', tf.reduce_min(as_float), 'max', tf.reduce_max(as_float)],
  )
  with tf.control_dependencies([check]):
    return tf.identity(labels)


@gin.configurable
class ClassificationHead(Head):
  """Single-label classification with a softmax cross-entropy loss."""

  def __init__(self, num_classes: int = gin.REQUIRED, label_smoothing=0.0):
    """Creates the head.

    Args:
      num_classes: number of classes (>= 2); labels are int ids in
        [0, num_classes).
      label_smoothing: in [0, 1); 0 means plain one-hot targets.
    """
    self._num_classes = checks.check_positive(
        num_classes, 'ClassificationHead.num_classes'
    )
    if num_classes < 2:
      raise ValueError(
          f'ClassificationHead.num_classes must be >= 2; got {num_classes}.'
      )
    if not 0.0 <= label_smoothing < 1.0:
      raise ValueError(
          'ClassificationHead.label_smoothing must be in [0, 1); got'
          f' {label_smoothing}.'
      )
    self._label_smoothing = label_smoothing

  @property
  def logits_dimension(self) -> int:
    return self._num_classes

  def _labels(self, labels):
    labels = tf.convert_to_tensor(labels)
    shape = labels.shape
    if (
        not labels.dtype.is_integer
        or shape.rank not in (None, 1, 2)
        or (shape.rank == 2 and shape[1] not in (None, 1))
    ):
      raise LabelsError(
          'ClassificationHead needs integer class ids of shape [batch] or'
          f' [batch, 1]; got labels {_describe(labels)}. (Multi-hot labels'
          ' need MultiLabelHead.)'
      )
    ids = tf.reshape(tf.cast(labels, tf.int64), [-1])
    return _checked(
        ids, (ids >= 0) & (ids < self._num_classes), self._label_rule()
    )

  def _label_rule(self) -> str:
    return (
        f'labels must be class ids in [0, {self._num_classes}) for'
        f' ClassificationHead.num_classes={self._num_classes}'
    )

  def find_labels_error(self, labels):
    labels = np.asarray(labels)
    if not labels.size or not np.issubdtype(labels.dtype, np.integer):
      return None
    bad = (labels < 0) | (labels >= self._num_classes)
    if not bad.any():
      return None
    return (
        f'{self._label_rule()}; {_outside(labels, bad)}. Check'
        ' ClassificationHead.num_classes (macro NUM_CLASSES in some configs)'
        ' against the data.'
    )

  def loss(self, logits, labels):
    labels = self._labels(labels)
    if self._label_smoothing:
      onehot = tf.one_hot(labels, self._num_classes)
      return _v1.losses.softmax_cross_entropy(
          onehot,
          logits,
          label_smoothing=self._label_smoothing,
          loss_collection=None,
      )
    return _v1.losses.sparse_softmax_cross_entropy(
        labels, logits, loss_collection=None
    )

  def predictions(self, logits):
    return {
        'logits': logits,
        'probabilities': tf.nn.softmax(logits),
        'class_ids': tf.argmax(logits, axis=-1),
    }

  def eval_metric_ops(self, predictions, labels):
    labels = self._labels(labels)
    probabilities = predictions['probabilities']
    metrics = {
        'accuracy': _v1.metrics.accuracy(labels, predictions['class_ids']),
        # Micro-averaged one-vs-rest AUC over all classes.
        'auc': _v1.metrics.auc(
            tf.one_hot(labels, self._num_classes), probabilities
        ),
    }
    if self._num_classes == 2:
      metrics['precision'] = _v1.metrics.precision(
          labels, predictions['class_ids']
      )
      metrics['recall'] = _v1.metrics.recall(labels, predictions['class_ids'])
    return metrics


_MULTI_LABEL_RULE = 'MultiLabelHead needs multi-hot labels in [0, 1]'
_REGRESSION_LABEL_RULE = 'RegressionHead needs finite labels'


@gin.configurable
class MultiLabelHead(Head):
  """Independent binary labels with a sigmoid cross-entropy loss."""

  def __init__(self, num_labels: int = gin.REQUIRED, threshold: float = 0.5):
    """Creates the head.

    Args:
      num_labels: number of labels; labels are multi-hot floats of shape
        [batch, num_labels].
      threshold: probability above which a label is predicted present.
    """
    self._num_labels = checks.check_positive(
        num_labels, 'MultiLabelHead.num_labels'
    )
    if not 0.0 < threshold < 1.0:
      raise ValueError(
          f'MultiLabelHead.threshold must be in (0, 1); got {threshold}.'
      )
    self._threshold = threshold

  @property
  def logits_dimension(self) -> int:
    return self._num_labels

  def _labels(self, labels):
    labels = tf.convert_to_tensor(labels)
    shape = labels.shape
    if shape.rank not in (None, 2) or shape[-1] not in (None, self._num_labels):
      raise LabelsError(
          'MultiLabelHead needs multi-hot labels of shape [batch,'
          f' {self._num_labels}]; got labels {_describe(labels)}.'
      )
    labels = tf.cast(labels, tf.float32)
    return _checked(labels, (labels >= 0) & (labels <= 1), _MULTI_LABEL_RULE)

  def find_labels_error(self, labels):
    labels = np.asarray(labels, dtype=np.float64)
    bad = (labels < 0) | (labels > 1) | np.isnan(labels)
    if not bad.any():
      return None
    return f'{_MULTI_LABEL_RULE}; {_outside(labels, bad)}.'

  def loss(self, logits, labels):
    return _v1.losses.sigmoid_cross_entropy(
        self._labels(labels), logits, loss_collection=None
    )

  def predictions(self, logits):
    probabilities = tf.sigmoid(logits)
    return {
        'logits': logits,
        'probabilities': probabilities,
        'labels': tf.cast(probabilities > self._threshold, tf.int64),
    }

  def eval_metric_ops(self, predictions, labels):
    labels = self._labels(labels)
    predicted = predictions['labels']
    return {
        'accuracy': _v1.metrics.accuracy(tf.cast(labels, tf.int64), predicted),
        'auc': _v1.metrics.auc(labels, predictions['probabilities']),
        'precision': _v1.metrics.precision(labels, predicted),
        'recall': _v1.metrics.recall(labels, predicted),
    }


@gin.configurable
class RegressionHead(Head):
  """Real-valued targets with a mean squared error loss."""

  def __init__(self, label_dimension: int = 1):
    """Creates the head.

    Args:
      label_dimension: size of each target; labels have shape
        [batch, label_dimension] (or [batch] when it is 1).
    """
    self._label_dimension = checks.check_positive(
        label_dimension, 'RegressionHead.label_dimension'
    )

  @property
  def logits_dimension(self) -> int:
    return self._label_dimension

  def _labels(self, labels):
    labels = tf.convert_to_tensor(labels)
    shape = labels.shape
    dim = self._label_dimension
    if (
        shape.rank not in (None, 1, 2)
        or (shape.rank == 1 and dim != 1)
        or (shape.rank == 2 and shape[1] not in (None, dim))
    ):
      raise LabelsError(
          f'RegressionHead needs labels of shape [batch, {dim}]'
          f'{" or [batch]" if dim == 1 else ""}; got labels'
          f' {_describe(labels)}.'
      )
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1, dim])
    return _checked(labels, tf.math.is_finite(labels), _REGRESSION_LABEL_RULE)

  def find_labels_error(self, labels):
    labels = np.asarray(labels, dtype=np.float64)
    if np.isfinite(labels).all():
      return None
    return (
        f'{_REGRESSION_LABEL_RULE}; {int((~np.isfinite(labels)).sum())} of'
        f' {labels.size} are NaN or infinite.'
    )

  def loss(self, logits, labels):
    return _v1.losses.mean_squared_error(
        self._labels(labels), logits, loss_collection=None
    )

  def predictions(self, logits):
    return {'predictions': logits}

  def eval_metric_ops(self, predictions, labels):
    labels = self._labels(labels)
    return {
        'mean_absolute_error': _v1.metrics.mean_absolute_error(
            labels, predictions['predictions']
        ),
        'root_mean_squared_error': _v1.metrics.root_mean_squared_error(
            labels, predictions['predictions']
        ),
    }
