"""Checks input data files before training; finds the record a data error is in.

TensorFlow's input ops report a bad row or record without the file it is in
("Field 1 in record is not a valid float: x"), and a TFRecord file cut inside
a record header ends quietly, as if the file were shorter. The helpers here
return a message naming the file (and the record or line) or None; the input
factories attach them to their input_fns.
"""

import csv
import dataclasses
import os
import re
import struct
from typing import Any, Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

_v1 = tf.compat.v1

# TFRecord framing (tensorflow/core/lib/io/record_writer.h): each record is
# uint64 length, uint32 masked crc32c of the length, `length` bytes of data,
# uint32 masked crc32c of the data; all little-endian.
_TFRECORD_HEADER_BYTES = 12
_TFRECORD_FOOTER_BYTES = 4


def match_files(file_pattern: str, key: str) -> List[str]:
  """The files `file_pattern` matches, sorted.

  Args:
    file_pattern: a glob (any tf.io.gfile filesystem).
    key: the gin key of the pattern, for the error.

  Raises:
    ValueError: the pattern matches no file.
  """
  files = sorted(tf.io.gfile.glob(file_pattern))
  if not files:
    raise ValueError(
        f'{key}={file_pattern!r} matches no file'
        f' (working directory {os.getcwd()}).'
    )
  return files


def _find_tfrecord_framing_error(path: str) -> Optional[str]:
  """Walks the record headers of an uncompressed TFRecord file."""
  size = tf.io.gfile.stat(path).length
  offset = count = 0
  with tf.io.gfile.GFile(path, 'rb') as f:
    while offset < size:
      f.seek(offset)
      header = f.read(_TFRECORD_HEADER_BYTES)
      if len(header) < _TFRECORD_HEADER_BYTES:
        return (
            f'{path}: truncated TFRecord file: {size - offset} stray bytes'
            f' after record {count} (at byte {offset}), too few for a'
            ' record header; the file was probably cut while being written.'
        )
      (length,) = struct.unpack('<Q', header[:8])
      end = offset + _TFRECORD_HEADER_BYTES + length + _TFRECORD_FOOTER_BYTES
      if end > size:
        return (
            f'{path}: truncated or corrupt TFRecord file: record {count + 1}'
            f' at byte {offset} claims {length} bytes, past the end of the'
            f' file ({size} bytes).'
        )
      offset, count = end, count + 1
  if count == 0:
    return f'{path}: the TFRecord file holds no record.'
  return None


def _find_csv_header_error(
    path: str, line: str, column_names: Sequence[str], field_delim: str
) -> Optional[str]:
  """A header naming csv_input.column_names in another order.

  The columns would be read under the wrong names (a feature swapped with
  another, or with the label) without any error. Other headers are not
  judged: a file may name its columns differently.
  """
  names = next(csv.reader([line.rstrip('\r\n')], delimiter=field_delim))
  names = [n.strip() for n in names]
  expected = list(column_names)
  if sorted(names) == sorted(expected) and names != expected:
    return (
        f'{path}: its header names the columns in another order than'
        ' csv_input.column_names, so columns would be read under the wrong'
        f' names: header {names}, column_names {expected}. List the columns'
        ' in file order.'
    )
  return None


def _is_number(field: str) -> bool:
  try:
    float(field)
  except ValueError:
    return False
  return True


def _find_csv_data_as_header_error(
    path: str, line: str, column_names: Sequence[str], field_delim: str
) -> Optional[str]:
  """A first line of numbers where a header is expected.

  With `header=True` the first line is skipped unread, so a file without a
  header would silently lose its first row. A line whose every field is a
  number is taken for data, unless its fields are exactly the configured
  column names (numeric column names are allowed that way).
  """
  fields = next(csv.reader([line.rstrip('\r\n')], delimiter=field_delim))
  fields = [f.strip() for f in fields]
  if fields == list(column_names) or not all(map(_is_number, fields)):
    return None
  return (
      f'{path}: line 1 ({line.strip()[:60]!r}) is all numbers, so it looks like'
      ' a data row, but csv_input.header = True would skip it as the header'
      ' and lose that row. Bind csv_input.header = False if the file has no'
      ' header (or, if its header really is numbers, list those names in'
      ' csv_input.column_names).'
  )


def _find_csv_rows_error(
    path: str,
    header: bool,
    column_names: Optional[Sequence[str]],
    field_delim: str,
) -> Optional[str]:
  with tf.io.gfile.GFile(path, 'r') as f:
    lines = [f.readline() for _ in range(2 if header else 1)]
  if header and column_names is not None and lines[0].strip():
    problem = _find_csv_header_error(path, lines[0], column_names, field_delim)
    if problem:
      return problem
    problem = _find_csv_data_as_header_error(
        path, lines[0], column_names, field_delim
    )
    if problem:
      return problem
  if not lines[-1].strip():
    what = 'no row after its header' if header else 'no row'
    return f'{path}: the CSV file has {what}.'
  return None


def find_files_error(
    file_pattern: str,
    key: str,
    kind: str,
    header: bool = False,
    compression_type: Optional[str] = None,
    column_names: Optional[Sequence[str]] = None,
    field_delim: str = ',',
) -> Optional[str]:
  """Checks that the input files exist, are readable and hold a record.

  Args:
    file_pattern: the glob of the files.
    key: the gin key of the pattern (e.g. `csv_input.file_pattern`).
    kind: `csv` or `tfrecord`.
    header: for CSV, whether each file starts with a header line.
    compression_type: for TFRecord, None or '' (the framing of every file is
      checked, which finds truncated files) or `GZIP` / `ZLIB` (only
      readability is checked: a truncated compressed file fails when read).
    column_names: for CSV with a header, the configured columns: a header
      with the same names in another order (which would read columns under
      the wrong names) is an error.
    field_delim: for CSV, the field separator.

  Returns:
    A message naming the file and what is wrong, or None.
  """
  try:
    files = match_files(file_pattern, key)
  except ValueError as e:
    return str(e)
  for path in files:
    try:
      if tf.io.gfile.isdir(path):
        return f'{key}: {path} is a folder, not a data file.'
      if tf.io.gfile.stat(path).length == 0:
        return f'{key}: {path} is empty (0 bytes).'
      if kind == 'csv':
        problem = _find_csv_rows_error(path, header, column_names, field_delim)
      elif not compression_type:
        problem = _find_tfrecord_framing_error(path)
      else:
        with tf.io.gfile.GFile(path, 'rb') as f:
          f.read(1)
        problem = None
    except (tf.errors.OpError, OSError, UnicodeDecodeError) as e:
      return f'{key}: cannot read {path}: {type(e).__name__}: {e}'
    if problem:
      return f'{key}: {problem}'
  return None


@dataclasses.dataclass(frozen=True)
class BadRecord:
  """Where re-reading the data found the first failing record.

  Attributes:
    path: the data file.
    record: how a person finds the record, e.g. `row 3 (line 4)`.
    message: what fails: TensorFlow's message, or the label check's.
    detail: a note for people (e.g. the CSV column), shown after `message`.
  """

  path: str
  record: str
  message: str
  detail: str = ''

  def __str__(self) -> str:
    return f'{self.path}, {self.record}: {self.message}{self.detail}'


def _normalized(text: str) -> str:
  return re.sub(r'\d+', '#', ' '.join(text.split()))


def explains(bad_record: Optional[BadRecord], error: Exception) -> bool:
  """Whether `bad_record` is what TensorFlow's `error` reports.

  Re-reading finds the first failing record of the files; it is the cause
  of `error` only when it fails the same way. Compared are the message's
  first clause (up to ';') with numbers ignored (positions in a batch
  differ from those in a lone record).
  """
  if bad_record is None:
    return False
  clause = _normalized(bad_record.message.split(';', 1)[0])
  return bool(clause) and clause in _normalized(error_text(error, full=True))


def error_text(error: Exception, full: bool = False) -> str:
  """TensorFlow's error message without its graph, node and op noise.

  Graph-mode errors read "Graph execution error: / Detected at node ... /
  Node: 'x' / <the message> / [[{{node x}}]] / Original stack trace ...";
  eager ones "{{function_node ...}} <the message> [Op:x]". Returns the
  message line alone (with `full`, every message line, joined).
  """
  text = getattr(error, 'message', None) or str(error)
  lines = []
  for line in text.split('Original stack trace', 1)[0].splitlines():
    line = line.strip()
    if not line or line.startswith(
        ('Graph execution error', 'Detected at node', 'File "', 'Node:')
    ):
      continue
    while line.startswith('{{function_node'):
      line = line.split('}}', 1)[-1].strip()
    line = line.split('[[', 1)[0].split(' [Op:', 1)[0].strip()
    if line:
      lines.append(line)
      if not full:
        break
  return ' '.join(lines) or type(error).__name__


# Records read per step while looking for a bad one (then one at a time
# within the failing batch).
_LOCATE_BATCH = 256


def _run_until_failure(
    make: Callable[[], tf.data.Dataset],
    check: Optional[Callable[[Any], Optional[str]]],
) -> Tuple[int, Optional[str]]:
  """(elements read before the first failing one, its message) or (n, None).

  `make` builds the dataset, in a scratch graph.
  """
  with tf.Graph().as_default():
    next_element = _v1.data.make_one_shot_iterator(make()).get_next()
    with _v1.Session() as session:
      count = 0
      while True:
        try:
          element = session.run(next_element)
        except tf.errors.OutOfRangeError:
          return count, None
        except tf.errors.OpError as e:
          return count, error_text(e)
        problem = check(element) if check else None
        if problem:
          return count, problem
        count += 1


def locate_bad_record(
    files: List[str],
    make_dataset: Callable[[str], tf.data.Dataset],
    record_name: Callable[[int], str],
    check: Optional[Callable[[Any], Optional[str]]] = None,
) -> Optional[BadRecord]:
  """Reads each file alone to find the first record that fails.

  For diagnosing an error after it happened (it reads every file up to the
  bad record, a batch at a time, then one record at a time in the failing
  batch), in scratch graphs.

  Args:
    files: the files, in order.
    make_dataset: builds the unbatched parsed dataset of one file.
    record_name: record index (1-based) -> how a person finds it, e.g.
      `row 3 (line 4)`.
    check: optional; called with each read element (numpy values, also
      with a batch of them), returns what is wrong with it (e.g. a label
      the head rejects) or None.

  Returns:
    The first failing record (TensorFlow's message, or `check`'s), or None
    if every file reads cleanly.
  """
  for path in files:
    batches, problem = _run_until_failure(
        lambda: make_dataset(path).batch(_LOCATE_BATCH), check
    )
    if problem is None:
      continue
    start = batches * _LOCATE_BATCH
    offset, problem = _run_until_failure(
        lambda: make_dataset(path).skip(start).take(_LOCATE_BATCH), check
    )
    if problem is None:
      # The batch failed as a whole only (records that do not batch):
      # read the rest of the file one record at a time.
      offset, problem = _run_until_failure(
          lambda: make_dataset(path).skip(start), check
      )
    if problem is not None:
      return BadRecord(path, record_name(start + offset + 1), problem)
  return None
