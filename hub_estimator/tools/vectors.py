"""Streaming reader of word-vector files: word2vec, GloVe and fastText formats.

Formats (each may be gzip-compressed; a file starting with the gzip magic
bytes 1f 8b is decompressed on the fly):

- `word2vec_text` (and `fasttext`, the same layout: fastText's `.vec`): a
  header line `count dim`, then one `token v1 ... vdim` line per vector.
- `word2vec_binary`: the header line, then per vector the token's UTF-8 bytes,
  one space and `dim` little-endian float32 values (4 * dim bytes), optionally
  followed by a newline, as word2vec's C tool and gensim write it.
- `glove`: no header; `dim` is the number of values on the first line.

A leading UTF-8 byte order mark is skipped. Text lines are single-space
separated. A line with more fields than
`dim + 1` holds a token with spaces in it (GloVe 840B has a few, such as
". . ."): its vector is the last `dim` fields, its token everything before. The
numbers are parsed by numpy's C text parser (`np.loadtxt`) a chunk of lines at
a time, so memory beyond the caller's storage is about one chunk.
"""

import collections
from concurrent import futures
import contextlib
import ctypes
import dataclasses
import gzip
import io
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import zlib
from typing import Iterator, List, Optional, Tuple

import numpy as np
import psutil

FORMATS = ("word2vec_text", "fasttext", "word2vec_binary", "glove")

# Bytes of (decompressed) input handled per chunk; a chunk's lines, their
# parsed values and the text they came from are the reader's own memory
# (1 MiB: a few MiB in all, and no slower to parse than larger chunks).
CHUNK_BYTES = 1 << 20

_GZIP_MAGIC = b"\x1f\x8b"
# A UTF-8 byte order mark, which some editors put at the start of a text file;
# it is not part of the first token (or header).
_UTF8_BOM = b"\xef\xbb\xbf"
# Containers and compressions of other tools, by their magic bytes (the
# formats' specifications): not read, but named, with a command that unpacks
# them to a pipe (GloVe's files come as zip archives).
_OTHER_COMPRESSION = [
    (re.compile(rb"PK\x03\x04"), "a zip archive", "unzip -p"),
    # "BZh", the block size, then the first block's magic (or the end's).
    (
        re.compile(rb"BZh[1-9](1AY&SY|\x17\x72\x45\x38\x50\x90)"),
        "bzip2-compressed",
        "bzcat",
    ),
    (re.compile(rb"\xfd7zXZ\x00"), "xz-compressed", "xzcat"),
    (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd-compressed", "zstdcat"),
]
_HEADER = re.compile(rb"^\s*(\d+)[ \t]+(\d+)\s*$")
# The first line is read whole to detect the format (and GloVe's dim); one
# longer than this (millions of values) is refused rather than held.
_MAX_FIRST_LINE_BYTES = 1 << 28
# Bytes of text a value takes at most in a text line, to bound the search for
# the end of the line after a header: further on, the file is binary.
_MAX_TEXT_VALUE_BYTES = 64
_TRAILING = b" \t\r"
# Bytes read at a time around a piece's end to find the line break there.
_LINE_BREAK_WINDOW = 1 << 16
_SPACE = ord(" ")
_NEWLINE = ord("\n")


class VectorsFileError(ValueError):
  """A word-vector file that cannot be read; the message names file and line."""


class _NotUtf8Error(VectorsFileError):
  """A token whose bytes are not UTF-8 text."""


class _PieceError(VectorsFileError):
  """A piece of a text file that does not parse; lines numbered from 1."""


@dataclasses.dataclass
class Chunk:
  """Consecutive vectors of a file.

  Attributes:
    tokens: the tokens, in file order.
    vectors: float32 [len(tokens), dim], finite values.
    locations: per token, its 1-based line (text formats) or vector number
      (word2vec_binary), for `VectorsReader.where`.
    lines: text formats: the lines of the file the chunk spans, including
      empty ones; 0 for word2vec_binary.
    not_utf8: vectors left out because their token is not UTF-8 text (with
      `skip_not_utf8`).
  """

  tokens: List[str]
  vectors: np.ndarray
  locations: List[int]
  lines: int = 0
  not_utf8: int = 0


class VectorsReader:
  """Reads one word-vector file chunk by chunk; use `open_vectors`.

  Attributes:
    path: the file.
    format: one of FORMATS (`fasttext` reads as `word2vec_text`).
    compressed: whether the file is gzip-compressed.
    dim: number of values per vector.
    count: the vector count of the header; None for GloVe.
    total_bytes: size of the file on disk, in bytes; None for a pipe
      (`<(zcat ...)`, /dev/stdin from a pipe), which is read as a stream.
    not_utf8: vectors left out so far because their token is not UTF-8 text
      (`chunks(skip_not_utf8=True)`).
  """

  def __init__(self, path, file_format=None):
    self._remote = "://" in path
    exists, size, open_file, self._read_errors = _filesystem(self._remote)
    if not exists(path):
      raise VectorsFileError("Embedding file %r does not exist." % path)
    if file_format is not None and file_format not in FORMATS:
      raise VectorsFileError(
          "Unknown format %r for %s; expected one of %s."
          % (file_format, path, ", ".join(FORMATS))
      )
    self.path = path
    # Bytes handed out as ranges (`_range_pieces`), which this reader's file
    # object does not see; None while it reads them itself.
    self._consumed = None
    # Bytes read from the (decompressed) stream: the position in a pipe.
    self._streamed = 0
    self.not_utf8 = 0
    # A folder, a file without read permission, an I/O error: one error
    # naming the file (not taken for a failure to write the module).
    with _naming_read_errors(path, self._read_errors):
      self.total_bytes = size(path)
      self._raw = open_file(path)
    with contextlib.ExitStack() as close_on_error:
      close_on_error.callback(self._raw.close)
      with _naming_read_errors(path, self._read_errors):
        self._seekable = self._raw.seekable()
        if self._seekable:
          self.compressed = self._raw.read(2) == _GZIP_MAGIC
          self._raw.seek(0)
        else:
          self.total_bytes = None
          self.compressed = self._raw.peek(2)[:2] == _GZIP_MAGIC
      close_on_error.pop_all()
    self._stream = (
        gzip.GzipFile(fileobj=self._raw, mode="rb")
        if self.compressed
        else self._raw
    )
    self._buffer = b""
    self._eof = False
    # Closes the file if reading its header fails; kept open on success.
    with contextlib.ExitStack() as close_on_error:
      close_on_error.callback(self.close)
      self._fill(CHUNK_BYTES)
      for magic, kind, command in _OTHER_COMPRESSION:
        if magic.match(self._buffer):
          raise VectorsFileError(
              "%s: is %s; only gzip is read. Pass the vectors file inside,"
              " e.g. --embedding_file=<(%s %s)." % (path, kind, command, path)
          )
      if self._buffer.startswith(_UTF8_BOM):
        self._buffer = self._buffer[len(_UTF8_BOM) :]
      if not self._buffer.strip():
        raise VectorsFileError("Embedding file %r holds no vectors." % path)
      self.format, self.dim, self.count = self._detect(file_format)
      if self.dim < 1:
        raise VectorsFileError(
            "%s: vectors of dimension %d." % (path, self.dim)
        )
      if self.count == 0:
        raise VectorsFileError("Embedding file %r holds no vectors." % path)
      close_on_error.pop_all()

  def close(self):
    self._stream.close()
    self._raw.close()

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc):
    self.close()

  def position(self):
    """Bytes of the file consumed so far (compressed bytes for gzip, except
    from a pipe: the bytes read from it, decompressed)."""
    if self._consumed is not None:
      return self._consumed
    if not self._seekable:
      return self._streamed
    return self._raw.tell()

  def where(self, location):
    """Names a location of `Chunk.locations` for messages: 'path:line'."""
    if self.format == "word2vec_binary":
      return "%s: vector %d" % (self.path, location)
    return "%s:%d" % (self.path, location)

  def chunks(
      self, workers: int = 1, skip_not_utf8: bool = False
  ) -> Iterator[Chunk]:
    """Yields the vectors in file order, about CHUNK_BYTES of input at a time.

    Stop iterating early to read only the first vectors.

    Args:
      workers: processes that parse text chunks at once (numpy's parser
        holds the GIL, so threads would not overlap); 1 parses in this
        process. At most 2 * workers chunks are read ahead of the caller.
        word2vec_binary is always read here (its values need no parsing).
      skip_not_utf8: leave out the vectors whose token is not UTF-8 text
        (counted in `not_utf8`) instead of raising; such bytes are in some
        published vectors (fastText's Common Crawl ones), and no sentence
        given as text holds them.

    Raises:
      VectorsFileError: naming file and line (or vector number) of a token
        with the wrong number of values, values that are not finite numbers,
        a token that is empty, holds a line break ("\\n" or "\\r") or is not
        UTF-8, a file whose vector count differs from its header, or
        truncated or corrupt gzip data.
    """
    if self.format == "word2vec_binary":
      return self._binary_chunks(skip_not_utf8)
    return self._text_chunks(workers, skip_not_utf8)

  # ------------------------------------------------------------ internals --

  def _fill(self, size):
    """Reads until the buffer holds `size` bytes or the input ends."""
    parts = [self._buffer]
    have = len(self._buffer)
    while have < size and not self._eof:
      try:
        data = self._stream.read(max(size - have, CHUNK_BYTES))
      except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise VectorsFileError(
            "%s: truncated or corrupt gzip data (%s)."
            % (self.path, e or type(e).__name__)
        ) from e
      except self._read_errors as e:
        raise _read_error(self.path, e) from e
      if not data:
        self._eof = True
        break
      parts.append(data)
      have += len(data)
      self._streamed += len(data)
    self._buffer = b"".join(parts)

  def _first_line(self, limit, start=0):
    """(line of the buffer at `start`, index of its "\\n" or -1).

    Reads on until the line ends, the input ends or the buffer holds `limit`
    bytes (the line is then cut there, and the index -1).
    """
    while True:
      end = self._buffer.find(b"\n", start)
      if end >= 0 or self._eof or len(self._buffer) >= limit:
        break
      self._fill(min(max(2 * len(self._buffer), CHUNK_BYTES), limit))
    return self._buffer[start : end if end >= 0 else len(self._buffer)], end

  def _detect(self, file_format):
    first, end = self._first_line(_MAX_FIRST_LINE_BYTES)
    if end < 0 and not self._eof:
      raise VectorsFileError(
          "%s:1: the first line is longer than %d MiB; not a word-vector file?"
          % (self.path, _MAX_FIRST_LINE_BYTES >> 20)
      )
    header = _HEADER.match(first)
    if file_format == "glove" or (file_format is None and not header):
      if header and not (
          int(header.group(2)) != 1 and self._one_dim_follows(end)
      ):
        raise VectorsFileError(
            "%s:1: %r looks like a word2vec 'count dim' header, which GloVe"
            " files do not have; pass --format=word2vec_text (or"
            " word2vec_binary)." % (self.path, first.decode("latin-1"))
        )
      fields = first.rstrip(_TRAILING).split(b" ")
      if len(fields) < 2:
        # An empty first line, a token alone, values separated by tabs.
        raise VectorsFileError(
            "%s:1: %r is neither 'token v1 ... vdim' (one space between"
            " fields) nor a word2vec 'count dim' header."
            % (self.path, _show(first))
        )
      self._line = 0
      return "glove", len(fields) - 1, None
    if not header:
      raise VectorsFileError(
          "%s:1: expected the 'count dim' header of the %s format; found %r."
          % (self.path, file_format, first[:80].decode("latin-1"))
      )
    count, dim = int(header.group(1)), int(header.group(2))
    self._buffer = self._buffer[end + 1 :] if end >= 0 else b""
    self._line = 1
    fields, line = self._line_after_header(dim)
    # Of the last `dim` fields (fewer on a short line), any a number: text
    # (a file of binary vectors, whose first bytes rarely read so, that does
    # then fails on the line with a hint to pass --format=word2vec_binary);
    # not all of them, so that a text file with a bad value there is read as
    # text, the error naming its line.
    values = fields[-min(dim, len(fields) - 1) :] if len(fields) > 1 else []
    if file_format is None:
      text = any(_all_numbers([value]) for value in values)
      file_format = "word2vec_text" if text else "word2vec_binary"
    elif (
        file_format == "word2vec_binary"
        and len(values) == dim
        and _all_numbers(values)
    ):
      # A whole text vector: only this is refused, so that binary vectors
      # whose first bytes look like text read with --format=word2vec_binary.
      raise VectorsFileError(
          "%s:%d: a text line of %d numbers follows the header, not binary"
          " vectors; pass --format=word2vec_text." % (self.path, line, dim)
      )
    return file_format, dim, count

  def _one_dim_follows(self, end):
    """Whether the line after the first (ending at `end`) is `token value`,
    or there is none: a first line `count dim` of two integers, dim > 1, is
    then the first vector of a GloVe file of 1-dim vectors, not a word2vec
    header (with dim 1 it could be either, and is refused)."""
    rest = self._buffer[end + 1 :] if end >= 0 else b""
    second = rest.split(b"\n", 1)[0].rstrip(_TRAILING)
    return not rest.strip() or len(second.split(b" ")) == 2

  def _line_after_header(self, dim):
    """(fields split at spaces, 1-based line number) of the line after the
    header; no fields if it does not end within the bytes a text line of
    `dim` values may take (binary vectors).

    Empty lines before it are skipped, as the text parser skips them: binary
    vectors start right after the header (word2vec's C tool and gensim write
    no empty line there), and text read as binary is garbage that can fit
    the header ("2 3", an empty line, then lines of three 3-byte values: 12
    bytes, as 3 float32).
    """
    limit = dim * _MAX_TEXT_VALUE_BYTES + CHUNK_BYTES
    start = 0
    number = 2
    while True:
      line, end = self._first_line(start + limit, start)
      if end < 0 or line.rstrip(_TRAILING):
        break
      start = end + 1
      number += 1
    if end < 0 and not self._eof:
      return [], number
    return line.rstrip(_TRAILING).split(b" "), number

  def _text_pieces(self):
    """Yields text: whole lines, about CHUNK_BYTES of them at a time."""
    while True:
      self._fill(CHUNK_BYTES)
      if not self._buffer:
        return
      cut = self._buffer.rfind(b"\n")
      if cut < 0 and not self._eof:
        self._fill(2 * len(self._buffer))
        continue
      if cut < 0 or (self._eof and cut < len(self._buffer) - 1):
        cut = len(self._buffer)
      piece = self._buffer[:cut]
      self._buffer = self._buffer[cut + 1 :]
      yield piece

  def _range_pieces(self):
    """Yields (start, end): byte ranges of whole lines, about CHUNK_BYTES each.

    For a local uncompressed file, whose pieces the parsing processes read
    themselves (os.pread), so this process reads only near each piece's end,
    to find the line break there, instead of passing the text to them.
    """
    start = self._raw.tell() - len(self._buffer)
    self._buffer = b""
    self._consumed = start
    size = self.total_bytes
    if start < size and self._pread(size - 1, 1) == b"\n":
      # The file's last line break ends the last line; kept in the last
      # piece it would make an empty line, which sends it the line-by-line
      # way.
      size -= 1
    while start < size:
      end = start + CHUNK_BYTES
      if end < size:
        end = self._line_break(start, end, size)
      yield start, min(end, size)
      start = end + 1
      self._consumed = min(start, self.total_bytes)

  def _line_break(self, start, end, size):
    """Offset of the last "\n" in [start, end), else of the first after it.

    Reads back from `end` in windows of _LINE_BREAK_WINDOW bytes, then (a
    line longer than the piece) forward; `size` if the file has none.
    """
    high = end
    while high > start:
      low = max(start, high - _LINE_BREAK_WINDOW)
      cut = self._pread(low, high - low).rfind(b"\n")
      if cut >= 0:
        return low + cut
      high = low
    high = end
    while high < size:
      data = self._pread(high, _LINE_BREAK_WINDOW)
      if not data:
        break  # The file shrank: the parser reports a short read.
      cut = data.find(b"\n")
      if cut >= 0:
        return high + cut
      high += len(data)
    return size

  def _reopenable(self):
    """(path, (st_dev, st_ino)) by which a parsing process opens the file
    this reader has open, or None if no path names it now.

    `path` itself may not: /dev/stdin or /dev/fd/N name another file (or
    none) in a parsing process, which does not share this process's file
    descriptors; the file may have been deleted, or replaced by another
    (renamed over it). Its resolved path is checked here to name the open
    file, and the identity again by each parsing process (a file replaced
    later is an error, not another file's vectors).
    """
    real = os.path.realpath(self.path)
    with _naming_read_errors(self.path, (OSError,)):
      opened = os.fstat(self._raw.fileno())
    try:
      found = os.stat(real)
    except OSError:
      return None
    identity = (opened.st_dev, opened.st_ino)
    if (found.st_dev, found.st_ino) != identity:
      return None
    return real, identity

  def _pread(self, offset, size):
    with _naming_read_errors(self.path, (OSError,)):
      return os.pread(self._raw.fileno(), size, offset)

  def _text_chunks(self, workers, skip_not_utf8):
    local = not (self.compressed or self._remote) and self._seekable
    source = self._reopenable() if local else None
    parse = _TextParser(
        self.path,
        self.dim,
        self.count is not None,
        *(source or (None, None)),
        skip_not_utf8=skip_not_utf8,
    )
    pieces = self._range_pieces() if source else self._text_pieces()
    # Parsing processes number each piece's lines from 1 (no process reads
    # the lines before it); renumbered here, where the pieces come in order.
    handed_out = collections.deque()

    def handing_out():
      for piece in pieces:
        handed_out.append(piece)
        yield piece

    line = self._line  # Lines before the piece: the header, if any.
    read = 0
    chunks = _ordered_map(parse.from_line_1, handing_out(), workers, self.path)
    while True:
      try:
        chunk = next(chunks)
      except StopIteration:
        break
      except _PieceError:
        # The error's line is the piece's own: parsed again here with the
        # file's line numbers, the piece raises it naming the file's line.
        parse((handed_out[0], line + 1))
        raise  # The piece parses now: it changed while being read.
      handed_out.popleft()
      if line:
        chunk.locations = [line + location for location in chunk.locations]
      line += chunk.lines
      read += len(chunk.tokens) + chunk.not_utf8
      self.not_utf8 += chunk.not_utf8
      if self.count is not None and read > self.count:
        raise VectorsFileError(
            "%s: holds more vectors than the %d of its header (line %d is"
            " vector %d)." % (self.path, self.count, chunk.locations[-1], read)
        )
      if chunk.tokens:
        yield chunk
    if source:
      # Byte ranges end at the size the file had when opened: one still
      # being written (a download, a decompression) would give the vectors
      # written by then, its last line maybe cut inside a number.
      with _naming_read_errors(self.path, (OSError,)):
        size = os.fstat(self._raw.fileno()).st_size
      if size != self.total_bytes:
        raise VectorsFileError(
            "%s: holds %d bytes now, %d when its reading began (still being"
            " written?)." % (self.path, size, self.total_bytes)
        )
    if read == self.not_utf8:
      raise VectorsFileError(
          "Embedding file %r holds no vectors%s."
          % (self.path, " with a UTF-8 token" if read else "")
      )
    if self.count is not None and read != self.count:
      raise VectorsFileError(
          "%s: the header says %d vectors but the file holds %d (truncated?)."
          % (self.path, self.count, read)
      )

  def _token(self, raw, location):
    token = raw.lstrip(b"\n") if self.format == "word2vec_binary" else raw
    try:
      return _decode_token(token, raw, self.where(location))
    except VectorsFileError as e:
      if self.format != "word2vec_binary" or location < 2:
        raise
      # A header whose dim is not the vectors' makes every token after the
      # first start inside a vector: binary bytes, not a word.
      raise type(e)(
          "%s If the header's dim (%d) is not that of the vectors, every"
          " vector after the first is read shifted." % (e, self.dim)
      ) from None

  def _binary_chunks(self, skip_not_utf8):
    width = 4 * self.dim
    read = 0
    while read < self.count:
      self._fill(CHUNK_BYTES)
      buffer = memoryview(self._buffer)
      tokens, locations, pieces = [], [], []
      pos = 0
      while read < self.count:
        space = self._buffer.find(b" ", pos)
        if space < 0 or space + 1 + width > len(self._buffer):
          break
        read += 1
        raw, piece = self._buffer[pos:space], (space + 1, space + 1 + width)
        pos = space + 1 + width
        try:
          tokens.append(self._token(raw, read))
        except _NotUtf8Error:
          if not skip_not_utf8:
            raise
          self.not_utf8 += 1
          continue
        locations.append(read)
        pieces.append(buffer[piece[0] : piece[1]])
      if not tokens and pos:
        # All left out (not UTF-8): on to the next vectors.
        del buffer
        self._buffer = self._buffer[pos:]
        continue
      if not tokens:
        if self._eof:
          raise VectorsFileError(
              "%s: ends after %d of the %d vectors of its header (truncated?)."
              % (self.path, read, self.count)
          )
        self._fill(2 * len(self._buffer) + width + 1)
        continue
      vectors = (
          np.frombuffer(b"".join(pieces), dtype="<f4")
          .reshape(len(tokens), self.dim)
          .astype(np.float32, copy=False)
      )
      del pieces, buffer
      self._buffer = self._buffer[pos:]
      bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
      if bad.size:
        raise VectorsFileError(
            "%s: the vector of token %r is not all finite numbers."
            % (self.where(locations[bad[0]]), tokens[bad[0]])
        )
      yield Chunk(tokens, vectors, locations)
    if self.not_utf8 == self.count:
      raise VectorsFileError(
          "Embedding file %r holds no vectors with a UTF-8 token." % self.path
      )
    while True:
      if self._buffer.strip():
        raise VectorsFileError(
            "%s: holds more data after the %d vectors of its header."
            % (self.path, self.count)
        )
      self._buffer = b""
      if self._eof:
        break
      self._fill(CHUNK_BYTES)


def open_vectors(path: str, file_format: Optional[str] = None) -> VectorsReader:
  """Opens a word-vector file, detecting its format from the content.

  Args:
    path: the file (local, or any `tf.io.gfile` filesystem such as gs://),
      plain or gzip-compressed.
    file_format: one of FORMATS to skip detection; None detects: a first line
      of two integers is a word2vec header, followed by text lines
      (`word2vec_text`) or by binary vectors (`word2vec_binary`); any other
      first line starts a GloVe file.

  Returns:
    A VectorsReader (a context manager); its `chunks()` yields the vectors.

  Raises:
    VectorsFileError: if the file does not exist, the format is unknown, or
      the file's start does not fit the format.
  """
  return VectorsReader(path, file_format)


def _loadtxt(rows, dim):
  """float32 [n, dim]: fields 1..dim of each line of `rows`.

  Args:
    rows: a list of lines (bytes), or a binary file object; its bytes are
      read as Latin-1 (the fields parsed are ASCII numbers; the token field
      is skipped, so it may hold any UTF-8).
    dim: values per line.

  Raises:
    ValueError: a line with fewer fields or a field that is not a number.
  """
  return np.loadtxt(
      rows,
      encoding="latin-1",
      dtype=np.float32,
      delimiter=" ",
      comments=None,
      quotechar=None,
      usecols=range(1, dim + 1),
      ndmin=2,
  )


def _parses(row, dim):
  try:
    _loadtxt([row], dim)
  except ValueError:
    return False
  return True


def _all_numbers(fields):
  try:
    [float(x) for x in fields]
  except ValueError:
    return False
  return True


def _show(raw):
  return raw[:80].decode("utf-8", errors="replace")


# Two integers on line 1 read as a word2vec header, and line 2 read as
# text, may be neither: the first vector of a GloVe file of 1-dim vectors
# ("7 3": token "7"), or a binary file whose first bytes happen to look so.
_NOT_A_HEADER = (
    " If line 1 is not a 'count dim' header, pass --format=glove (a GloVe"
    " file of 1-dim vectors) or --format=word2vec_binary."
)


@dataclasses.dataclass(frozen=True)
class _TextParser:
  """Parses whole lines of a text vectors file into a Chunk (picklable).

  Attributes:
    path: the file, for messages.
    dim: values per vector.
    has_header: whether the file has a `count dim` header (for messages).
    source: the path that byte ranges are read from (`path` resolved);
      None: `path`.
    identity: (st_dev, st_ino) the file opened at `source` must have (it
      was replaced while being read otherwise); None: not checked.
    skip_not_utf8: leave out (and count) lines whose token is not UTF-8
      text, instead of raising.
  """

  path: str
  dim: int
  has_header: bool
  source: Optional[str] = None
  identity: Optional[Tuple[int, int]] = None
  skip_not_utf8: bool = False

  def from_line_1(self, data):
    """The Chunk of text or (start, end) of `path`, lines numbered from 1.

    Raises:
      _PieceError: the piece does not parse; its message numbers its lines
        from 1.
    """
    try:
      return self((data, 1))
    except VectorsFileError as e:
      raise _PieceError(str(e)) from None

  def __call__(self, piece):
    """Parses (text, first line) or ((start, end) of `path`, first line)."""
    data, first_line = piece
    if isinstance(data, tuple):
      data = self._read(*data)
    regular = self._regular(data, first_line)
    if regular is not None:
      return regular
    dim = self.dim
    tokens, locations, rows = [], [], []
    not_utf8 = 0
    lines = data.split(b"\n")
    for offset, line in enumerate(lines):
      line = line.rstrip(_TRAILING)
      if not line:
        continue
      location = first_line + offset
      spaces = line.count(b" ")
      if spaces == dim:
        token = line[: line.index(b" ")]
      else:
        token = line.rsplit(b" ", dim)[0] if spaces > dim else b""
        if token.startswith(b" ") or token.endswith(b" "):
          # "cat  0.1 0.2" (two spaces) would make the token "cat ", which no
          # sentence holds: "cat" would silently have no vector.
          raise VectorsFileError(
              "%s:%d: token %r starts or ends with a space (two spaces in a"
              " row?); the fields of a line are separated by one space."
              % (self.path, location, _show(token))
          )
        extra = [field for field in token.split(b" ")[1:] if field]
        if spaces < dim or _all_numbers(extra):
          # Too few fields, or extra ones that are numbers (between spaces,
          # maybe two in a row): not a token with spaces but a vector of the
          # wrong size.
          raise VectorsFileError(
              "%s:%d: token %r has %d values, expected %d%s."
              % (
                  self.path,
                  location,
                  _show(line.split(b" ", 1)[0]),
                  spaces,
                  dim,
                  " (the header's dim)"
                  if self.has_header
                  else " like the first line",
              )
              + (_NOT_A_HEADER if self.has_header and location == 2 else "")
          )
        # The parser reads fields 1..dim of each row: keep one field before.
        line = b"_" + line[len(token) :]
      try:
        text = _decode_token(token, token, "%s:%d" % (self.path, location))
      except _NotUtf8Error:
        if not self.skip_not_utf8:
          raise
        not_utf8 += 1
        continue
      tokens.append(text)
      locations.append(location)
      rows.append(line)
    values = self._values(rows, tokens, locations)
    return Chunk(tokens, values, locations, len(lines), not_utf8)

  def _read(self, start, end):
    with _naming_read_errors(self.path, (OSError,)):
      with open(self.source or self.path, "rb") as f:
        opened = os.fstat(f.fileno())
        if self.identity and (opened.st_dev, opened.st_ino) != self.identity:
          raise VectorsFileError(
              "%s: was replaced by another file while being read." % self.path
          )
        data = os.pread(f.fileno(), end - start, start)
    if len(data) != end - start:
      raise VectorsFileError(
          "%s: holds %d bytes fewer than when its reading began (changed"
          " while being read?)." % (self.path, end - start - len(data))
      )
    return data

  def _regular(self, data, first_line):
    """The Chunk of `data` when every line is `token v1 ... vdim`, else None.

    The common case, done with whole-chunk operations: the spaces counted by
    numpy, one UTF-8 decode for all tokens, one parser call over the whole
    text. Every line may instead end with one space (fastText's `.vec`). The
    parser fails on a line with fewer than dim values (or an empty one
    between two spaces), so with dim spaces per line (dim + 1 with the
    trailing one) no line can have more either; it skips empty lines, which
    the row count then shows. Anything else (tokens with spaces, other
    blanks, bad values or tokens) goes the line-by-line way, which names what
    is wrong.
    """
    if b"\r" in data or b"\t" in data:
      return None
    text = np.frombuffer(data, np.uint8)
    starts = [0]
    starts += (np.flatnonzero(text == _NEWLINE) + 1).tolist()
    count = len(starts)
    spaces = self.dim
    if data.endswith(b" "):
      # Each line must end with the space: one before each line break (" \n"
      # cannot overlap itself, so the count is that of such line breaks).
      if data.count(b" \n") != count - 1:
        return None
      spaces += 1
    if np.count_nonzero(text == _SPACE) != spaces * count:
      return None
    # Each token runs from its line's start to the line's first space; a line
    # without one, or starting with one, is not `token v1 ... vdim`.
    ends = starts[1:] + [len(data) + 1]
    token_ends = [
        data.find(b" ", start, end - 1) for start, end in zip(starts, ends)
    ]
    if (np.asarray(token_ends) <= np.asarray(starts)).any():
      return None
    try:
      raw = b"\n".join(
          [data[start:end] for start, end in zip(starts, token_ends)]
      )
      tokens = raw.decode("utf-8").split("\n")
      vectors = _loadtxt(io.BytesIO(data), self.dim)
    except ValueError:  # Also not UTF-8.
      return None
    if vectors.shape != (count, self.dim):
      return None
    if not np.isfinite(vectors).all():
      return None
    locations = list(range(first_line, first_line + count))
    return Chunk(tokens, vectors, locations, count)

  def _values(self, rows, tokens, locations):
    """float32 [len(rows), dim] from rows of `token v1 ... vdim`."""
    if not rows:
      return np.zeros([0, self.dim], np.float32)
    try:
      vectors = _loadtxt(rows, self.dim)
    except ValueError:
      vectors = None
    if vectors is not None and vectors.shape == (len(rows), self.dim):
      bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
      if not bad.size:
        return vectors
      first_bad = int(bad[0])
    else:
      first_bad = next(
          (i for i, row in enumerate(rows) if not _parses(row, self.dim)), 0
      )
    raise VectorsFileError(
        "%s:%d: the vector of token %r is not all finite numbers."
        % (self.path, locations[first_bad], tokens[first_bad])
    )


def _read_error(path, error):
  """The VectorsFileError for an error reading `path` (OSError, OpError)."""
  return VectorsFileError(
      "%s: cannot read: %s" % (path, getattr(error, "message", None) or error)
  )


@contextlib.contextmanager
def _naming_read_errors(path, errors):
  """Raises errors of type `errors` inside as a VectorsFileError naming path."""
  try:
    yield
  except errors as e:
    raise _read_error(path, e) from e


def _decode_token(token, raw, place):
  """The token as str; VectorsFileError naming `place` if it cannot be one."""
  # The vocabulary file holds one token a line, and TensorFlow's line reader
  # splits lines at "\n" and drops a "\r" before it: a token with either
  # would not come back as itself.
  if not token or b"\n" in token or b"\r" in token:
    raise VectorsFileError(
        "%s: token %r is empty or holds a line break (\\n or \\r), which"
        " the module's vocabulary file (one token a line) cannot hold."
        % (place, _show(token or raw))
    )
  try:
    return token.decode("utf-8")
  except UnicodeDecodeError:
    raise _NotUtf8Error(
        "%s: token %r is not UTF-8 text (pass --non_utf8_tokens=skip to"
        " leave out such vectors)." % (place, token)
    ) from None


def _ordered_map(function, items, workers, path):
  """Yields function(item) for each item, in order, over `workers` processes.

  With workers <= 1 it runs here. Otherwise at most 2 * workers items are
  in flight, so a large input is never all read ahead. An exception of
  `function` is raised here (re-raised from its worker) for its item, and
  the items after it are dropped, as when the caller stops early. A worker
  that dies (killed, out of memory) is a VectorsFileError naming `path`.
  Workers ignore SIGINT (Ctrl-C reaches the whole foreground process group;
  this process gets KeyboardInterrupt and shuts them down) and exit on their
  own when this process dies (see `_start_worker`).
  """
  if workers <= 1:
    yield from map(function, items)
    return
  # fork starts a worker in milliseconds, but forking a process that runs
  # TensorFlow's threads (a caller that imported it) is unsafe: then each
  # worker is forked from a fresh server process instead.
  context = multiprocessing.get_context(
      "forkserver" if "tensorflow" in sys.modules else "fork"
  )
  with futures.ProcessPoolExecutor(
      workers,
      mp_context=context,
      initializer=_start_worker,
      initargs=(os.getpid(),),
  ) as pool:
    pending = collections.deque()
    try:
      for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= 2 * workers:
          yield pending.popleft().result()
      while pending:
        yield pending.popleft().result()
    except futures.BrokenExecutor as e:
      raise VectorsFileError(
          "%s: a process parsing it died (killed, or out of memory?): %s;"
          " --workers=1 parses in the exporting process." % (path, e)
      ) from e
    finally:
      for future in pending:
        future.cancel()


# Seconds between a worker's checks that the process it works for is alive.
_ORPHAN_CHECK_SECONDS = 1.0


# glibc's mallopt parameters (<malloc.h>) and the largest mmap threshold it
# accepts on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX: 32 MiB).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MALLOC_HEAP_BYTES = 32 << 20


def _keep_freed_memory():
  """Has malloc keep freed blocks below 32 MiB in the heap, for reuse.

  numpy's parser allocates and frees several MiB a chunk. glibc's malloc
  maps a block above its threshold (128 KiB at first) afresh and unmaps it
  when freed, so each chunk's pages were faulted in anew: about 65,000
  page faults per parsing process on 286 MB of text, against 1,900 with
  this. Free memory kept at the heap's top is at most 64 MiB (the trim
  threshold) per process. Does nothing where malloc is not glibc's.
  """
  mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
  if mallopt is not None:
    mallopt(_M_MMAP_THRESHOLD, _MALLOC_HEAP_BYTES)
    mallopt(_M_TRIM_THRESHOLD, 2 * _MALLOC_HEAP_BYTES)


def _start_worker(owner):
  """Prepares a parsing process (runs in it, before its first item).

  A Ctrl-C at a terminal sends SIGINT to every process of the foreground
  group: a worker interrupted inside the pool's queues can leave them locked,
  and the exporting process then waits for it forever, so workers ignore it.
  A worker whose exporting process dies (SIGKILL: no shutdown) would wait
  for work forever, holding its memory (and, under the fork server, keeping
  that alive too); a daemon thread ends it once its parent has changed or
  `owner` (the exporting process's pid) is gone.

  Args:
    owner: pid of the exporting process.
  """
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  # Not the exporting process's handler (fork copies it): die as told.
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  _keep_freed_memory()
  parent = os.getppid()
  try:
    exporter = psutil.Process(owner)
  except psutil.NoSuchProcess:
    os._exit(1)  # pylint: disable=protected-access

  def running():
    try:
      # is_running also checks the start time: a reused pid is not it.
      return exporter.is_running() and exporter.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
      return False

  def exit_when_orphaned():
    while os.getppid() == parent and running():
      time.sleep(_ORPHAN_CHECK_SECONDS)
    os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=exit_when_orphaned, daemon=True).start()


# Default parsing processes at most: each holds its own numpy (tens of MB),
# and the CPUs this process may run on can be far more than a container's
# CPU quota lets it use.
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
  """Parsing processes for this machine: the CPUs this process may run on,
  at most MAX_DEFAULT_WORKERS (pass `workers` for more)."""
  return min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS)


def _filesystem(remote):
  """(exists, size, open for reading, read errors) for local or remote paths.

  A local path is read with Python's own file object (TensorFlow's costs about
  2 ms of CPU per MiB more, and importing TensorFlow takes seconds); another
  filesystem's (gs://, ram://, ...) through tf.io.gfile, imported only then.
  """
  if not remote:
    return (
        os.path.exists,
        os.path.getsize,
        lambda path: open(path, "rb"),
        (OSError,),
    )
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  return (
      tf.io.gfile.exists,
      lambda path: tf.io.gfile.stat(path).length,
      lambda path: tf.io.gfile.GFile(path, "rb"),
      (OSError, tf.errors.OpError),
  )
