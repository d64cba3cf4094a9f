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

How: the tool does not import TensorFlow, whose import alone takes longer
than the rest of an export of 100,000 vectors. Text is parsed by `workers`
processes at once (numpy's C parser, a chunk of 1 MiB of text each); the
float32 rows go, in file order, straight into the data file of the module's
checkpoint (`format/bundle_writer`), the tokens into `assets/tokens.txt`,
and the graph (`tools/text_embedding_graph`) and protos are written as
bytes. TensorFlow is imported only with `lowercase` (the vocabulary must be
lowercased by the same op, StringLower, as the sentences) and for paths on
other filesystems (gs://...; the module is then built in a local temporary
folder and copied).

Memory: the process never holds the matrix: a few chunks in flight, the
token set (about 120 bytes a token) and the parsers' own (numpy, tens of
MB each). No graph constants; the checkpoint's CRCs are computed by reading
its data back in pieces. benchmarks/text_embedding_benchmark.py measures it.
The embedding variable is partitioned along its rows when it exceeds
`max_partition_bytes` (stored as row slices of one tensor, as TensorFlow's
Saver stores a partitioned variable). The module appears at `export_path`
only once it is complete.
"""

import contextlib
import dataclasses
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid

from absl import app
from absl import flags
import numpy as np
import psutil
import tqdm

from hub_estimator.format import bundle_writer
from hub_estimator.format import names
from hub_estimator.format import protos
from hub_estimator.tools import text_embedding_graph as graph_lib
from hub_estimator.tools import vectors as vectors_lib

COMBINERS = graph_lib.COMBINERS
# "strip_punctuation" is the preprocessing of tensorflow/hub's example
# exporter (examples/text_embeddings/export.py): remove Unicode punctuation
# (\pP), then split on spaces.
PREPROCESSORS = graph_lib.PREPROCESSORS
# What to do when a token appears twice in the file. GloVe 840B has such
# tokens (see maciejkula/glove-python#48), so "keep_first" exists; "error" is
# the default because a duplicate usually means a damaged or concatenated file.
DUPLICATES = ("error", "keep_first")
# What to do with a token whose bytes are not UTF-8 text. Some published
# vectors hold such tokens (fastText's Common Crawl vectors: see
# facebookresearch/fastText#715); no sentence given as text holds them.
NON_UTF8_TOKENS = ("error", "skip")
VARIABLE_NAME = graph_lib.VARIABLE_NAME
VOCABULARY_FILENAME = graph_lib.VOCABULARY_FILENAME
DEFAULT_MAX_PARTITION_BYTES = 256 << 20
# The work folder next to export_path: "<prefix><pid>-<uuid hex>"; the pid
# tells a later run whether the folder's owner is gone (killed) or at work.
_WORK_PREFIX = ".export_text_embedding-"
_WORK_NAME = re.compile(r"^\.export_text_embedding-(\d+)-[0-9a-f]{32}$")


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
    non_utf8_tokens: vectors dropped because their token is not UTF-8 text
      (with non_utf8_tokens="skip"); with a stop at `max_vocab_size`, among
      the vectors read, which may go up to one chunk (about 1 MiB of the
      file, `vectors.CHUNK_BYTES`) past the last vector kept.
    stopped_at_max_vocab_size: whether reading stopped at `max_vocab_size`
      with vectors left in the file (not when the file holds exactly that
      many).
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
  non_utf8_tokens: int
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
        "  vocabulary:  %d tokens + %d OOV buckets%s%s%s"
        % (
            self.tokens,
            self.num_oov_buckets,
            ", %d lowercase collisions dropped" % self.lowercase_collisions
            if self.lowercase_collisions
            else "",
            ", %d duplicate tokens dropped" % self.duplicates
            if self.duplicates
            else "",
            ", %d tokens not UTF-8 dropped" % self.non_utf8_tokens
            if self.non_utf8_tokens
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
    workers: int = None,
    non_utf8_tokens: str = "error",
) -> ExportSummary:
  """Writes a text-embedding module holding the vectors of `embedding_file`.

  Args:
    embedding_file: word vectors (formats in `vectors.py`), plain or gzip.
    export_path: the module directory to create; must not exist.
    num_oov_buckets: hash buckets for unknown tokens (>= 1), rows of zeros.
    combiner: how token vectors combine into a sentence vector: mean, sqrtn
      (sum / sqrt(token count)) or sum.
    lowercase: lowercase the vocabulary and the sentences (both with
      TensorFlow's `tf.strings.lower(..., encoding="utf-8")`, so this imports
      TensorFlow). When tokens collide once lowercased, the first in the file
      wins (vectors files are sorted by frequency) and the later ones are
      dropped and counted.
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
    show_progress: show a progress bar (bytes, rate, ETA) on stderr while
      reading.
    workers: processes parsing text at once (>= 1); None: one per CPU this
      process may use, at most vectors.MAX_DEFAULT_WORKERS (8).
    non_utf8_tokens: a token whose bytes are not UTF-8 text is an error
      ("error") or its vector is dropped and counted ("skip").

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
      workers,
      non_utf8_tokens,
  )
  if not export_path:
    raise ValueError("export_path must name the module directory to create.")
  target = _Target(export_path)
  if target.exists(export_path):
    raise ValueError("Export path %r already exists." % export_path)
  with _naming_target_errors(export_path, target.errors):
    with target.work_folder() as work:
      module = os.path.join(work, "module")
      os.makedirs(os.path.join(module, names.ASSETS_DIRNAME))
      os.makedirs(os.path.join(module, names.VARIABLES_DIRNAME))
      with contextlib.ExitStack() as stack:
        checkpoint = stack.enter_context(
            bundle_writer.BundleWriter(names.variables_prefix(module))
        )
        reader = stack.enter_context(
            vectors_lib.open_vectors(embedding_file, file_format)
        )
        read = _read_vectors(
            reader,
            checkpoint,
            os.path.join(module, names.ASSETS_DIRNAME, VOCABULARY_FILENAME),
            lowercase,
            max_vocab_size,
            duplicates == "keep_first",
            show_progress,
            workers or vectors_lib.default_workers(),
            non_utf8_tokens == "skip",
        )
        dim = reader.dim
        checkpoint.write(np.zeros([num_oov_buckets, dim], "<f4"))
        rows = read.rows + num_oov_buckets
        matrix_bytes = rows * dim * 4
        partitions = min(
            rows, max(1, math.ceil(matrix_bytes / max_partition_bytes))
        )
        _add_embeddings(checkpoint, rows, dim, partitions)
      graph = graph_lib.saved_model_bytes(
          rows=rows,
          dim=dim,
          num_oov_buckets=num_oov_buckets,
          combiner=combiner,
          lowercase=lowercase,
          preprocess=preprocess,
          partitions=partitions,
          table_shared_name="hash_table_%s" % uuid.uuid4().hex,
      )
      # As format/writer: assets and variables first, tfhub_module.pb last.
      _write_file(os.path.join(module, names.SAVED_MODEL_FILENAME), graph)
      _write_file(
          os.path.join(module, names.MODULE_DEF_FILENAME),
          protos.ModuleDef(format=protos.FORMAT_V3).SerializeToString(),
      )
      target.publish(module, export_path)
    return ExportSummary(
        export_path=export_path,
        file_format=reader.format,
        compressed=reader.compressed,
        tokens=read.rows,
        dim=dim,
        num_oov_buckets=num_oov_buckets,
        partitions=partitions,
        matrix_bytes=matrix_bytes,
        lowercase_collisions=read.collisions,
        duplicates=read.duplicates,
        non_utf8_tokens=reader.not_utf8,
        stopped_at_max_vocab_size=read.stopped,
        seconds=time.monotonic() - started,
    )


def _add_embeddings(checkpoint, rows, dim, partitions):
  """Describes the data written (rows in order) as the variable's tensor."""
  if partitions == 1:
    checkpoint.add_tensor(VARIABLE_NAME, np.float32, [rows, dim], 0)
    return
  slices, start = [], 0
  for count in graph_lib.partition_rows(rows, partitions):
    slices.append((start, count, start * dim * 4))
    start += count
  checkpoint.add_sliced_tensor(VARIABLE_NAME, np.float32, [rows, dim], slices)


def _write_file(path, data):
  with open(path, "wb") as f:
    f.write(data)


class _Target:
  """The filesystem of export_path: where the module is built and published.

  A local export_path gets its work folder beside it (so publishing is one
  rename); another filesystem's (gs://, ram://, ...) is written through
  tf.io.gfile, imported only then: the module is built in a local temporary
  folder and copied (see `publish`).
  """

  def __init__(self, export_path):
    self.remote = "://" in export_path
    self.parent = os.path.dirname(export_path.rstrip("/")) or "."
    if self.remote:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      self._gfile = tf.io.gfile
      self.errors = (OSError, tf.errors.OpError)
    else:
      self._gfile = None
      self.errors = (OSError,)

  def exists(self, path):
    return self._gfile.exists(path) if self.remote else os.path.exists(path)

  @contextlib.contextmanager
  def work_folder(self):
    """A fresh local folder to build the module in; removed on exit."""
    if self.remote:
      with tempfile.TemporaryDirectory(prefix=_WORK_PREFIX) as work:
        yield work
      return
    os.makedirs(self.parent, exist_ok=True)
    _remove_abandoned_work(self.parent)
    work = os.path.join(
        self.parent, "%s%d-%s" % (_WORK_PREFIX, os.getpid(), uuid.uuid4().hex)
    )
    os.makedirs(work)
    try:
      yield work
    finally:
      shutil.rmtree(work, ignore_errors=True)

  def publish(self, module, export_path):
    """Moves the complete module folder to export_path.

    Locally in one rename. Other filesystems may have no atomic rename of a
    folder (gs:// copies each object; ram:// loses the files), so there the
    files are copied into export_path with tfhub_module.pb last, which is
    what makes a folder a module; after a failure export_path is removed.
    """
    if not self.remote:
      os.rename(module, export_path)
      return
    gfile = self._gfile
    files = []
    try:
      for folder, _, names_in_folder in os.walk(module):
        relative = os.path.relpath(folder, module)
        gfile.makedirs(
            export_path
            if relative == "."
            else os.path.join(export_path, relative)
        )
        files.extend(
            os.path.relpath(os.path.join(folder, name), module)
            for name in names_in_folder
        )
      files.sort(key=lambda name: name == names.MODULE_DEF_FILENAME)
      for name in files:
        gfile.copy(os.path.join(module, name), os.path.join(export_path, name))
    except self.errors:
      with contextlib.suppress(self.errors):
        gfile.rmtree(export_path)
      raise


def _remove_abandoned_work(parent):
  """Removes work folders of runs whose process is gone (e.g. kill -9).

  Only folders named by this tool with a pid that no process has now; a pid
  reused by another process keeps its folder (until a later run).
  """
  for name in os.listdir(parent):
    match = _WORK_NAME.match(name)
    if match and not psutil.pid_exists(int(match.group(1))):
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


class ExportTargetError(OSError):
  """Writing the module failed; the message names export_path and cause."""


@contextlib.contextmanager
def _naming_target_errors(export_path, errors):
  """Turns `errors` (OSError, TensorFlow's for gs:// and the like) into an ExportTargetError.

  Reading errors of the vectors file are VectorsFileErrors (ValueErrors);
  these come from writing next to or at export_path (read-only, disk full).
  """
  try:
    yield
  except errors as e:
    raise ExportTargetError(
        "%s: cannot write the module: %s"
        % (export_path, getattr(e, "message", None) or e)
    ) from e


def _check_arguments(
    num_oov_buckets,
    combiner,
    preprocess,
    max_vocab_size,
    duplicates,
    max_partition_bytes,
    workers,
    non_utf8_tokens,
):
  graph_lib.check_options(num_oov_buckets, combiner, preprocess)
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
  if workers is not None and workers < 1:
    raise ValueError("workers must be >= 1 or None; got %d." % workers)
  if non_utf8_tokens not in NON_UTF8_TOKENS:
    raise ValueError(
        "non_utf8_tokens must be one of %s; got %r."
        % (list(NON_UTF8_TOKENS), non_utf8_tokens)
    )


@dataclasses.dataclass
class _Read:
  rows: int = 0
  collisions: int = 0
  duplicates: int = 0
  stopped: bool = False


def _read_vectors(
    reader,
    checkpoint,
    vocab_file,
    lowercase,
    max_vocab_size,
    keep_first,
    show_progress,
    workers,
    skip_not_utf8,
):
  """Writes the vectors' rows to `checkpoint`, their tokens to `vocab_file`."""
  read = _Read()
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
    vocab = stack.enter_context(
        open(vocab_file, "w", encoding="utf-8", newline="\n")
    )
    if lower:
      stack.callback(lower.close)
    chunks = stack.enter_context(
        contextlib.closing(reader.chunks(workers, skip_not_utf8))
    )
    for chunk in chunks:
      if not lower and read.rows + len(chunk.tokens) < limit:
        new = dict(zip(chunk.tokens, chunk.locations))
        if len(new) == len(chunk.tokens) and first_seen.keys().isdisjoint(new):
          # The common case, all kept: the same as the loop below, in C.
          first_seen.update(new)
          vocab.write("\n".join(chunk.tokens) + "\n")
          checkpoint.write(np.ascontiguousarray(chunk.vectors, "<f4"))
          read.rows += len(chunk.tokens)
          bar.update(reader.position() - bar.n)
          continue
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
        if read.rows + len(rows) >= limit:
          break
      if lines:
        vocab.write("\n".join(lines) + "\n")
      values = chunk.vectors
      if len(rows) != len(values):
        values = values[rows]
      checkpoint.write(np.ascontiguousarray(values, "<f4"))
      read.rows += len(rows)
      bar.update(reader.position() - bar.n)
      if read.rows >= limit:
        read.stopped = rows[-1] < len(chunk.tokens) - 1 or _more(chunks)
        break
  return read


def _more(chunks):
  """Whether `chunks` holds another chunk (reads it to tell).

  The rest of a file read only up to max_vocab_size is not checked: one
  that fails to read further holds more too.
  """
  try:
    next(chunks)
  except StopIteration:
    return False
  except vectors_lib.VectorsFileError:
    return True
  return True


class _Lowercaser:
  """Lowercases tokens with the op the module applies to sentences.

  TensorFlow's StringLower (ICU's full case mapping), not Python's
  `str.lower`: the two differ for some characters, and a vocabulary
  lowercased otherwise than the sentences would silently miss tokens. So
  `lowercase` imports TensorFlow.
  """

  def __init__(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

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


FLAGS = flags.FLAGS


class _Terminated(BaseException):
  """SIGTERM arrived: unwinds like Ctrl-C, removing the work folder."""


def _raise_terminated(unused_signum, unused_frame):
  raise _Terminated()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Unexpected arguments: %s" % argv[1:])
  signal.signal(signal.SIGTERM, _raise_terminated)
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
        workers=FLAGS.workers,
        non_utf8_tokens=FLAGS.non_utf8_tokens,
    )
  except (ValueError, ExportTargetError) as e:
    sys.exit("export_text_embedding: %s" % e)
  except (KeyboardInterrupt, _Terminated) as e:
    # Exit codes as a shell reports a process killed by the signal.
    signum = (
        signal.SIGINT if isinstance(e, KeyboardInterrupt) else signal.SIGTERM
    )
    print(
        "export_text_embedding: stopped by %s; %s."
        % (
            signal.Signals(signum).name,
            "the module at %s is complete" % FLAGS.export_path
            if os.path.exists(FLAGS.export_path)
            else "nothing was written at %s" % FLAGS.export_path,
        ),
        file=sys.stderr,
    )
    sys.exit(128 + signum)
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
  flags.DEFINE_enum(
      "non_utf8_tokens",
      "error",
      list(NON_UTF8_TOKENS),
      "A token whose bytes are not UTF-8 text: stop with an error, or drop"
      " its vector (some of fastText's Common Crawl vectors need this).",
  )
  flags.DEFINE_integer(
      "max_partition_bytes",
      DEFAULT_MAX_PARTITION_BYTES,
      "Partition the embedding variable into parts of at most this many bytes.",
  )
  flags.DEFINE_integer(
      "workers",
      None,
      "Processes parsing text vectors at once; default: one per CPU, at"
      " most 8.",
      lower_bound=1,
  )
  flags.mark_flags_as_required(["embedding_file", "export_path"])
  app.run(main)
