r"""Exports pre-trained word vectors as a fine-tunable text-embedding module.

  python -m hub_estimator.tools.export_text_embedding \
      --embedding_file=glove.840B.300d.txt --export_path=modules/glove \
      [--format=auto] [--max_vocab_size=N] [--lowercase] \
      [--num_oov_buckets=10] [--combiner=sqrtn] [--preprocess=whitespace]

Reads word2vec text or binary, GloVe and fastText `.vec` files, plain or
gzip-compressed (see `vectors.py`). The module takes a batch of sentences
(string [batch]), splits them into tokens, looks the tokens up in the
vocabulary (shipped as the asset `tokens.txt`), hashes unknown tokens into
`num_oov_buckets` extra rows (zeros) and combines the token vectors into
`default`, float32 [batch, dim]; an empty sentence embeds to zeros. It fits
`text_embedding_column` and has a `{"train"}` graph variant for fine-tuning.

Memory: the process never holds the matrix. The vectors are parsed a chunk
(1 MiB of text) at a time and their float32 rows spilled to files of 16 MiB in
the export's work folder; once all are read (and so the row count known),
each file is read back into one reused buffer, saved (SaveV2) as a slice of
the embedding tensor into a shard of its own and removed; MergeV2Checkpoints
then joins the shards (no graph constants, no TensorFlow variable holding the
matrix). Peak memory is TensorFlow's own, one chunk, one block and the token
set (about 120 bytes a token); disk holds the matrix about once beyond the
module. benchmarks/text_embedding_benchmark.py measures it. The embedding
variable is partitioned along its rows when it exceeds `max_partition_bytes`.
The module appears at `export_path` only once it is complete.
"""

import contextlib
import dataclasses
import math
import os
import re
import sys
import time
import uuid

from absl import app
from absl import flags
import numpy as np
import psutil
import tensorflow as tf
import tqdm

from hub_estimator.format import spec as spec_lib
from hub_estimator.format import writer
from hub_estimator.tools import vectors as vectors_lib

COMBINERS = ("mean", "sqrtn", "sum")
# "strip_punctuation" is the preprocessing of tensorflow/hub's example
# exporter (examples/text_embeddings/export.py): remove Unicode punctuation
# (\pP), then split on spaces.
PREPROCESSORS = ("whitespace", "strip_punctuation")
# What to do when a token appears twice in the file. GloVe 840B has such
# tokens (see maciejkula/glove-python#48), so "keep_first" exists; "error" is
# the default because a duplicate usually means a damaged or concatenated file.
DUPLICATES = ("error", "keep_first")
VARIABLE_NAME = "embeddings"
VOCABULARY_FILENAME = "tokens.txt"
DEFAULT_MAX_PARTITION_BYTES = 256 << 20
# Parsed rows are spilled to files of about this many bytes in the work
# folder; each file is later read back into one reused buffer, written to the
# checkpoint as one shard (a data file of the module) and removed.
_BLOCK_BYTES = 16 << 20
# The buffer starts at this alignment, so that feeding it to a session hands
# it to TensorFlow instead of copying it (TensorFlow copies a fed array that
# is not aligned to EIGEN_MAX_ALIGN_BYTES, at most 64).
_ALIGNMENT = 64
# The work folder next to export_path: "<prefix><pid>-<uuid hex>"; the pid
# tells a later run whether the folder's owner is gone (killed) or at work.
_WORK_PREFIX = ".export_text_embedding-"
_WORK_NAME = re.compile(r"^\.export_text_embedding-(\d+)-[0-9a-f]{32}$")
_TAGS_AND_ARGS = [({"train"}, {}), (set(), {})]


@dataclasses.dataclass
class ExportSummary:
  """What `export_text_embedding` wrote.

  Attributes:
    export_path: the module directory.
    file_format: the format read (one of vectors.FORMATS).
    compressed: whether the file was gzip-compressed.
    tokens: vocabulary size (rows before the OOV buckets).
    dim: values per vector.
    num_oov_buckets: extra rows for unknown tokens.
    partitions: partitions of the embedding variable (1: not partitioned).
    matrix_bytes: bytes of the float32 [tokens + num_oov_buckets, dim] matrix.
    lowercase_collisions: vectors dropped because their lowercased token came
      earlier in the file (with `lowercase`).
    duplicates: vectors dropped because their token came earlier in the file
      (with duplicates="keep_first").
    stopped_at_max_vocab_size: whether reading stopped at `max_vocab_size`.
    seconds: wall time of the export.
  """

  export_path: str
  file_format: str
  compressed: bool
  tokens: int
  dim: int
  num_oov_buckets: int
  partitions: int
  matrix_bytes: int
  lowercase_collisions: int
  duplicates: int
  stopped_at_max_vocab_size: bool
  seconds: float

  def __str__(self):
    return "\n".join([
        "Exported %s" % self.export_path,
        "  read:        %s%s%s"
        % (
            self.file_format,
            " (gzip)" if self.compressed else "",
            ", stopped at max_vocab_size"
            if self.stopped_at_max_vocab_size
            else "",
        ),
        "  vocabulary:  %d tokens + %d OOV buckets%s%s"
        % (
            self.tokens,
            self.num_oov_buckets,
            ", %d lowercase collisions dropped" % self.lowercase_collisions
            if self.lowercase_collisions
            else "",
            ", %d duplicate tokens dropped" % self.duplicates
            if self.duplicates
            else "",
        ),
        "  embeddings:  float32 [%d, %d], %.1f MiB in %d partition(s)"
        % (
            self.tokens + self.num_oov_buckets,
            self.dim,
            self.matrix_bytes / 2**20,
            self.partitions,
        ),
        "  time:        %.1f s" % self.seconds,
    ])


class _SpilledRows:
  """The float32 matrix's rows, spilled to files of `block_rows` rows each.

  Rows are appended in file order as they are parsed and written straight to
  files in `folder` (the export's work folder), so the process never holds
  the matrix: `blocks()` later reads them back one file at a time.
  """

  def __init__(self, folder, dim):
    self.folder = folder
    self.dim = dim
    self.block_rows = max(1, _BLOCK_BYTES // (4 * dim))
    self.files = []
    self.rows = 0
    self._out = None

  def append(self, values):
    """Appends float32 [n, dim] rows."""
    done = 0
    while done < len(values):
      offset = self.rows % self.block_rows
      if offset == 0:
        self.close()
        self.files.append(
            os.path.join(self.folder, "rows-%06d.f32" % len(self.files))
        )
        self._out = tf.io.gfile.GFile(self.files[-1], "wb")
      take = min(len(values) - done, self.block_rows - offset)
      self._out.write(
          np.ascontiguousarray(values[done : done + take], "<f4").tobytes()
      )
      done += take
      self.rows += take

  def close(self):
    """Closes the file being written; `append` opens the next one."""
    if self._out is not None:
      self._out.close()
      self._out = None

  def blocks(self):
    """Yields (first row, float32 [rows, dim]) per file, in order.

    All blocks are views of one buffer, valid until the next is asked for;
    then the file it came from is removed, so at most one block is in memory
    and (besides what the caller wrote from it) on disk.
    """
    self.close()
    buffer = _aligned_empty(self.block_rows, self.dim)
    for index, path in enumerate(self.files):
      size = _read_into(path, buffer)
      yield index * self.block_rows, buffer[: size // (4 * self.dim)]
      tf.io.gfile.remove(path)
    self.files = []


def _aligned_empty(rows, dim):
  """An uninitialized float32 [rows, dim] array starting at _ALIGNMENT."""
  raw = np.empty(rows * dim * 4 + _ALIGNMENT, np.uint8)
  start = -raw.ctypes.data % _ALIGNMENT
  return raw[start : start + rows * dim * 4].view(np.float32).reshape(rows, dim)


def _read_into(path, array):
  """Fills the start of `array` with the bytes of file `path`; their count.

  A local file is read straight into the array; another filesystem's (e.g.
  gs://, when export_path is there) through a bytes copy.
  """
  view = memoryview(array.reshape(-1)).cast("B")
  if "://" not in path:
    with open(path, "rb") as f:
      return f.readinto(view)
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  view[: len(data)] = data
  return len(data)


def export_text_embedding(
    embedding_file: str,
    export_path: str,
    num_oov_buckets: int = 10,
    combiner: str = "sqrtn",
    lowercase: bool = False,
    preprocess: str = "whitespace",
    max_vocab_size: int = None,
    file_format: str = None,
    duplicates: str = "error",
    max_partition_bytes: int = DEFAULT_MAX_PARTITION_BYTES,
    show_progress: bool = False,
) -> ExportSummary:
  """Writes a text-embedding module holding the vectors of `embedding_file`.

  Args:
    embedding_file: word vectors (formats in `vectors.py`), plain or gzip.
    export_path: the module directory to create; must not exist.
    num_oov_buckets: hash buckets for unknown tokens (>= 1), rows of zeros.
    combiner: how token vectors combine into a sentence vector: mean, sqrtn
      (sum / sqrt(token count)) or sum.
    lowercase: lowercase the vocabulary and the sentences (both with
      `tf.strings.lower(..., encoding="utf-8")`). When tokens collide once
      lowercased, the first in the file wins (vectors files are sorted by
      frequency) and the later ones are dropped and counted.
    preprocess: how sentences become tokens: "whitespace" splits on spaces,
      tabs and line breaks; "strip_punctuation" first removes Unicode
      punctuation, as tensorflow/hub's example exporter does.
    max_vocab_size: keep only the first this many tokens (after lowercase
      collisions); None keeps all.
    file_format: one of `vectors.FORMATS`; None detects it from the content.
    duplicates: a token that appears again later in the file is an error
      ("error") or is dropped, the first one kept ("keep_first").
    max_partition_bytes: the embedding variable is partitioned along its rows
      into ceil(matrix bytes / max_partition_bytes) partitions (1: none).
    show_progress: show progress bars (rate, ETA) on stderr while reading and
      writing.

  Returns:
    An ExportSummary.

  Raises:
    ValueError: for a bad argument, an existing export path, or a file that
      cannot be read (vectors.VectorsFileError, naming file and line, also
      for truncated or corrupt gzip data).
    ExportTargetError: (an OSError) when writing the module fails, e.g. on a
      read-only or full disk; names export_path and the cause.
    Nothing is left at `export_path` after an error.
  """
  started = time.monotonic()
  _check_arguments(
      num_oov_buckets,
      combiner,
      preprocess,
      max_vocab_size,
      duplicates,
      max_partition_bytes,
  )
  if tf.io.gfile.exists(export_path):
    raise ValueError("Export path %r already exists." % export_path)
  with _naming_target_errors(export_path):
    parent = os.path.dirname(export_path.rstrip("/")) or "."
    tf.io.gfile.makedirs(parent)
    _remove_abandoned_work(parent)
    work = os.path.join(
        parent, "%s%d-%s" % (_WORK_PREFIX, os.getpid(), uuid.uuid4().hex)
    )
    tf.io.gfile.makedirs(work)
    try:
      vocab_file = os.path.join(work, VOCABULARY_FILENAME)
      with vectors_lib.open_vectors(embedding_file, file_format) as reader:
        read = _read_vectors(
            reader,
            work,
            vocab_file,
            lowercase,
            max_vocab_size,
            duplicates == "keep_first",
            show_progress,
        )
      store = read.store
      rows = store.rows + num_oov_buckets
      matrix_bytes = rows * store.dim * 4
      partitions = min(
          rows, max(1, math.ceil(matrix_bytes / max_partition_bytes))
      )
      spec = spec_lib.create_module_spec(
          _make_module_fn(
              vocab_file,
              num_oov_buckets,
              [rows, store.dim],
              partitions,
              combiner,
              lowercase,
              preprocess,
          ),
          _TAGS_AND_ARGS,
      )
      staging = os.path.join(work, "module")
      writer.write_module(
          spec,
          staging,
          lambda prefix: _write_checkpoint(
              prefix, store, num_oov_buckets, show_progress
          ),
      )
      tf.io.gfile.rename(staging, export_path)
    finally:
      if tf.io.gfile.exists(work):
        tf.io.gfile.rmtree(work)
    return ExportSummary(
        export_path=export_path,
        file_format=reader.format,
        compressed=reader.compressed,
        tokens=rows - num_oov_buckets,
        dim=store.dim,
        num_oov_buckets=num_oov_buckets,
        partitions=partitions,
        matrix_bytes=matrix_bytes,
        lowercase_collisions=read.collisions,
        duplicates=read.duplicates,
        stopped_at_max_vocab_size=read.stopped,
        seconds=time.monotonic() - started,
    )


def _remove_abandoned_work(parent):
  """Removes work folders of runs whose process is gone (e.g. kill -9).

  Only folders named by this tool with a pid that no process has now; a pid
  reused by another process keeps its folder (until a later run).
  """
  for name in tf.io.gfile.listdir(parent):
    match = _WORK_NAME.match(name.rstrip("/"))
    if match and not psutil.pid_exists(int(match.group(1))):
      try:
        tf.io.gfile.rmtree(os.path.join(parent, name.rstrip("/")))
      except tf.errors.NotFoundError:
        pass  # Another run removed it first.


class ExportTargetError(OSError):
  """Writing the module failed; the message names export_path and cause."""


@contextlib.contextmanager
def _naming_target_errors(export_path):
  """Turns OSError / tf.errors.OpError into an ExportTargetError.

  Reading errors of the vectors file are VectorsFileErrors (ValueErrors);
  these come from writing next to or at export_path (read-only, disk full).
  """
  try:
    yield
  except (OSError, tf.errors.OpError) as e:
    cause = e.message if isinstance(e, tf.errors.OpError) else str(e)
    raise ExportTargetError(
        "%s: cannot write the module: %s" % (export_path, cause)
    ) from e


def _check_arguments(
    num_oov_buckets,
    combiner,
    preprocess,
    max_vocab_size,
    duplicates,
    max_partition_bytes,
):
  if num_oov_buckets < 1:
    raise ValueError("num_oov_buckets must be >= 1; got %d." % num_oov_buckets)
  if combiner not in COMBINERS:
    raise ValueError(
        "combiner must be one of %s; got %r." % (list(COMBINERS), combiner)
    )
  if preprocess not in PREPROCESSORS:
    raise ValueError(
        "preprocess must be one of %s; got %r."
        % (list(PREPROCESSORS), preprocess)
    )
  if max_vocab_size is not None and max_vocab_size < 1:
    raise ValueError("max_vocab_size must be >= 1; got %d." % max_vocab_size)
  if duplicates not in DUPLICATES:
    raise ValueError(
        "duplicates must be one of %s; got %r." % (list(DUPLICATES), duplicates)
    )
  if max_partition_bytes < 1:
    raise ValueError(
        "max_partition_bytes must be >= 1; got %d." % max_partition_bytes
    )


@dataclasses.dataclass
class _Read:
  store: _SpilledRows
  collisions: int = 0
  duplicates: int = 0
  stopped: bool = False


def _read_vectors(
    reader,
    work,
    vocab_file,
    lowercase,
    max_vocab_size,
    keep_first,
    show_progress,
):
  """Spills the vectors to files in `work`, their tokens into `vocab_file`."""
  read = _Read(_SpilledRows(work, reader.dim))
  store = read.store
  first_seen = {}  # token -> location, to report duplicates.
  kept = set()  # lowercased tokens in the vocabulary.
  lower = _Lowercaser() if lowercase else None
  limit = max_vocab_size or float("inf")
  bar = tqdm.tqdm(
      total=reader.total_bytes,
      unit="B",
      unit_scale=True,
      desc="reading %s" % os.path.basename(reader.path),
      disable=not show_progress,
      file=sys.stderr,
  )
  with contextlib.ExitStack() as stack:
    stack.enter_context(bar)
    stack.callback(store.close)
    vocab = stack.enter_context(tf.io.gfile.GFile(vocab_file, "w"))
    if lower:
      stack.callback(lower.close)
    for chunk in reader.chunks():
      keys = lower(chunk.tokens) if lower else chunk.tokens
      rows, lines = [], []
      for i, (token, key) in enumerate(zip(chunk.tokens, keys)):
        location = chunk.locations[i]
        if token in first_seen:
          if keep_first:
            read.duplicates += 1
            continue
          raise vectors_lib.VectorsFileError(
              "%s: token %r already appeared %s %d (pass"
              " --duplicates=keep_first to keep the first of each)."
              % (
                  reader.where(location),
                  token,
                  "as vector"
                  if reader.format == "word2vec_binary"
                  else "on line",
                  first_seen[token],
              )
          )
        first_seen[token] = location
        if lower:
          if key in kept:
            read.collisions += 1
            continue
          kept.add(key)
        rows.append(i)
        lines.append(key)
        if store.rows + len(rows) >= limit:
          break
      if lines:
        vocab.write("\n".join(lines) + "\n")
      values = chunk.vectors
      if len(rows) != len(values):
        values = values[rows]
      store.append(values)
      bar.update(reader.position() - bar.n)
      if store.rows >= limit:
        read.stopped = True
        break
  return read


class _Lowercaser:
  """Lowercases tokens with the op the module applies to sentences."""

  def __init__(self):
    self._graph = tf.Graph()
    with self._graph.as_default():
      self._tokens = tf.compat.v1.placeholder(tf.string, [None])
      self._lower = tf.strings.lower(self._tokens, encoding="utf-8")
    self._session = tf.compat.v1.Session(graph=self._graph)

  def close(self):
    self._session.close()

  def __call__(self, tokens):
    if not tokens:
      return []
    lowered = self._session.run(self._lower, {self._tokens: tokens})
    return [t.decode("utf-8") for t in lowered]


def _make_module_fn(
    vocab_file,
    num_oov_buckets,
    shape,
    partitions,
    combiner,
    lowercase,
    preprocess,
):
  """The module_fn: sentences string [batch] -> default float32 [batch, dim]."""

  def module_fn():
    sentences = tf.compat.v1.placeholder(tf.string, [None], name="sentences")
    text = sentences
    if lowercase:
      text = tf.strings.lower(text, encoding="utf-8")
    if preprocess == "strip_punctuation":
      text = tf.strings.regex_replace(text, r"\pP", "")
    tokens = tf.compat.v1.string_split(text, sep=" \t\n\r")
    table = tf.compat.v1.lookup.StaticVocabularyTable(
        tf.compat.v1.lookup.TextFileInitializer(
            vocab_file,
            tf.string,
            tf.compat.v1.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.compat.v1.lookup.TextFileIndex.LINE_NUMBER,
        ),
        num_oov_buckets,
    )
    ids = tf.SparseTensor(
        tokens.indices, table.lookup(tokens.values), tokens.dense_shape
    )
    embeddings = tf.compat.v1.get_variable(
        VARIABLE_NAME,
        shape,
        tf.float32,
        initializer=tf.compat.v1.zeros_initializer(),
        partitioner=tf.compat.v1.fixed_size_partitioner(partitions)
        if partitions > 1
        else None,
    )
    embedded = tf.nn.safe_embedding_lookup_sparse(
        embeddings, ids, None, combiner=combiner
    )
    spec_lib.add_signature("default", sentences, {"default": embedded})

  return module_fn


def _write_checkpoint(prefix, store, num_oov_buckets, show_progress):
  """Writes the embedding matrix at `prefix`, one shard per block of rows.

  Each block is saved (SaveV2) as a slice of the full tensor into a shard of
  its own and then freed; MergeV2Checkpoints joins the shards into the
  checkpoint `prefix`, whatever the partitioning of the graph's variable
  (restoring reads any slice out of the stored ones).
  """
  rows = store.rows + num_oov_buckets
  dim = store.dim
  shards = []
  # One thread runs the ops: each new thread would keep its own malloc arena
  # with a copy of SaveV2's write buffers.
  config = tf.compat.v1.ConfigProto(
      inter_op_parallelism_threads=1,
      intra_op_parallelism_threads=1,
      use_per_session_threads=True,
  )
  with tf.Graph().as_default(), tf.compat.v1.Session(config=config) as session:
    shard = tf.compat.v1.placeholder(tf.string, [])
    slice_spec = tf.compat.v1.placeholder(tf.string, [])
    values = tf.compat.v1.placeholder(tf.float32, [None, dim])
    save = tf.raw_ops.SaveV2(
        prefix=shard,
        tensor_names=[VARIABLE_NAME],
        shape_and_slices=tf.reshape(slice_spec, [1]),
        tensors=[values],
    )
    shard_prefixes = tf.compat.v1.placeholder(tf.string, [None])
    merge = tf.raw_ops.MergeV2Checkpoints(
        checkpoint_prefixes=shard_prefixes,
        destination_prefix=prefix,
        delete_old_dirs=True,
    )
    temp = prefix + "_temp_%s" % uuid.uuid4().hex

    def save_rows(start, block):
      shards.append(os.path.join(temp, "part-%05d" % len(shards)))
      session.run(
          save,
          {
              shard: shards[-1],
              slice_spec: "%d %d %d,%d:-" % (rows, dim, start, len(block)),
              values: block,
          },
      )

    with tqdm.tqdm(
        total=rows,
        unit=" rows",
        unit_scale=True,
        desc="writing variables",
        disable=not show_progress,
        file=sys.stderr,
    ) as bar:
      for start, block in store.blocks():
        save_rows(start, block)
        bar.update(len(block))
      save_rows(store.rows, np.zeros([num_oov_buckets, dim], np.float32))
      bar.update(num_oov_buckets)
    session.run(merge, {shard_prefixes: shards})
  if tf.io.gfile.exists(temp):
    tf.io.gfile.rmtree(temp)


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Unexpected arguments: %s" % argv[1:])
  try:
    summary = export_text_embedding(
        FLAGS.embedding_file,
        FLAGS.export_path,
        num_oov_buckets=FLAGS.num_oov_buckets,
        combiner=FLAGS.combiner,
        lowercase=FLAGS.lowercase,
        preprocess=FLAGS.preprocess,
        max_vocab_size=FLAGS.max_vocab_size,
        file_format=None if FLAGS.format == "auto" else FLAGS.format,
        duplicates=FLAGS.duplicates,
        max_partition_bytes=FLAGS.max_partition_bytes,
        show_progress=True,
    )
  except (ValueError, ExportTargetError) as e:
    sys.exit("export_text_embedding: %s" % e)
  print(summary)


if __name__ == "__main__":
  flags.DEFINE_string(
      "embedding_file",
      None,
      "Word vectors: word2vec text or binary, GloVe or fastText .vec, plain"
      " or gzip-compressed.",
  )
  flags.DEFINE_string("export_path", None, "Module directory to create.")
  flags.DEFINE_enum(
      "format",
      "auto",
      ["auto"] + list(vectors_lib.FORMATS),
      "Format of --embedding_file; auto detects it from the content.",
  )
  flags.DEFINE_integer(
      "max_vocab_size",
      None,
      "Keep only the first N tokens of the file (they are sorted by"
      " frequency).",
  )
  flags.DEFINE_bool(
      "lowercase",
      False,
      "Lowercase vocabulary and sentences; of tokens equal once lowercased,"
      " the first in the file wins.",
  )
  flags.DEFINE_integer(
      "num_oov_buckets", 10, "Hash buckets for unknown tokens."
  )
  flags.DEFINE_enum(
      "combiner",
      "sqrtn",
      list(COMBINERS),
      "How token vectors combine into a sentence vector.",
  )
  flags.DEFINE_enum(
      "preprocess",
      "whitespace",
      list(PREPROCESSORS),
      "Split sentences on whitespace, or remove punctuation first (as"
      " tensorflow/hub's example exporter).",
  )
  flags.DEFINE_enum(
      "duplicates",
      "error",
      list(DUPLICATES),
      "A token that appears again later in the file: stop with an error, or"
      " keep the first and drop the others (GloVe 840B needs this).",
  )
  flags.DEFINE_integer(
      "max_partition_bytes",
      DEFAULT_MAX_PARTITION_BYTES,
      "Partition the embedding variable into parts of at most this many bytes.",
  )
  flags.mark_flags_as_required(["embedding_file", "export_path"])
  app.run(main)
