"""Shared module_fns for the interop tests: one definition, built by either library.

`make_text_module_fn(lib, vocab_path, message)` returns a module_fn that uses
`lib.add_signature` / `lib.attach_message`, so the very same graph can be
exported by hub_estimator and by tensorflow_hub 0.15.
"""

import warnings

import numpy as np
import tensorflow as tf

VOCAB = ["cat", "dog", "fish", "bird", "mouse"]
NUM_OOV_BUCKETS = 1
EMBEDDING_DIM = 4
UNITS = 3
L2_SCALE = 0.01
IMAGE_SIZE = (224, 160)
TEXTS = np.array([b"dog", b"cat", b"unknown", b"mouse", b"fish", b"dog"])


def write_vocab(path):
  with tf.io.gfile.GFile(path, "w") as f:
    f.write("\n".join(VOCAB) + "\n")


def tags_and_args():
  """The two graph variants: {"train"} (batch norm in training mode) and default."""
  return [({"train"}, {"training": True}), (set(), {"training": False})]


def make_text_module_fn(lib, vocab_path, message):
  """Returns a module_fn with a vocabulary table asset, L2 dense layer and batch norm.

  Args:
    lib: `hub_estimator` or `tensorflow_hub` (for add_signature/attach_message).
    vocab_path: the vocabulary text file (one token per line).
    message: a proto to attach under "image_module_info".
  """

  def module_fn(training=False):
    text = tf.compat.v1.placeholder(tf.string, shape=[None], name="text")
    table = tf.compat.v1.lookup.StaticVocabularyTable(
        tf.lookup.TextFileInitializer(
            vocab_path,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        num_oov_buckets=NUM_OOV_BUCKETS,
    )
    ids = table.lookup(text)
    embeddings = tf.compat.v1.get_variable(
        "embeddings",
        [len(VOCAB) + NUM_OOV_BUCKETS, EMBEDDING_DIM],
        initializer=tf.compat.v1.random_normal_initializer(stddev=1.0),
    )
    embedded = tf.nn.embedding_lookup(embeddings, ids)
    with warnings.catch_warnings():
      # tf.compat.v1.layers are deprecated, but they are what TF1 Hub modules use.
      warnings.simplefilter("ignore", UserWarning)
      normalized = _dense_and_batch_norm(embedded, training)
    lib.add_signature(
        inputs={"text": text}, outputs={"default": normalized, "ids": ids}
    )
    lib.attach_message("image_module_info", message)

  return module_fn


def _dense_and_batch_norm(embedded, training):
  """A dense layer with an L2 kernel regularizer, then batch norm (UPDATE_OPS in training)."""
  dense = tf.compat.v1.layers.dense(
      embedded,
      UNITS,
      kernel_initializer=tf.compat.v1.random_normal_initializer(stddev=1.0),
      bias_initializer=tf.compat.v1.random_normal_initializer(stddev=0.1),
      kernel_regularizer=lambda w: L2_SCALE * tf.nn.l2_loss(w),
      name="dense",
  )
  normalized = tf.compat.v1.layers.batch_normalization(
      dense, training=training, momentum=0.5, name="batch_norm"
  )
  return normalized


def image_module_info(message_class):
  """An ImageModuleInfo of `message_class` (ours or tensorflow_hub's) with IMAGE_SIZE."""
  message = message_class()
  message.default_image_size.height = IMAGE_SIZE[0]
  message.default_image_size.width = IMAGE_SIZE[1]
  return message
