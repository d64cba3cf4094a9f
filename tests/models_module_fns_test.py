"""Tests for hub_estimator.models.module_fns: variants, signatures, losses."""

import numpy as np
import tensorflow as tf

import hub_estimator as hub
from hub_estimator.consume import feature_columns
from hub_estimator.models import inputs
from hub_estimator.models import module_fns

_v1 = tf.compat.v1


def _spec(module_fn):
  return hub.create_module_spec(
      module_fn, tags_and_args=list(module_fns.TAGS_AND_ARGS)
  )


class MlpTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.spec = _spec(
        module_fns.mlp(
            input_dim=4,
            units=[8, 3],
            dropout_rate=0.5,
            batch_norm=True,
            bn_momentum=0.9,
            l1=0.01,
            l2=0.01,
        )
    )

  def test_publishes_train_and_default_variants(self):
    self.assertCountEqual(
        self.spec.get_tags(), [frozenset(), frozenset({'train'})]
    )

  def test_signatures(self):
    self.assertCountEqual(
        self.spec.get_signature_names(),
        ['default', 'hparams', 'with_hparams'],
    )
    info = self.spec.get_input_info_dict()
    self.assertEqual(list(info), ['x'])
    self.assertEqual(info['x'].get_shape().as_list(), [None, 4])
    out = self.spec.get_output_info_dict()
    self.assertEqual(out['default'].get_shape().as_list(), [None, 3])
    self.assertCountEqual(
        self.spec.get_input_info_dict('with_hparams'),
        ['x', 'dropout_rate', 'bn_momentum'],
    )

  def test_train_variant_carries_regularization_and_update_ops(self):
    with tf.Graph().as_default():
      module = hub.Module(self.spec, trainable=True, tags={'train'})
      module(np.ones([2, 4], np.float32))
      losses = _v1.get_collection(_v1.GraphKeys.REGULARIZATION_LOSSES)
      updates = _v1.get_collection(_v1.GraphKeys.UPDATE_OPS)
    self.assertLen(losses, 2)  # One penalty per kernel.
    self.assertLen(updates, 4)  # Moving mean and variance of two layers.

  def test_default_variant_has_no_update_ops(self):
    with tf.Graph().as_default():
      module = hub.Module(self.spec, trainable=True)
      module(np.ones([2, 4], np.float32))
      self.assertEmpty(_v1.get_collection(_v1.GraphKeys.UPDATE_OPS))

  def test_hparams_default_and_override(self):
    with tf.Graph().as_default():
      module = hub.Module(self.spec, tags={'train'})
      hparams = module(signature='hparams', as_dict=True)
      x = np.random.RandomState(0).rand(64, 4).astype(np.float32)
      no_dropout = module(
          {'x': x, 'dropout_rate': 0.0, 'bn_momentum': 0.9},
          signature='with_hparams',
      )
      defaults = module({'x': x}, signature='with_hparams')  # May omit.
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        values = session.run(hparams)
        out, out_defaults = session.run([no_dropout, defaults])
    self.assertAllClose(values, {'dropout_rate': 0.5, 'bn_momentum': 0.9})
    self.assertEqual(out.shape, (64, 3))
    # Dropout at rate 0.5 zeroes roughly half of the outputs by default.
    self.assertGreater(np.mean(out_defaults == 0), np.mean(out == 0))

  def test_bad_arguments_name_the_gin_key(self):
    with self.assertRaisesRegex(ValueError, 'mlp.activation'):
      module_fns.mlp(input_dim=4, activation='nope')
    with self.assertRaisesRegex(ValueError, 'mlp.dropout_rate'):
      module_fns.mlp(input_dim=4, dropout_rate=1.5)
    with self.assertRaisesRegex(ValueError, 'mlp.units'):
      module_fns.mlp(input_dim=4, units=[])


class SmallCnnTest(tf.test.TestCase):

  def test_images_signature_and_output(self):
    spec = _spec(module_fns.small_cnn(filters=[4], dense_units=5))
    self.assertEqual(
        spec.get_input_info_dict()['images'].get_shape().as_list(),
        [None, 8, 8, 1],
    )
    info = spec.get_attached_message('image_module_info', hub.ImageModuleInfo)
    self.assertEqual(
        (info.default_image_size.height, info.default_image_size.width), (8, 8)
    )
    column = feature_columns.image_embedding_column('pixels', spec)
    self.assertEqual(column.variable_shape, (5,))
    with tf.Graph().as_default():
      out = hub.Module(spec)(np.zeros([3, 8, 8, 1], np.float32))
      with _v1.Session() as session:
        session.run(_v1.global_variables_initializer())
        self.assertEqual(session.run(out).shape, (3, 5))


class TextEmbeddingTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.spec = _spec(
        module_fns.text_embedding(
            vocab_file=inputs.topics_vocab_file(),
            embedding_dim=6,
            num_oov_buckets=3,
            combiner='sum',
            l2=0.1,
        )
    )

  def test_fits_text_embedding_convention(self):
    info = self.spec.get_input_info_dict()
    self.assertLen(info, 1)
    (only,) = info.values()
    self.assertEqual(only.dtype, tf.string)
    self.assertEqual(only.get_shape().as_list(), [None])
    out = self.spec.get_output_info_dict()['default']
    self.assertEqual(out.get_shape().as_list(), [None, 6])

  def test_embeds_known_oov_and_empty_sentences(self):
    with tf.Graph().as_default():
      module = hub.Module(self.spec, trainable=True, tags={'train'})
      out = module(tf.constant(['goal goal', 'GOAL', 'zzqx', '']))
      self.assertLen(_v1.get_collection(_v1.GraphKeys.REGULARIZATION_LOSSES), 1)
      with _v1.Session() as session:
        session.run(
            [_v1.global_variables_initializer(), _v1.tables_initializer()]
        )
        values = session.run(out)
    self.assertAllClose(values[0], 2 * values[1])  # sum combiner, lowercase.
    self.assertGreater(np.abs(values[2]).sum(), 0)  # OOV bucket.
    self.assertAllEqual(values[3], np.zeros(6))  # Empty sentence.

  def test_missing_vocab_file_names_the_key(self):
    with self.assertRaisesRegex(ValueError, 'text_embedding.vocab_file'):
      module_fns.text_embedding(vocab_file='/no/such/vocab.txt')

  def test_vocab_file_matches_topic_words(self):
    with open(inputs.topics_vocab_file()) as f:
      vocab = f.read().split()
    words = [w for topic in inputs.TOPIC_WORDS for w in topic]
    self.assertEqual(vocab, words + list(inputs.FILLER_WORDS))


if __name__ == '__main__':
  tf.test.main()
