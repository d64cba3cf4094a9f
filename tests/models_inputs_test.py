"""Tests for hub_estimator.models.inputs."""

import os

import numpy as np
import tensorflow as tf

from hub_estimator.models import inputs


def _first_batch(input_fn):
  for batch in input_fn().take(1):
    return tf.nest.map_structure(
        lambda t: t if isinstance(t, tf.SparseTensor) else t.numpy(), batch
    )


class InputsTest(tf.test.TestCase):

  def test_numpy_arrays_and_npz(self):
    x = np.arange(12, dtype=np.float32).reshape([6, 2])
    y = np.arange(6)
    features, labels = _first_batch(
        inputs.numpy_input(x, y, batch_size=4, shuffle=False)
    )
    self.assertAllEqual(features['x'], x[:4])
    self.assertAllEqual(labels, y[:4])
    path = os.path.join(self.get_temp_dir(), 'd.npz')
    np.savez(path, a=x, label=y)
    features, labels = _first_batch(
        inputs.numpy_input(path, 'label', batch_size=6, shuffle=False)
    )
    self.assertEqual(list(features), ['a'])
    self.assertAllEqual(labels, y)

  def test_numpy_length_mismatch(self):
    with self.assertRaisesRegex(ValueError, 'same length'):
      inputs.numpy_input(np.zeros([3, 2]), np.zeros([4]))

  def test_csv_with_packed_features(self):
    path = os.path.join(self.get_temp_dir(), 'd.csv')
    with open(path, 'w') as f:
      f.write('a,b,text,label\n1,2,hello world,0\n3,4,bye,1\n')
    input_fn = inputs.csv_input(
        path,
        column_names=['a', 'b', 'text', 'label'],
        column_types=['float32', 'float32', 'string', 'int64'],
        label_key='label',
        packed_features={'x': ['a', 'b']},
        batch_size=2,
        shuffle=False,
    )
    features, labels = _first_batch(input_fn)
    self.assertAllClose(features['x'], [[1, 2], [3, 4]])
    self.assertAllEqual(features['text'], [b'hello world', b'bye'])
    self.assertAllEqual(labels, [0, 1])

  def test_csv_bad_label_names_the_key(self):
    with self.assertRaisesRegex(ValueError, 'csv_input.label_key'):
      inputs.csv_input('x.csv', ['a'], ['float32'], label_key='b')

  def test_tfrecord_examples(self):
    path = os.path.join(self.get_temp_dir(), 'd.tfrecord')
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(3):
        example = tf.train.Example(
            features=tf.train.Features(
                feature={
                    'x': tf.train.Feature(
                        float_list=tf.train.FloatList(value=[i, i + 1.0])
                    ),
                    'tokens': tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[b't'] * i)
                    ),
                    'label': tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[i])
                    ),
                }
            )
        )
        writer.write(example.SerializeToString())
    input_fn = inputs.tfrecord_input(
        path,
        feature_spec={
            'x': ('float32', [2]),
            'tokens': ('string', None),
            'label': ('int64', []),
        },
        label_key='label',
        batch_size=3,
        shuffle=False,
    )
    features, labels = _first_batch(input_fn)
    self.assertAllClose(features['x'], [[0, 1], [1, 2], [2, 3]])
    self.assertAllEqual(features['tokens'].dense_shape, [3, 2])
    self.assertAllEqual(labels, [0, 1, 2])

  def test_bad_feature_spec_names_the_feature(self):
    with self.assertRaisesRegex(ValueError, "feature_spec\\['x'\\]"):
      inputs.make_feature_spec({'x': ('float64', [2])})

  def test_digits_is_offline_and_split(self):
    train_x, train_y = inputs.load_digits('train')
    eval_x, _ = inputs.load_digits('eval')
    self.assertEqual(train_x.shape[1], 64)
    self.assertEqual(len(train_x) + len(eval_x), 1797)
    self.assertLessEqual(train_x.max(), 1.0)
    self.assertEqual(set(train_y), set(range(10)))
    features, labels = _first_batch(
        inputs.digits_input(
            as_images=True,
            feature_key='images',
            task='attributes',
            batch_size=5,
        )
    )
    self.assertEqual(features['images'].shape, (5, 8, 8, 1))
    self.assertEqual(labels.shape, (5, 2))
    with self.assertRaisesRegex(ValueError, 'digits_input.task'):
      inputs.load_digits('train', task='nope')

  def test_digits_fraction_takes_the_first_examples(self):
    train_x, _ = inputs.load_digits('train')
    features, _ = _first_batch(
        inputs.digits_input(
            fraction=0.1, batch_size=1000, shuffle=False, num_epochs=1
        )
    )
    self.assertAllEqual(features['x'], train_x[:144])
    with self.assertRaisesRegex(ValueError, r'digits_input.fraction.*got 0'):
      inputs.digits_input(fraction=0)

  def test_topics(self):
    features, labels = _first_batch(
        inputs.topics_input(split='eval', num_examples=10, batch_size=10)
    )
    self.assertEqual(features['text'].shape, (10,))
    self.assertEqual(labels.shape, (10,))
    self.assertLessEqual(set(labels.tolist()), set(range(4)))


if __name__ == '__main__':
  tf.test.main()
