r"""Exports pre-trained word vectors (word2vec / GloVe text format) as a text-embedding module.

  python -m hub_estimator.tools.export_text_embedding \
      --embedding_file=vectors.txt --export_path=modules/words [--num_oov_buckets=10]

The module takes a batch of sentences (string [batch]), splits them on spaces,
looks tokens up in the vocabulary (shipped as an asset), hashes unknown tokens
into `num_oov_buckets` extra rows (initialized to zero) and combines the token
vectors; it fits `text_embedding_column` and can be fine-tuned. The vectors are
assigned through a feed, not stored as graph constants, so large vocabularies
stay clear of the 2 GB graph limit. The module appears at `export_path` only
once it is complete.
"""

import os
import sys
import tempfile
import uuid

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from hub_estimator.format import module as module_lib
from hub_estimator.format import spec as spec_lib
from hub_estimator.models import module_fns


def read_embedding_file(path):
  """Reads a text embedding file: one `token v1 ... vd` line per token.

  A first line of exactly two integers (word2vec's "count dim" header) is
  skipped.

  Returns:
    (tokens, vectors): the tokens in file order and a float32 [n, d] array.

  Raises:
    ValueError: naming the file and line of a malformed or duplicate entry.
  """
  if not tf.io.gfile.exists(path):
    raise ValueError("Embedding file %r does not exist." % path)
  tokens, rows, seen = [], [], {}
  with tf.io.gfile.GFile(path) as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.rstrip("\n").rstrip(" ").split(" ")
      if (
          line_number == 1
          and len(fields) == 2
          and all(x.isdigit() for x in fields)
      ):
        continue
      if not line.strip():
        continue
      token, values = fields[0], fields[1:]
      if rows and len(values) != len(rows[0]):
        raise ValueError(
            "%s:%d: token %r has %d values, expected %d like the lines before."
            % (path, line_number, token, len(values), len(rows[0]))
        )
      if not values:
        raise ValueError(
            "%s:%d: token %r has no vector." % (path, line_number, token)
        )
      if token in seen:
        raise ValueError(
            "%s:%d: token %r already appeared on line %d."
            % (path, line_number, token, seen[token])
        )
      try:
        rows.append([float(v) for v in values])
      except ValueError:
        raise ValueError(
            "%s:%d: the vector of token %r is not all numbers."
            % (path, line_number, token)
        ) from None
      seen[token] = line_number
      tokens.append(token)
  if not tokens:
    raise ValueError("Embedding file %r holds no vectors." % path)
  return tokens, np.asarray(rows, dtype=np.float32)


def export_text_embedding(
    embedding_file,
    export_path,
    num_oov_buckets=10,
    combiner="sqrtn",
    lowercase=False,
):
  """Writes a text-embedding module holding the vectors of `embedding_file`.

  Args:
    embedding_file: word vectors in text format.
    export_path: the module directory to create; must not exist.
    num_oov_buckets: hash buckets for unknown tokens (>= 1).
    combiner: how token vectors combine into a sentence vector: mean, sqrtn, sum.
    lowercase: lowercase sentences before the lookup (use it only if the
      vocabulary is lowercase).

  Returns:
    The export path.

  Raises:
    ValueError: for a malformed embedding file or an existing export path.
  """
  if tf.io.gfile.exists(export_path):
    raise ValueError("Export path %r already exists." % export_path)
  tokens, vectors = read_embedding_file(embedding_file)
  parent = os.path.dirname(export_path.rstrip("/")) or "."
  staging = os.path.join(parent, ".staging-%s" % uuid.uuid4().hex)
  with tempfile.TemporaryDirectory() as scratch:
    vocab_file = os.path.join(scratch, "tokens.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
      f.writelines(token + "\n" for token in tokens)
    module_fn = module_fns.text_embedding(
        vocab_file=vocab_file,
        embedding_dim=vectors.shape[1],
        num_oov_buckets=num_oov_buckets,
        combiner=combiner,
        lowercase=lowercase,
    )
    spec = spec_lib.create_module_spec(
        module_fn, list(module_fns.TAGS_AND_ARGS)
    )
    try:
      with tf.Graph().as_default():
        module = module_lib.Module(spec)
        values = np.concatenate(
            [vectors, np.zeros([num_oov_buckets, vectors.shape[1]], np.float32)]
        )
        feed = tf.compat.v1.placeholder(tf.float32, values.shape)
        assign = module.variable_map["embeddings"].assign(feed)
        with tf.compat.v1.Session() as session:
          session.run(tf.compat.v1.global_variables_initializer())
          session.run(assign, feed_dict={feed: values})
          module.export(staging, session)
      tf.io.gfile.rename(staging, export_path)
    finally:
      if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
  return export_path


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Unexpected arguments: %s" % argv[1:])
  try:
    path = export_text_embedding(
        FLAGS.embedding_file,
        FLAGS.export_path,
        FLAGS.num_oov_buckets,
        FLAGS.combiner,
        FLAGS.lowercase,
    )
  except ValueError as e:
    sys.exit("export_text_embedding: %s" % e)
  print("Exported %s" % path)


if __name__ == "__main__":
  flags.DEFINE_string("embedding_file", None, "Word vectors in text format.")
  flags.DEFINE_string("export_path", None, "Module directory to create.")
  flags.DEFINE_integer(
      "num_oov_buckets", 10, "Hash buckets for unknown tokens."
  )
  flags.DEFINE_enum(
      "combiner",
      "sqrtn",
      ["mean", "sqrtn", "sum"],
      "How token vectors combine into a sentence vector.",
  )
  flags.DEFINE_bool(
      "lowercase", False, "Lowercase sentences before the lookup."
  )
  flags.mark_flags_as_required(["embedding_file", "export_path"])
  app.run(main)
