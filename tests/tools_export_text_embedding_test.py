"""`python -m hub_estimator.tools.export_text_embedding`: word vectors to a text-embedding module."""

import bz2
import errno
import gzip
import io
import lzma
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from unittest import mock
import zipfile

from absl.testing import parameterized
import numpy as np
import psutil
import tensorflow as tf
import tensorflow_hub as tfhub

import hub_estimator as hub
from hub_estimator.format import op_policy
from hub_estimator.tools import export_text_embedding
from hub_estimator.tools import vectors

_TOKENS = ["the", "Émile", "cat", "dog", "naïve", "bird"]
_VECTORS = np.array(
    [
        [0.5, -1.25, 3.0],
        [1.0, 0.0, -0.125],
        [2.5, 1.5, 0.75],
        [-3.0, 0.25, 1e-3],
        [0.0, 4.0, -2.0],
        [7.5, -0.5, 0.0625],
    ],
    np.float32,
)


def _text_lines(tokens, values, trailing=""):
  return "".join(
      "%s %s%s\n" % (t, " ".join(repr(float(x)) for x in v), trailing)
      for t, v in zip(tokens, values)
  )


def _binary(tokens, values, newline=True):
  data = b"%d %d\n" % values.shape
  for token, vector in zip(tokens, values):
    data += token.encode("utf-8") + b" " + vector.astype("<f4").tobytes()
    data += b"\n" if newline else b""
  return data


_CONTENTS = {
    "word2vec_text": ("6 3\n" + _text_lines(_TOKENS, _VECTORS)).encode("utf-8"),
    # fastText's .vec: a header, and a space ends every line.
    "fasttext": (
        ("6 3\n" + _text_lines(_TOKENS, _VECTORS, trailing=" ")).encode("utf-8")
    ),
    "glove": _text_lines(_TOKENS, _VECTORS).encode("utf-8"),
    # word2vec's C tool ends each vector with a newline; gensim does not.
    "word2vec_binary": _binary(_TOKENS, _VECTORS),
    "word2vec_binary_gensim": _binary(_TOKENS, _VECTORS, newline=False),
}


def _zip(name, data):
  archive = io.BytesIO()
  with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as f:
    f.writestr(name, data)
  return archive.getvalue()


def _running(pid):
  """Whether process `pid` runs (an exited one not yet reaped does not)."""
  try:
    return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
  except psutil.NoSuchProcess:
    return False


def _write_and_close(fd, data):
  with os.fdopen(fd, "wb") as f:
    f.write(data)


def _run_ours(path, sentences):
  with hub.eval_function_for_module(path) as embed:
    return embed(sentences)


def _run_tfhub(path, sentences):
  with tf.Graph().as_default():
    out = tfhub.Module(path)(tf.constant(sentences))
    with tf.compat.v1.Session() as session:
      session.run([
          tf.compat.v1.global_variables_initializer(),
          tf.compat.v1.tables_initializer(),
      ])
      return session.run(out)


def _run_hub_load(path, sentences):
  loaded = tfhub.load(path)
  return loaded.signatures["default"](default=tf.constant(sentences))[
      "default"
  ].numpy()


class ExportTextEmbeddingTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp(dir=self.get_temp_dir())

  def _write(self, name, content, compress=False):
    path = os.path.join(self.root, name)
    if isinstance(content, str):
      content = content.encode("utf-8")
    with (gzip.open if compress else open)(path, "wb") as f:
      f.write(content)
    return path

  def _export(self, path, **kwargs):
    return export_text_embedding.export_text_embedding(
        path, os.path.join(self.root, "module"), **kwargs
    )

  def _vocabulary(self, summary):
    with open(os.path.join(summary.export_path, "assets", "tokens.txt")) as f:
      return f.read().splitlines()

  def test_module_embeds_sentences_in_both_libraries(self):
    vectors_file = self._write(
        "vectors.txt", "3 2\ncat 1 0\ndog 0 2\nbird 3 4\n"
    )
    summary = self._export(vectors_file, num_oov_buckets=2)
    path = summary.export_path
    self.assertEqual(os.listdir(os.path.join(path, "assets")), ["tokens.txt"])
    self.assertEqual(op_policy.vet_module(path).findings, [])
    expected = [[3.0, 4.0], [1.0 / np.sqrt(2), 2.0 / np.sqrt(2)], [0.0, 0.0]]
    sentences = ["bird", "cat dog", "unknown"]
    self.assertAllClose(_run_ours(path, sentences), expected)
    self.assertAllClose(_run_tfhub(path, sentences), expected)
    self.assertAllClose(_run_hub_load(path, sentences), expected)
    column = hub.text_embedding_column("text", path)
    self.assertEqual(column.variable_shape.as_list(), [2])
    self.assertEqual(
        (summary.tokens, summary.dim, summary.num_oov_buckets), (3, 2, 2)
    )
    self.assertEqual(summary.matrix_bytes, 5 * 2 * 4)
    self.assertIn("3 tokens + 2 OOV buckets", str(summary))

  @parameterized.named_parameters(
      (name + ("_gzip" if compress else ""), name, compress)
      for name in _CONTENTS
      for compress in (False, True)
  )
  def test_each_format_plain_and_gzip_gives_the_vectors(self, name, compress):
    path = self._write("vectors", _CONTENTS[name], compress)
    summary = self._export(path, num_oov_buckets=1)
    detected = {
        "fasttext": "word2vec_text",
        "word2vec_binary_gensim": "word2vec_binary",
    }.get(name, name)
    self.assertEqual(summary.file_format, detected)
    self.assertEqual(summary.compressed, compress)
    self.assertEqual(self._vocabulary(summary), _TOKENS)
    embedded = _run_ours(summary.export_path, _TOKENS + ["unknown", ""])
    self.assertAllClose(embedded[:-2], _VECTORS)
    self.assertAllClose(embedded[-2:], np.zeros([2, 3]))

  def test_files_on_other_filesystems_read_through_tensorflow(self):
    # Local files are read with Python's file object; others (here
    # TensorFlow's in-memory ram:// filesystem) through tf.io.gfile.
    for name in ("glove", "word2vec_binary"):
      for compress in (False, True):
        with self.subTest(name=name, compress=compress):
          content = _CONTENTS[name]
          path = "ram://%s%s" % (name, ".gz" if compress else "")
          with tf.io.gfile.GFile(path, "wb") as f:
            f.write(gzip.compress(content) if compress else content)
          with vectors.open_vectors(path) as reader:
            chunks = list(reader.chunks())
            self.assertEqual(reader.total_bytes, tf.io.gfile.stat(path).length)
            self.assertEqual(reader.position(), reader.total_bytes)
          self.assertEqual((reader.format, reader.compressed), (name, compress))
          self.assertEqual(sum((c.tokens for c in chunks), []), _TOKENS)
          self.assertAllEqual(
              np.concatenate([c.vectors for c in chunks]), _VECTORS
          )

  def test_a_pipe_is_read_as_a_stream(self):
    # `--embedding_file=<(zcat vectors.gz)` or /dev/stdin from a pipe: no
    # seeking (it failed as "cannot write the module: File or stream is not
    # seekable"), no size.
    for name, compress, workers in [
        ("glove", False, 2),
        ("fasttext", True, 1),
        ("word2vec_binary", True, 1),
    ]:
      with self.subTest(name=name, compress=compress):
        content = _CONTENTS[name]
        read_end, write_end = os.pipe()
        writer = threading.Thread(
            target=_write_and_close,
            args=(write_end, gzip.compress(content) if compress else content),
        )
        writer.start()
        try:
          summary = export_text_embedding.export_text_embedding(
              "/dev/fd/%d" % read_end,
              os.path.join(self.root, name),
              workers=workers,
          )
        finally:
          writer.join()
          os.close(read_end)
        self.assertEqual((summary.tokens, summary.compressed), (6, compress))
        self.assertEqual(self._vocabulary(summary), _TOKENS)
        checkpoint = tf.train.load_checkpoint(
            os.path.join(summary.export_path, "variables", "variables")
        )
        self.assertAllEqual(checkpoint.get_tensor("embeddings")[:6], _VECTORS)

  @parameterized.parameters("word2vec_text", "fasttext", "glove")
  def test_a_utf8_byte_order_mark_is_not_part_of_the_first_token(self, name):
    for compress in (False, True):
      with self.subTest(compress=compress):
        path = self._write("bom", b"\xef\xbb\xbf" + _CONTENTS[name], compress)
        summary = self._export(path, num_oov_buckets=1)
        self.assertEqual(
            summary.file_format, name.replace("fasttext", "word2vec_text")
        )
        self.assertEqual(self._vocabulary(summary), _TOKENS)
        embedded = _run_ours(summary.export_path, ["the"])
        self.assertAllClose(embedded, _VECTORS[:1])
        tf.io.gfile.rmtree(summary.export_path)

  def test_format_flag_overrides_detection_and_checks_the_content(self):
    text = self._write("w2v.txt", _CONTENTS["word2vec_text"])
    summary = self._export(text, file_format="fasttext")
    self.assertEqual(self._vocabulary(summary), _TOKENS)
    cases = [
        (text, "glove", r"w2v.txt:1: '6 3' looks like a word2vec 'count dim'"),
        (text, "word2vec_binary", r"w2v.txt:2: a text line of 3 numbers"),
        (
            self._write("glove.txt", _CONTENTS["glove"]),
            "word2vec_text",
            r"glove.txt:1: expected the 'count dim' header",
        ),
        (text, "csv", r"Unknown format 'csv'"),
    ]
    for path, file_format, message in cases:
      with self.subTest(file_format):
        with self.assertRaisesRegex(vectors.VectorsFileError, message):
          export_text_embedding.export_text_embedding(
              path, os.path.join(self.root, "never"), file_format=file_format
          )
    self.assertFalse(os.path.exists(os.path.join(self.root, "never")))

  def test_a_first_line_longer_than_the_first_read_is_read_whole(self):
    # Vectors of many dimensions: the first line does not fit the bytes read
    # first (CHUNK_BYTES, made small here), so the format and GloVe's dim
    # come from the line read on to its end (it was read as word2vec_binary,
    # or as GloVe vectors of the dimension cut at the chunk's end).
    values = np.arange(2 * 40, dtype=np.float32).reshape(2, 40) / 8
    lines = _text_lines(["wide", "wider"], values)
    files = {
        "wide.txt": ("word2vec_text", "2 40\n" + lines),
        "wide.vec": (
            "word2vec_text",
            "2 40\n" + _text_lines(["wide", "wider"], values, trailing=" "),
        ),
        "wide_glove.txt": ("glove", lines),
        # A binary vector of zeros holds no line break to end a "line".
        "zeros.bin": (
            "word2vec_binary",
            _binary(["wide", "wider"], np.zeros([2, 40], np.float32), False),
        ),
    }
    with mock.patch.object(vectors, "CHUNK_BYTES", 64):
      for name, (file_format, content) in files.items():
        with self.subTest(name):
          with vectors.open_vectors(self._write(name, content)) as reader:
            self.assertEqual((reader.format, reader.dim), (file_format, 40))
            chunks = list(reader.chunks())
          self.assertEqual(
              [t for c in chunks for t in c.tokens], ["wide", "wider"]
          )
          self.assertAllEqual(
              np.concatenate([c.vectors for c in chunks]),
              values if file_format != "word2vec_binary" else 0 * values,
          )
      with mock.patch.object(vectors, "_MAX_FIRST_LINE_BYTES", 100):
        with self.assertRaisesRegex(
            vectors.VectorsFileError,
            r"wide_glove.txt:1: the first line is longer than 0 MiB; not a"
            r" word-vector file\?",
        ):
          vectors.open_vectors(os.path.join(self.root, "wide_glove.txt"))

  def test_tokens_with_spaces_take_the_last_dim_fields_as_vector(self):
    # GloVe 840B has lines such as ". . . -0.1 0.2 ..." and
    # "at name@domain.com 0.3 ...".
    path = self._write(
        "glove.txt",
        "the 1 2\n. . . 3 4\nat name@domain.com 5 6\nnaïve 7 8\n",
    )
    summary = self._export(path)
    self.assertEqual(
        self._vocabulary(summary),
        ["the", ". . .", "at name@domain.com", "naïve"],
    )
    self.assertAllClose(
        _run_ours(summary.export_path, ["the", "naïve"]), [[1, 2], [7, 8]]
    )
    with tf.Graph().as_default():
      embeddings = hub.Module(summary.export_path).variable_map["embeddings"]
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        self.assertAllClose(session.run(embeddings)[1:3], [[3, 4], [5, 6]])

  def test_extra_numeric_fields_are_an_error_not_a_token_with_spaces(self):
    path = self._write("glove.txt", "the 1 2\ncat 3 4 5\n")
    with self.assertRaisesRegex(
        vectors.VectorsFileError,
        r"glove.txt:2: token 'cat' has 3 values, expected 2 like the first",
    ):
      self._export(path)

  def test_max_vocab_size_keeps_the_first_tokens(self):
    path = self._write("w2v.bin", _CONTENTS["word2vec_binary"])
    summary = self._export(path, max_vocab_size=4, num_oov_buckets=3)
    self.assertEqual(self._vocabulary(summary), _TOKENS[:4])
    self.assertTrue(summary.stopped_at_max_vocab_size)
    self.assertEqual(summary.matrix_bytes, (4 + 3) * 3 * 4)
    embedded = _run_ours(summary.export_path, ["dog", "naïve"])
    self.assertAllClose(embedded[0], _VECTORS[3])
    self.assertAllClose(embedded[1], np.zeros(3))

  def test_a_first_line_taken_for_a_header_by_mistake_names_the_flags(self):
    # A GloVe file of 1-dim vectors whose first token is a number, and a
    # binary file whose first vector's bytes read "5\n": both start like a
    # word2vec text file, and the error says which --format reads them.
    glove = self._write("one_dim.txt", "7 3\n8 4\ncat 5\n")
    binary = self._write(
        "w2v.bin",
        b"2 3\nthe 5\n" + bytes(10) + b"\ndog " + np.ones(3, "<f4").tobytes(),
    )
    for path in (glove, binary):
      with self.subTest(path=os.path.basename(path)):
        with self.assertRaisesRegex(
            vectors.VectorsFileError,
            r":2: token '\w+' has 1 values, expected 3 \(the header's dim\)\."
            r" If line 1 is not a 'count dim' header, pass --format=glove",
        ):
          self._export(path)
    summary = self._export(glove, file_format="glove")
    self.assertEqual((summary.tokens, summary.dim), (3, 1))
    self.assertEqual(self._vocabulary(summary), ["7", "8", "cat"])
    # The flag the message names reads the binary file (it was refused as
    # "a text line of 3 numbers follows the header": the line has one).
    summary = export_text_embedding.export_text_embedding(
        binary, os.path.join(self.root, "binary"), file_format="word2vec_binary"
    )
    self.assertEqual(self._vocabulary(summary), ["the", "dog"])
    checkpoint = tf.train.load_checkpoint(
        os.path.join(summary.export_path, "variables", "variables")
    )
    self.assertAllEqual(
        checkpoint.get_tensor("embeddings")[:2],
        np.frombuffer(
            b"5\n" + bytes(10) + np.ones(3, "<f4").tobytes(), "<f4"
        ).reshape(2, 3),
    )
    # "2 1" followed by 1-dim vectors may be a header as well: still refused.
    ambiguous = self._write("ambiguous.txt", "2 1\n8 4\ncat 5\n")
    with self.assertRaisesRegex(
        vectors.VectorsFileError,
        r"ambiguous.txt:1: '2 1' looks like a word2vec 'count dim' header",
    ):
      export_text_embedding.export_text_embedding(
          ambiguous, os.path.join(self.root, "never"), file_format="glove"
      )

  def test_empty_lines_after_the_header_of_a_text_file_are_skipped(self):
    # Detection looked only at the line right after the header: an empty one
    # made the text read as word2vec_binary, and text whose values take 3
    # bytes each fits 3 float32 a line: garbage vectors, no error.
    lines = "the 0.1 0.2 0.3\nof 0.4 0.5 0.6\n"
    for empty in ("\n", "\n \r\n\n"):
      for compress in (False, True):
        with self.subTest(empty=empty, compress=compress):
          path = self._write("w2v.txt", "2 3\n" + empty + lines, compress)
          summary = export_text_embedding.export_text_embedding(
              path, os.path.join(self.root, "m%d%d" % (len(empty), compress))
          )
          self.assertEqual(summary.file_format, "word2vec_text")
          self.assertEqual(self._vocabulary(summary), ["the", "of"])
          checkpoint = tf.train.load_checkpoint(
              os.path.join(summary.export_path, "variables", "variables")
          )
          self.assertAllEqual(
              checkpoint.get_tensor("embeddings")[:2],
              np.float32([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]),
          )
    bad = self._write("bad.txt", "2 3\n\nthe 0.1 0.2 0.3\nof 0.4 0.5\n")
    with self.assertRaisesRegex(
        vectors.VectorsFileError, r"bad.txt:4: token 'of' has 2 values"
    ):
      self._export(bad)

  def test_max_vocab_size_reports_a_stop_only_with_vectors_left(self):
    # Stopping at the last vector of a chunk, the exporter must look further
    # to tell whether the file holds more (one line per chunk here).
    path = self._write("glove.txt", _CONTENTS["glove"])
    for limit, stopped in [(len(_TOKENS), False), (len(_TOKENS) - 1, True)]:
      for chunk_bytes in (8, 1 << 20):
        with self.subTest(limit=limit, chunk_bytes=chunk_bytes):
          with mock.patch.object(vectors, "CHUNK_BYTES", chunk_bytes):
            summary = export_text_embedding.export_text_embedding(
                path,
                os.path.join(self.root, "m%d_%d" % (limit, chunk_bytes)),
                max_vocab_size=limit,
            )
          self.assertEqual(summary.tokens, limit)
          self.assertEqual(summary.stopped_at_max_vocab_size, stopped)
          self.assertEqual("stopped at max_vocab_size" in str(summary), stopped)

  def test_lowercase_keeps_the_first_of_colliding_tokens(self):
    path = self._write(
        "glove.txt",
        "Apple 1 0\nthe 0 1\napple 5 5\nÉmile 2 2\nAPPLE 6 6\némile 3 3\n"
        "Zebra 4 4\n",
    )
    summary = self._export(path, lowercase=True, max_vocab_size=4)
    self.assertEqual(
        self._vocabulary(summary), ["apple", "the", "émile", "zebra"]
    )
    self.assertEqual(summary.lowercase_collisions, 3)
    self.assertIn("3 lowercase collisions dropped", str(summary))
    sentences = ["APPLE", "apple", "ÉMILE", "Zebra"]
    expected = [[1, 0], [1, 0], [2, 2], [4, 4]]
    self.assertAllClose(_run_ours(summary.export_path, sentences), expected)
    self.assertAllClose(_run_tfhub(summary.export_path, sentences), expected)

  def test_duplicates_keep_first_drops_later_ones_and_counts_them(self):
    path = self._write("dup.txt", "a 1\nb 2\na 3\nc 4\nb 5\n")
    summary = self._export(path, duplicates="keep_first", combiner="sum")
    self.assertEqual(self._vocabulary(summary), ["a", "b", "c"])
    self.assertEqual(summary.duplicates, 2)
    self.assertIn("2 duplicate tokens dropped", str(summary))
    self.assertAllClose(
        _run_ours(summary.export_path, ["a", "b", "c"]), [[1], [2], [4]]
    )

  def test_tokens_not_utf8_are_an_error_or_left_out(self):
    # fastText's Common Crawl vectors hold a few such tokens
    # (facebookresearch/fastText#715): without a way to leave them out,
    # those files could not be exported at all.
    tokens = [b"a", b"b\xba\xff", b"c", b"\xff", b"d"]
    values = np.arange(10, dtype=np.float32).reshape(5, 2)
    kept = [0, 2, 4]
    text = b"".join(
        t + b" %r %r\n" % tuple(float(x) for x in v)
        for t, v in zip(tokens, values)
    )
    binary = b"5 2\n" + b"".join(
        t + b" " + v.astype("<f4").tobytes() for t, v in zip(tokens, values)
    )
    cases = [
        ("glove.txt", text, False, r"glove.txt:2: token b'b\\xba\\xff'"),
        ("glove.txt.gz", text, True, r"glove.txt.gz:2: token b'b\\xba\\xff'"),
        ("w2v.bin", binary, False, r"w2v.bin: vector 2: token b'b\\xba\\xff'"),
    ]
    for name, content, compress, where in cases:
      for workers in (1, 2):
        with self.subTest(name=name, workers=workers):
          path = self._write(name, content, compress)
          target = os.path.join(self.root, "m%s%d" % (name, workers))
          # One line a piece: some pieces hold only left-out vectors.
          with mock.patch.object(vectors, "CHUNK_BYTES", 8):
            with self.assertRaisesRegex(
                vectors.VectorsFileError,
                where + r" is not UTF-8 text \(pass --non_utf8_tokens=skip"
                r" to leave out such vectors\)",
            ):
              export_text_embedding.export_text_embedding(
                  path, target, workers=workers
              )
            self.assertFalse(os.path.exists(target))
            summary = export_text_embedding.export_text_embedding(
                path, target, workers=workers, non_utf8_tokens="skip"
            )
          self.assertEqual(self._vocabulary(summary), ["a", "c", "d"])
          self.assertEqual(summary.non_utf8_tokens, 2)
          self.assertIn(
              "3 tokens + 10 OOV buckets, 2 tokens not UTF-8", str(summary)
          )
          checkpoint = tf.train.load_checkpoint(
              os.path.join(target, "variables", "variables")
          )
          self.assertAllEqual(
              checkpoint.get_tensor("embeddings")[:3], values[kept]
          )
    for name, content in [
        ("none.txt", b"\xff 1 2\n\xfe 3 4\n"),
        ("none.bin", b"1 2\n\xff " + values[0].tobytes()),
    ]:
      with self.subTest(name=name):
        with self.assertRaisesRegex(
            vectors.VectorsFileError,
            r"none.(txt|bin)' holds no vectors with a UTF-8 token\.",
        ):
          export_text_embedding.export_text_embedding(
              self._write(name, content),
              os.path.join(self.root, "never"),
              non_utf8_tokens="skip",
          )
    with self.assertRaisesRegex(ValueError, r"non_utf8_tokens must be one of"):
      self._export(self._write("v.txt", text), non_utf8_tokens="replace")

  def test_preprocess_and_combiner(self):
    path = self._write("glove.txt", "hello 1 0\nworld 0 3\n")
    summary = self._export(
        path, preprocess="strip_punctuation", combiner="mean"
    )
    self.assertAllClose(
        _run_ours(summary.export_path, ["hello, world!", "  hello\tworld"]),
        [[0.5, 1.5], [0.5, 1.5]],
    )

  def test_partitioned_export_loads_in_both_libraries_with_identical_lookups(
      self,
  ):
    rng = np.random.default_rng(0)
    values = rng.standard_normal([41, 4]).astype(np.float32)
    tokens = ["w%d" % i for i in range(41)]
    path = self._write("glove.txt", _text_lines(tokens, values))
    # Chunks of a few lines parsed by two processes, partitions of 9 rows
    # (45 rows in 5 parts): chunks and partitions do not line up.
    with mock.patch.object(vectors, "CHUNK_BYTES", 100):
      summary = self._export(
          path, num_oov_buckets=4, max_partition_bytes=9 * 4 * 4, workers=2
      )
    self.assertEqual(summary.partitions, 5)
    with tf.Graph().as_default():
      parts = hub.Module(summary.export_path).variable_map["embeddings"]
      self.assertEqual([p.shape.as_list() for p in parts], [[9, 4]] * 5)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        stored = np.concatenate(session.run(parts))
    self.assertAllEqual(stored, np.concatenate([values, np.zeros([4, 4])]))
    sentences = tokens + ["w3 w40 w17", "oov w8", ""]
    ours = _run_ours(summary.export_path, sentences)
    self.assertAllClose(ours[:41], values)
    self.assertAllClose(
        ours[41], (values[3] + values[40] + values[17]) / np.sqrt(3)
    )
    self.assertAllEqual(_run_tfhub(summary.export_path, sentences), ours)
    self.assertAllEqual(_run_hub_load(summary.export_path, sentences), ours)

  def test_rows_streamed_in_chunks_give_the_vectors_kept(self):
    # Chunks of a few lines, parsed by two processes: duplicates, lowercase
    # collisions and max_vocab_size drop rows across chunk and partition
    # boundaries; the module must hold exactly the rows kept, in order.
    rng = np.random.default_rng(1)
    tokens = []
    for i in range(70):
      tokens.append(
          "w%d" % (i - 3)
          if i % 5 == 3
          else ("W%d" % (i - 1) if i % 7 == 1 else "w%d" % i)
      )
    values = rng.standard_normal([len(tokens), 3]).astype(np.float32)
    path = self._write("glove.txt", _text_lines(tokens, values))
    kept, seen, lowered, duplicates = [], set(), set(), 0
    for token, vector in zip(tokens, values):
      duplicates += token in seen
      if token not in seen and token.lower() not in lowered:
        kept.append((token.lower(), vector))
        lowered.add(token.lower())
      seen.add(token)
      if len(kept) == 40:
        break
    with mock.patch.object(vectors, "CHUNK_BYTES", 64):
      summary = self._export(
          path,
          num_oov_buckets=2,
          lowercase=True,
          duplicates="keep_first",
          max_vocab_size=40,
          max_partition_bytes=11 * 3 * 4,
          workers=2,
      )
    self.assertEqual(self._vocabulary(summary), [t for t, _ in kept])
    self.assertGreater(summary.lowercase_collisions, 3)
    self.assertGreater(duplicates, 3)
    self.assertEqual(
        (summary.tokens, summary.partitions, summary.duplicates),
        (40, 4, duplicates),
    )
    with tf.Graph().as_default():
      parts = hub.Module(summary.export_path).variable_map["embeddings"]
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        stored = np.concatenate(session.run(parts))
    expected = np.concatenate([[v for _, v in kept], np.zeros([2, 3])])
    self.assertAllEqual(stored, expected)
    sentences = [t.upper() for t, _ in kept] + ["w0 w68 nothere", ""]
    ours = _run_ours(summary.export_path, sentences)
    self.assertAllClose(ours[:40], expected[:40])
    self.assertAllEqual(_run_tfhub(summary.export_path, sentences), ours)
    self.assertAllEqual(_run_hub_load(summary.export_path, sentences), ours)

  def test_bad_files_name_the_line_and_leave_nothing(self):
    target = os.path.join(self.root, "never")
    cases = {
        "ragged.txt": (
            "a 1 2\nb 3\n",
            r"ragged.txt:2: token 'b' has 1 values, expected 2",
        ),
        "dup.txt": (
            "a 1\nb 2\na 3\n",
            r"dup.txt:3: token 'a' already appeared on line 1 \(pass"
            r" --duplicates=keep_first",
        ),
        "nan.txt": (
            "a 1 2\nb 1 x\n",
            r"nan.txt:2: the vector of token 'b' is not all finite numbers",
        ),
        "inf.txt": (
            "a 1 2\nb 1 inf\n",
            r"inf.txt:2: the vector of token 'b' is not all finite numbers",
        ),
        # Two spaces in a row: not a token with spaces ("cat " would never
        # be looked up; "b 3  4" would take a shifted vector).
        "two_spaces.txt": (
            "a 1 2\ncat  3 4\n",
            r"two_spaces.txt:2: token 'cat ' starts or ends with a space \(two"
            r" spaces in a row\?\)",
        ),
        "two_spaces_inside.txt": (
            "a 1 2\nb 3  4 5 6\n",
            r"two_spaces_inside.txt:2: token 'b' has 5 values, expected 2",
        ),
        "empty.txt": ("\n", "holds no vectors"),
        "tabs.txt": (
            "a\t1\t2\nb\t3\t4\n",
            r"tabs.txt:1: 'a\\t1\\t2' is neither 'token v1 \.\.\. vdim' \(one"
            r" space between fields\) nor a word2vec 'count dim' header",
        ),
        "blank_first.txt": (
            "\na 1 2\n",
            r"blank_first.txt:1: '' is neither 'token v1 \.\.\. vdim'",
        ),
        "short.txt": (
            "3 2\na 1 2\nb 3 4\n",
            r"short.txt: the header says 3 vectors but the file holds 2",
        ),
        "long.txt": (
            "1 2\na 1 2\nb 3 4\n",
            r"long.txt: holds more vectors than the 1 of its header",
        ),
        # A bad value on the line after the header: still text (it was read
        # as binary vectors, the error naming a vector).
        "bad_after_header.txt": (
            "2 3\na 1 x 3\nb 3 4 5\n",
            r"bad_after_header.txt:2: the vector of token 'a' is not all"
            r" finite numbers",
        ),
        "header_dim.txt": (
            "2 3\na 1 2\nb 3 4\n",
            r"header_dim.txt:2: token 'a' has 2 values, expected 3 \(the"
            r" header's dim\)",
        ),
        "truncated.bin": (
            _CONTENTS["word2vec_binary"][:-7],
            r"truncated.bin: ends after 5 of the 6 vectors",
        ),
        # The header says 4 values, the vectors hold 3.
        "header_dim.bin": (
            b"10 4"
            + _binary(list("abcdefghij"), np.ones([10, 3], np.float32))[4:],
            r"header_dim.bin: vector 2: token .* If the header's dim \(4\) is"
            r" not that of the vectors, every vector after the first is read"
            r" shifted\.",
        ),
        "dup.bin": (
            _binary(["a", "b", "a"], np.ones([3, 2], np.float32)),
            r"dup.bin: vector 3: token 'a' already appeared as vector 1",
        ),
        "cr.bin": (
            _binary(["a", "b\rc", "d"], np.ones([3, 2], np.float32)),
            r"cr.bin: vector 2: token 'b\\rc' is empty or holds a line break"
            r" \(\\n or \\r\), which the module's vocabulary file",
        ),
        "lf.bin": (
            _binary(["a", "b\nc"], np.ones([2, 2], np.float32)),
            r"lf.bin: vector 2: token 'b\\nc' is empty or holds a line break",
        ),
        "cr.txt": (
            "a 1 2\nb\rc 3 4\n",
            r"cr.txt:2: token 'b\\rc' is empty or holds a line break",
        ),
        "extra.bin": (
            _CONTENTS["word2vec_binary"] + b"more",
            r"extra.bin: holds more data after the 6 vectors",
        ),
        # GloVe's files come zipped: named, with the command that reads one
        # (it was "'PK\x03\x04...' is neither 'token v1 ... vdim' ...").
        "glove.zip": (
            _zip("glove.txt", _CONTENTS["glove"]),
            r"glove.zip: is a zip archive; only gzip is read\. Pass the"
            r" vectors file inside, e\.g\. --embedding_file=<\(unzip -p"
            r" \S+glove.zip\)\.",
        ),
        "glove.txt.bz2": (
            bz2.compress(_CONTENTS["glove"]),
            r"glove.txt.bz2: is bzip2-compressed; .*=<\(bzcat \S+\)\.",
        ),
        "glove.txt.xz": (
            lzma.compress(_CONTENTS["glove"]),
            r"glove.txt.xz: is xz-compressed; .*=<\(xzcat \S+\)\.",
        ),
    }
    for name, (content, message) in cases.items():
      with self.subTest(name):
        with self.assertRaisesRegex(ValueError, message):
          export_text_embedding.export_text_embedding(
              self._write(name, content), target
          )
    with self.assertRaisesRegex(ValueError, "does not exist"):
      export_text_embedding.export_text_embedding(
          os.path.join(self.root, "no.txt"), target
      )
    self.assertFalse(os.path.exists(target))
    self.assertEqual(
        [n for n in os.listdir(self.root) if n.startswith(".export")], []
    )

  def test_a_file_that_cannot_be_read_is_named_as_such(self):
    # Not "<export_path>: cannot write the module: ...".
    target = os.path.join(self.root, "never")
    folder = os.path.join(self.root, "folder")
    os.makedirs(folder)
    with self.assertRaisesRegex(
        vectors.VectorsFileError, r"folder: cannot read: \[Errno 21\]"
    ):
      export_text_embedding.export_text_embedding(folder, target)
    path = self._write("v.txt", _CONTENTS["glove"])
    with mock.patch.object(
        vectors.os,
        "pread",
        side_effect=OSError(errno.EIO, "Input/output error"),
    ):
      with self.assertRaisesRegex(
          vectors.VectorsFileError,
          r"v.txt: cannot read: \[Errno 5\] Input/output error",
      ):
        export_text_embedding.export_text_embedding(path, target, workers=1)
    self.assertFalse(os.path.exists(target))
    self.assertEqual(
        [n for n in os.listdir(self.root) if n.startswith(".export")], []
    )

  def test_truncated_or_corrupt_gzip_is_one_error_naming_the_file(self):
    whole = gzip.compress(_CONTENTS["glove"] * 2000)
    corrupt = bytearray(whole)
    corrupt[len(whole) // 2 : len(whole) // 2 + 8] = b"\xff" * 8
    target = os.path.join(self.root, "never")
    for name, content in [
        ("cut.gz", whole[: len(whole) // 2]),
        ("corrupt.gz", bytes(corrupt)),
        ("header.gz", whole[:10] + b"\0" * 20),
    ]:
      with self.subTest(name):
        with self.assertRaisesRegex(
            vectors.VectorsFileError,
            name.replace(".", r"\.") + ": truncated or corrupt gzip data",
        ):
          export_text_embedding.export_text_embedding(
              self._write(name, content), target
          )
    self.assertFalse(os.path.exists(target))

  def test_a_failing_export_target_is_one_error_naming_it(self):
    path = self._write("v.txt", "a 1 2\n")
    target = os.path.join(self.root, "module")
    with mock.patch.object(
        export_text_embedding,
        "_write_file",
        side_effect=OSError(errno.ENOSPC, "No space left on device"),
    ):
      with self.assertRaisesRegex(
          export_text_embedding.ExportTargetError,
          r"module: cannot write the module: \[Errno 28\] No space left on"
          " device",
      ):
        export_text_embedding.export_text_embedding(path, target)
    self.assertFalse(os.path.exists(target))
    self.assertEqual(
        [n for n in os.listdir(self.root) if n.startswith(".export")], []
    )

  def test_work_folders_of_killed_runs_are_removed_live_ones_kept(self):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {
        "dead": ".export_text_embedding-%d-%s" % (dead.pid, "a" * 32),
        "live": ".export_text_embedding-%d-%s" % (os.getpid(), "b" * 32),
        "other": ".export_text_embedding-notours",
    }
    for name in names.values():
      os.makedirs(os.path.join(self.root, name, "module"))
    self._export(self._write("v.txt", "a 1 2\n"))
    self.assertEqual(
        sorted(n for n in os.listdir(self.root) if n.startswith(".")),
        sorted([names["live"], names["other"]]),
    )

  def test_bad_arguments_name_the_argument(self):
    path = self._write("v.txt", "a 1 2\n")
    cases = [
        ({"num_oov_buckets": 0}, "num_oov_buckets must be >= 1; got 0"),
        ({"combiner": "max"}, "combiner must be one of"),
        ({"preprocess": "bpe"}, "preprocess must be one of"),
        ({"max_vocab_size": 0}, "max_vocab_size must be >= 1; got 0"),
        ({"duplicates": "last"}, "duplicates must be one of"),
        ({"workers": 0}, "workers must be >= 1 or None; got 0"),
        ({"export_path": ""}, "export_path must name the module directory"),
    ]
    for kwargs, message in cases:
      with self.subTest(str(kwargs)):
        with self.assertRaisesRegex(ValueError, message):
          export_text_embedding.export_text_embedding(
              path,
              **{"export_path": os.path.join(self.root, "module"), **kwargs},
          )

  def test_whole_chunk_parsing_agrees_with_line_by_line_parsing(self):
    lines = _text_lines(_TOKENS, _VECTORS).splitlines()
    cases = {
        "regular": ("\n".join(lines), True),
        "fasttext": (" \n".join(lines) + " ", True),
        "one trailing space": ("\n".join(lines[:2] + [lines[2] + " "]), False),
        "empty line": ("\n".join(lines[:2] + [""] + lines[2:]), False),
        "token with spaces": ("\n".join(lines + ["a b 1 2 3"]), False),
        "leading space": ("\n".join(lines + [" 1 2 3"]), False),
        "windows": ("\r\n".join(lines), False),
    }
    parser = vectors._TextParser("f.txt", 3, False)
    for name, (text, regular) in cases.items():
      with self.subTest(name):
        data = text.encode("utf-8")
        self.assertEqual(parser._regular(data, 5) is not None, regular)
        try:
          with mock.patch.object(vectors._TextParser, "_regular") as fast:
            fast.return_value = None
            expected = parser((data, 5))
        except vectors.VectorsFileError as e:
          expected = e
        if isinstance(expected, Exception):
          with self.assertRaisesRegex(
              vectors.VectorsFileError, str(expected)[:20]
          ):
            parser((data, 5))
          continue
        chunk = parser((data, 5))
        self.assertEqual(chunk.tokens, expected.tokens)
        self.assertEqual(chunk.locations, expected.locations)
        self.assertAllEqual(chunk.vectors, expected.vectors)

  def test_pieces_end_at_line_breaks_found_near_their_end(self):
    # Lines shorter and longer than a piece (and than the window the exporter
    # searches for a piece's last line break), empty lines, and with or
    # without a final line break: every vector once, on its own line number,
    # however the file is cut and whoever parses it.
    rng = np.random.default_rng(3)
    lengths = [1, 40, 2, 3, 90, 1, 1, 25, 200, 2]
    lines, expected = [], []
    for i, width in enumerate(lengths):
      token = "w%d" % i + "x" * width
      lines.append("%s %d %d" % (token, i, -i))
      expected.append((token, len(lines)))
      if rng.random() < 0.3:
        lines.append("")
    for final in ("", "\n"):
      path = self._write("pieces.txt", "\n".join(lines) + final)
      for chunk_bytes, window, workers in [
          (16, 4, 1),
          (16, 4, 2),
          (64, 8, 2),
          (1 << 20, 1 << 16, 1),
      ]:
        with self.subTest(
            final=final, chunk_bytes=chunk_bytes, window=window, workers=workers
        ):
          with mock.patch.object(vectors, "CHUNK_BYTES", chunk_bytes):
            with mock.patch.object(vectors, "_LINE_BREAK_WINDOW", window):
              with vectors.open_vectors(path) as reader:
                chunks = list(reader.chunks(workers))
          got = [
              (token, location)
              for chunk in chunks
              for token, location in zip(chunk.tokens, chunk.locations)
          ]
          self.assertEqual(got, expected)
          values = np.concatenate([chunk.vectors for chunk in chunks])
          self.assertAllEqual(values, [[i, -i] for i in range(len(lengths))])

  def test_a_file_that_shrinks_while_read_is_one_error(self):
    path = self._write("v.txt", _CONTENTS["glove"])
    parser = vectors._TextParser(path, 3, False)
    size = os.path.getsize(path)
    self.assertEqual(len(parser._read(0, size)), size)
    with self.assertRaisesRegex(
        vectors.VectorsFileError,
        r"v.txt: holds 10 bytes fewer than when its reading began",
    ):
      parser((((0, size + 10)), 1))

  def test_a_file_still_being_written_is_one_error(self):
    # Read up to its size when opened, it gave the vectors written by then,
    # the last one cut inside its last value ("0.25" read as "0.2").
    for workers in (1, 2):
      with self.subTest(workers=workers):
        path = self._write("v%d.txt" % workers, "a 0.5 0.5\nb 0.5 0.2")
        with mock.patch.object(vectors, "CHUNK_BYTES", 10):
          with vectors.open_vectors(path) as reader:
            chunks = reader.chunks(workers=workers)
            self.assertEqual(next(chunks).tokens, ["a"])
            with open(path, "a") as f:
              f.write("5\nc 1 2\n")
            with self.assertRaisesRegex(
                vectors.VectorsFileError,
                r"v\d.txt: holds 27 bytes now, 19 when its reading began"
                r" \(still being written\?\)\.$",
            ):
              list(chunks)

  def test_a_file_replaced_while_read_is_one_error(self):
    # Byte ranges are read by opening the file's path again: a file renamed
    # over it gave that file's vectors from the second piece on.
    def lines(last):
      return "".join("w%d 0.%d %s\n" % (i, i, last) for i in range(10))

    path = self._write("v.txt", lines("0.1"))
    replacement = self._write("new.txt", lines("0.9"))
    with mock.patch.object(vectors, "CHUNK_BYTES", 24):
      with vectors.open_vectors(path) as reader:
        chunks = reader.chunks(workers=1)
        self.assertEqual(next(chunks).tokens, ["w0", "w1"])
        os.replace(replacement, path)
        with self.assertRaisesRegex(
            vectors.VectorsFileError,
            r"v.txt: was replaced by another file while being read\.$",
        ):
          next(chunks)

  def test_a_file_named_by_a_descriptor_is_read_by_parsing_processes(self):
    # /dev/fd/N (bash: `3< file`) names another file, or none, in a parsing
    # process started by the fork server (used here, as TensorFlow is
    # imported): it failed ("cannot read: Illegal seek", or "holds ... bytes
    # fewer than when its reading began"). A file deleted since it was opened
    # has no path: read as a stream.
    for deleted in (False, True):
      with self.subTest(deleted=deleted):
        path = self._write("v%d.txt" % deleted, _CONTENTS["glove"])
        fd = os.open(path, os.O_RDONLY)
        try:
          if deleted:
            os.remove(path)
          summary = export_text_embedding.export_text_embedding(
              "/dev/fd/%d" % fd,
              os.path.join(self.root, "m%d" % deleted),
              workers=2,
          )
        finally:
          os.close(fd)
        self.assertEqual(self._vocabulary(summary), _TOKENS)
        checkpoint = tf.train.load_checkpoint(
            os.path.join(summary.export_path, "variables", "variables")
        )
        self.assertAllEqual(checkpoint.get_tensor("embeddings")[:6], _VECTORS)

  def test_parsing_processes_name_the_bad_line_of_a_late_chunk(self):
    lines = ["w%d %d %d" % (i, i, -i) for i in range(300)]
    cases = [
        (149, "w149 1", r"bad.txt:150: token 'w149' has 1 values, expected 2"),
        (
            230,
            "w230 1 nan",
            r"bad.txt:231: the vector of token 'w230' is not all finite",
        ),
        (
            260,
            "w7 1 2",
            r"bad.txt:261: token 'w7' already appeared on line 8",
        ),
    ]
    for index, line, message in cases:
      with self.subTest(line):
        bad = list(lines)
        bad[index] = line
        path = self._write("bad.txt", "\n".join(bad) + "\n")
        target = os.path.join(self.root, "never")
        with mock.patch.object(vectors, "CHUNK_BYTES", 200):
          with self.assertRaisesRegex(vectors.VectorsFileError, message):
            export_text_embedding.export_text_embedding(path, target, workers=2)
        self.assertFalse(os.path.exists(target))
        self.assertEqual(
            [n for n in os.listdir(self.root) if n.startswith(".export")], []
        )

  def test_a_parsing_process_that_dies_is_one_error_naming_the_file(self):
    path = self._write("v.txt", _CONTENTS["glove"])
    target = os.path.join(self.root, "never")
    # In a process without TensorFlow, whose workers are forked and so
    # inherit the patch: each exits at once, as if killed.
    script = (
        "import os\n"
        "from hub_estimator.tools import export_text_embedding as e\n"
        "from hub_estimator.tools import vectors\n"
        "vectors._TextParser.__call__ = lambda self, piece: os._exit(9)\n"
        "try:\n"
        "  e.export_text_embedding(%r, %r, workers=2)\n"
        "except vectors.VectorsFileError as error:\n"
        "  print(error)\n" % (path, target)
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertRegex(
        result.stdout,
        r"v.txt: a process parsing it died \(killed, or out of memory\?\)",
    )
    self.assertFalse(os.path.exists(target))

  @parameterized.named_parameters(
      ("ctrl_c_to_the_process_group", "SIGINT", 130, ()),
      ("sigterm_to_the_process_group", "SIGTERM", 143, ()),
      ("sigkill_to_the_exporter", "SIGKILL", -9, ()),
      # With TensorFlow imported, workers come from a fork server.
      (
          "sigkill_to_the_exporter_with_lowercase",
          "SIGKILL",
          -9,
          ("--lowercase",),
      ),
  )
  def test_a_stopped_export_leaves_no_work_folder_or_parsing_process(
      self, signal_name, returncode, flags
  ):
    path = self._write(
        "v.txt", _text_lines(["w%d" % i for i in range(400)], np.ones([400, 2]))
    )
    target = os.path.join(self.root, "never")
    # Two FIFOs: each parsing process writes its pid into `started` at its
    # first chunk and holds it open until it exits (so the test sees them
    # all gone as the end of the FIFO), then waits for data in `release`.
    started = os.path.join(self.root, "started")
    release = os.path.join(self.root, "release")
    os.mkfifo(started)
    os.mkfifo(release)
    started_fd = os.open(started, os.O_RDONLY | os.O_NONBLOCK)
    self.addCleanup(os.close, started_fd)
    release_fd = os.open(release, os.O_RDWR)
    self.addCleanup(os.close, release_fd)
    # The command line, its parsing processes held at their first chunk
    # until the test has sent its signal (so the export cannot finish
    # before it, however busy the machine).
    # A script file: a fork server runs it too (as __mp_main__), so that its
    # workers are patched as well.
    script = self._write(
        "slow_export.py",
        "import os, runpy, select, signal\n"
        # As a shell's foreground job: a job started with `&` (or under
        # nohup) inherits SIGINT ignored, which Python then leaves so.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from hub_estimator.tools import vectors\n"
        "vectors.CHUNK_BYTES = 200\n"
        "parse = vectors._TextParser.__call__\n"
        "held = []\n"
        "def slow(self, piece):\n"
        "  if not held:\n"
        "    held.append(os.open(%r, os.O_WRONLY))\n"
        "    os.write(held[0], b'%%d\\n' %% os.getpid())\n"
        "  release = os.open(%r, os.O_RDONLY | os.O_NONBLOCK)\n"
        "  select.select([release], [], [], 300)\n"
        "  os.close(release)\n"
        "  return parse(self, piece)\n"
        "vectors._TextParser.__call__ = slow\n"
        "if __name__ == '__main__':\n"
        "  runpy.run_module('hub_estimator.tools.export_text_embedding',"
        " run_name='__main__')\n" % (started, release),
    )
    process = subprocess.Popen(
        [
            sys.executable,
            script,
            "--embedding_file=" + path,
            "--export_path=" + target,
            "--workers=2",
        ]
        + list(flags),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    self.assertTrue(
        select.select([started_fd], [], [], 120)[0],
        "no parsing process started within 120 s (exporter's exit code: %s)"
        % process.poll(),
    )
    signum = getattr(signal, signal_name)
    if signum == signal.SIGKILL:
      process.kill()
    else:  # As a terminal's Ctrl-C, or `timeout`: the whole group.
      os.killpg(process.pid, signum)
    # The workers finish the chunk they hold; the stopped export must still
    # stop (not go on to the end).
    os.write(release_fd, b"go")
    _, stderr = process.communicate(timeout=300)
    self.assertEqual(process.returncode, returncode, stderr)
    if signum != signal.SIGKILL:
      self.assertIn(
          "export_text_embedding: stopped by %s; nothing was written at %s."
          % (signal_name, target),
          stderr,
      )
      self.assertNotIn("Traceback", stderr)
      self.assertEqual(
          [n for n in os.listdir(self.root) if n.startswith(".export")], []
      )
    self.assertFalse(os.path.exists(target))
    # Read to the FIFO's end: every parsing process that started has exited.
    pids = b""
    while True:
      self.assertTrue(
          select.select([started_fd], [], [], 120)[0],
          "parsing processes %s still run 120 s after the export stopped"
          % pids.split(),
      )
      data = os.read(started_fd, 4096)
      if not data:
        break
      pids += data
    workers = {int(pid) for pid in pids.split()} - {process.pid}
    self.assertTrue(workers)
    self.assertFalse([pid for pid in workers if _running(pid)])

  def test_the_export_does_not_import_tensorflow(self):
    path = self._write("v.txt", _CONTENTS["word2vec_text"])
    module = os.path.join(self.root, "no_tf")
    script = (
        "import sys\n"
        "from hub_estimator.tools import export_text_embedding as e\n"
        "e.export_text_embedding(%r, %r, workers=2)\n"
        "print(sorted(m for m in sys.modules if m.startswith('tensorflow')))\n"
        % (path, module)
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEqual(result.stdout.strip(), "[]")
    self.assertAllClose(_run_ours(module, _TOKENS), _VECTORS)

  def test_export_to_another_filesystem_goes_through_tensorflow(self):
    path = self._write("v.txt", _CONTENTS["glove"])
    target = "ram://te_%s/module" % os.path.basename(self.root)
    summary = export_text_embedding.export_text_embedding(path, target)
    self.assertEqual(summary.export_path, target)
    with tf.io.gfile.GFile(target + "/assets/tokens.txt") as f:
      self.assertEqual(f.read().splitlines(), _TOKENS)
    self.assertEqual(
        sorted(tf.io.gfile.listdir(os.path.dirname(target))), ["module"]
    )
    local = os.path.join(self.root, "copy")
    for folder, _, files in tf.io.gfile.walk(target):
      into = os.path.join(local, os.path.relpath(folder, target))
      os.makedirs(into, exist_ok=True)
      for name in files:
        tf.io.gfile.copy(os.path.join(folder, name), os.path.join(into, name))
    self.assertAllClose(_run_ours(local, _TOKENS), _VECTORS)
    with self.assertRaisesRegex(ValueError, "already exists"):
      export_text_embedding.export_text_embedding(path, target)

  def test_command_line_prints_a_summary_and_refuses_an_existing_path(self):
    path = self._write("v.txt.gz", _CONTENTS["fasttext"], compress=True)
    module = os.path.join(self.root, "words")

    def run(*flags):
      return subprocess.run(
          [
              sys.executable,
              "-m",
              "hub_estimator.tools.export_text_embedding",
              "--embedding_file=" + path,
              "--export_path=" + module,
          ]
          + list(flags),
          capture_output=True,
          text=True,
          check=False,
      )

    result = run("--lowercase", "--num_oov_buckets=3")
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn("read:        word2vec_text (gzip)", result.stdout)
    self.assertIn("6 tokens + 3 OOV buckets", result.stdout)
    self.assertIn("embeddings:  float32 [9, 3]", result.stdout)
    self.assertIn("reading v.txt.gz", result.stderr)
    result = run()
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("already exists", result.stderr)


if __name__ == "__main__":
  tf.test.main()
