"""Writes TensorFlow V2 checkpoints (tensor bundles) without importing TensorFlow.

A V2 checkpoint with prefix `P` is two files (TensorFlow's
`core/util/tensor_bundle/tensor_bundle.{h,cc}`):

- `P.data-00000-of-00001`: the tensors' bytes, back to back, little-endian,
  row-major, no padding (TensorFlow's default data alignment is 1 byte).
- `P.index`: a LevelDB-style sorted table (`tsl/lib/io/table_builder.cc`,
  `block_builder.cc`, `format.cc`) from key to serialized message: the key ""
  holds a `BundleHeaderProto`, every other key a `BundleEntryProto` (dtype,
  shape, byte range in the data file, masked CRC32C of those bytes). A tensor
  saved in slices (a partitioned variable) has one entry under its name with
  the full shape and the list of slices, and one entry per slice under the
  key `checkpoint::EncodeTensorNameSlice` makes (`saved_tensor_slice_util.cc`,
  with `strings::OrderedCode`).

`BundleWriter` writes both so that they are byte-identical to what
`tf.raw_ops.SaveV2` writes for the same tensors added in the same order.
"""

import contextlib
import dataclasses
import math
import operator
import os
import re
import struct
import sys
import uuid

import google_crc32c
import numpy as np

from hub_estimator.format import protos

# Versioning of the tensor bundle format (tensor_bundle.cc:
# kTensorBundleVersion, kTensorBundleMinConsumer).
_BUNDLE_VERSION = 1
_BUNDLE_MIN_CONSUMER = 0

# Bytes read back at a time to checksum the data file in `close()`.
_CRC_CHUNK_BYTES = 16 << 20

# numpy dtype -> TensorFlow DataType (types.proto) of the dtypes written.
_DATA_TYPES = {
    np.dtype(np.float16): protos.DATA_TYPES["DT_HALF"],
    np.dtype(np.float32): protos.DATA_TYPES["DT_FLOAT"],
    np.dtype(np.float64): protos.DATA_TYPES["DT_DOUBLE"],
    np.dtype(np.int8): protos.DATA_TYPES["DT_INT8"],
    np.dtype(np.int16): protos.DATA_TYPES["DT_INT16"],
    np.dtype(np.int32): protos.DATA_TYPES["DT_INT32"],
    np.dtype(np.int64): protos.DATA_TYPES["DT_INT64"],
    np.dtype(np.uint8): protos.DATA_TYPES["DT_UINT8"],
    np.dtype(np.uint16): protos.DATA_TYPES["DT_UINT16"],
    np.dtype(np.uint32): protos.DATA_TYPES["DT_UINT32"],
    np.dtype(np.uint64): protos.DATA_TYPES["DT_UINT64"],
    np.dtype(np.bool_): protos.DATA_TYPES["DT_BOOL"],
    np.dtype(np.complex64): protos.DATA_TYPES["DT_COMPLEX64"],
    np.dtype(np.complex128): protos.DATA_TYPES["DT_COMPLEX128"],
}


def data_filename(prefix: str) -> str:
  """The data file of a one-shard checkpoint (tensor_bundle.cc DataFilename)."""
  return f"{prefix}.data-00000-of-00001"


def index_filename(prefix: str) -> str:
  """The index file of a checkpoint (tensor_bundle.cc MetaFilename)."""
  return f"{prefix}.index"


def masked_crc32c(crc: int) -> int:
  """Masks a CRC32C as TensorFlow stores it (`crc32c::Mask`, tsl crc32c.h).

  Args:
    crc: an unmasked CRC32C, 0 <= crc < 2**32.

  Returns:
    The rotated right by 15 bits value plus 0xa282ead8, modulo 2**32.
  """
  rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
  return (rotated + 0xA282EAD8) & 0xFFFFFFFF


# --- The index: a LevelDB-style table (tsl/lib/io) ------------------------


def _varint(value: int) -> bytes:
  """Little-endian base-128 varint (tsl coding.h PutVarint32/PutVarint64)."""
  out = bytearray()
  while value >= 0x80:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


class _BlockBuilder:
  """One block of prefix-compressed keys and their values (block_builder.cc).

  Each entry is varint(shared key bytes), varint(unshared key bytes),
  varint(value bytes), the unshared key bytes, the value. Every
  `restart_interval` entries the key is stored whole (a restart point); the
  block ends with the restart offsets and their count, each a fixed32.
  """

  def __init__(self, restart_interval: int):
    self._restart_interval = restart_interval
    self.reset()

  def reset(self):
    self._buffer = bytearray()
    self._restarts = [0]
    self._counter = 0
    self._last_key = b""

  def empty(self) -> bool:
    return not self._buffer

  def size_estimate(self) -> int:
    return len(self._buffer) + 4 * len(self._restarts) + 4

  def add(self, key: bytes, value: bytes):
    shared = 0
    if self._counter < self._restart_interval:
      limit = min(len(key), len(self._last_key))
      while shared < limit and key[shared] == self._last_key[shared]:
        shared += 1
    else:
      self._restarts.append(len(self._buffer))
      self._counter = 0
    self._buffer += _varint(shared)
    self._buffer += _varint(len(key) - shared)
    self._buffer += _varint(len(value))
    self._buffer += key[shared:]
    self._buffer += value
    self._last_key = key
    self._counter += 1

  def finish(self) -> bytes:
    restarts = struct.pack(f"<{len(self._restarts)}I", *self._restarts)
    return (
        bytes(self._buffer) + restarts + struct.pack("<I", len(self._restarts))
    )


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
  """A short key k with start <= k < limit (table_builder.cc)."""
  min_length = min(len(start), len(limit))
  diff = 0
  while diff < min_length and start[diff] == limit[diff]:
    diff += 1
  if diff < min_length:
    byte = start[diff]
    if byte < 0xFF and byte + 1 < limit[diff]:
      return start[:diff] + bytes([byte + 1])
  return start


def _short_successor(key: bytes) -> bytes:
  """A short key k >= key (table_builder.cc FindShortSuccessor)."""
  for i, byte in enumerate(key):
    if byte != 0xFF:
      return key[:i] + bytes([byte + 1])
  return key


class _TableBuilder:
  """Builds an uncompressed LevelDB-style table in memory (table_builder.cc).

  Layout: data blocks (each cut once its size estimate reaches `block_size`),
  an empty metaindex block, an index block (one entry per data block: a
  separator key -> varint64 offset and size of the block; restart interval
  1), and a 48-byte footer: the metaindex and index block handles padded to
  40 bytes, then the magic number as fixed64. Each block is followed by a
  1-byte compression type (0: none) and the masked CRC32C of block + type.
  """

  # tsl table_options.h defaults; format.h kTableMagicNumber.
  _BLOCK_SIZE = 262144
  _RESTART_INTERVAL = 16
  _MAGIC = 0xDB4775248B80FB57
  _FOOTER_HANDLES_BYTES = 40
  _NO_COMPRESSION = b"\x00"

  def __init__(self):
    self._out = bytearray()
    self._data_block = _BlockBuilder(self._RESTART_INTERVAL)
    self._index_block = _BlockBuilder(1)
    self._last_key = b""
    self._num_entries = 0
    self._pending_handle = None

  def add(self, key: bytes, value: bytes):
    if self._num_entries and len(key) + len(value) >= 2 * self._BLOCK_SIZE:
      self._flush()  # An overly large entry starts a block of its own.
    if self._pending_handle is not None:
      separator = _shortest_separator(self._last_key, key)
      self._index_block.add(separator, self._pending_handle)
      self._pending_handle = None
    self._last_key = key
    self._num_entries += 1
    self._data_block.add(key, value)
    if self._data_block.size_estimate() >= self._BLOCK_SIZE:
      self._flush()

  def _flush(self):
    if self._data_block.empty():
      return
    self._pending_handle = self._write_block(self._data_block)

  def _write_block(self, block: _BlockBuilder) -> bytes:
    """Appends a block and its trailer; returns its encoded handle."""
    contents = block.finish()
    block.reset()
    handle = _varint(len(self._out)) + _varint(len(contents))
    crc = google_crc32c.value(contents + self._NO_COMPRESSION)
    self._out += contents
    self._out += self._NO_COMPRESSION
    self._out += struct.pack("<I", masked_crc32c(crc))
    return handle

  def finish(self) -> bytes:
    self._flush()
    metaindex_handle = self._write_block(_BlockBuilder(self._RESTART_INTERVAL))
    if self._pending_handle is not None:
      successor = _short_successor(self._last_key)
      self._index_block.add(successor, self._pending_handle)
      self._pending_handle = None
    index_handle = self._write_block(self._index_block)
    handles = metaindex_handle + index_handle
    self._out += handles.ljust(self._FOOTER_HANDLES_BYTES, b"\x00")
    self._out += struct.pack("<Q", self._MAGIC)
    return bytes(self._out)


def _read_varint(data, pos: int):
  """Decodes a varint at data[pos:]; returns (value, position after it)."""
  value = shift = 0
  while True:
    if pos >= len(data):
      raise ValueError("truncated varint")
    byte = data[pos]
    pos += 1
    value |= (byte & 0x7F) << shift
    if byte < 0x80:
      return value, pos
    shift += 7


def _block_entries(block: bytes):
  """Yields (key, value) of a block as `_BlockBuilder` lays it out."""
  (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
  end = len(block) - 4 - 4 * num_restarts
  pos, key = 0, b""
  while pos < end:
    shared, pos = _read_varint(block, pos)
    unshared, pos = _read_varint(block, pos)
    value_size, pos = _read_varint(block, pos)
    key = key[:shared] + block[pos : pos + unshared]
    pos += unshared
    yield key, block[pos : pos + value_size]
    pos += value_size


def _table_block(table: bytes, handle: bytes) -> bytes:
  offset, pos = _read_varint(handle, 0)
  size, _ = _read_varint(handle, pos)
  if offset + size + 5 > len(table) or table[offset + size] != 0:
    raise ValueError("a block lies past the end or is compressed")
  return table[offset : offset + size]


def read_index(prefix: str):
  """Reads the index of a V2 checkpoint (the reverse of `BundleWriter`).

  Args:
    prefix: the checkpoint prefix, e.g. `<module>/variables/variables`.

  Returns:
    (header, entries): the `BundleHeaderProto` and a dict from index key
    (bytes: a tensor name, or a slice key as `slice_key` makes it) to its
    `BundleEntryProto`.

  Raises:
    OSError: the index file cannot be read.
    ValueError: naming the file, if it is not an uncompressed table of
      bundle entries (what TensorFlow writes).
  """
  path = index_filename(os.fspath(prefix))
  with open(path, "rb") as f:
    table = f.read()
  footer = len(table) - 8
  try:
    if footer < _TableBuilder._FOOTER_HANDLES_BYTES or struct.unpack_from(
        "<Q", table, footer
    ) != (_TableBuilder._MAGIC,):
      raise ValueError("no table footer")
    handles = table[footer - _TableBuilder._FOOTER_HANDLES_BYTES : footer]
    _, pos = _read_varint(handles, 0)  # The metaindex block's handle.
    _, pos = _read_varint(handles, pos)
    index_block = _table_block(table, handles[pos:])
    header, entries = None, {}
    for _, handle in _block_entries(index_block):
      for key, value in _block_entries(_table_block(table, handle)):
        if key:
          entries[key] = protos.BundleEntryProto.FromString(value)
        else:
          header = protos.BundleHeaderProto.FromString(value)
  except (ValueError, struct.error, IndexError) as e:
    raise ValueError(
        f"Checkpoint index {path} is not a tensor bundle index: {e}."
    ) from None
  if header is None:
    raise ValueError(
        f"Checkpoint index {path} is not a tensor bundle index: no header."
    )
  return header, entries


def write_index(prefix: str, entries) -> None:
  """Writes `<prefix>.index` for one data shard, via a temporary file.

  Args:
    prefix: the checkpoint prefix.
    entries: dict from index key (bytes) to `BundleEntryProto`, each naming
      its bytes (offset, size, masked CRC32C) in `data_filename(prefix)`.

  Raises:
    OSError: writing the file failed.
  """
  index_path = index_filename(os.fspath(prefix))
  header = protos.BundleHeaderProto(
      num_shards=1,
      endianness=protos.BundleHeaderProto.LITTLE,
      version=protos.VersionDef(
          producer=_BUNDLE_VERSION, min_consumer=_BUNDLE_MIN_CONSUMER
      ),
  )
  table = _TableBuilder()
  table.add(b"", header.SerializeToString())
  for key in sorted(entries):
    table.add(key, entries[key].SerializeToString())
  temp_path = f"{index_path}.tmp{uuid.uuid4().hex}"
  try:
    with open(temp_path, "wb") as index:
      index.write(table.finish())
    os.replace(temp_path, index_path)
  finally:
    if os.path.exists(temp_path):
      os.remove(temp_path)


def string_scalar(value: bytes):
  """The data-file bytes and masked CRC32C of a DT_STRING scalar.

  As tensor_bundle.cc WriteStringTensor lays out a string tensor: the varint
  length, the masked CRC32C of the length (as a fixed32), then the bytes; the
  entry's CRC covers the length as a fixed32, that checksum and the bytes
  (checked byte for byte against `tf.raw_ops.SaveV2` in the tests).

  Args:
    value: the string's bytes, fewer than 2**32.

  Returns:
    (data, crc32c): the bytes to append to the data file and the masked CRC32C
    for the entry (`BundleEntryProto.crc32c`).

  Raises:
    ValueError: the string has 2**32 bytes or more (TensorFlow then stores
      lengths differently).
  """
  if len(value) >= 1 << 32:
    raise ValueError(
        f"string_scalar: {len(value)} bytes; only strings under 4 GiB."
    )
  length = struct.pack("<I", len(value))
  crc = google_crc32c.value(length)
  length_checksum = struct.pack("<I", masked_crc32c(crc))
  crc = google_crc32c.extend(crc, length_checksum)
  crc = google_crc32c.extend(crc, value)
  return _varint(len(value)) + length_checksum + value, masked_crc32c(crc)


# --- Slice keys (saved_tensor_slice_util.cc, strings/ordered_code.cc) ------


def _ordered_num_increasing(value: int) -> bytes:
  """OrderedCode::WriteNumIncreasing: length byte, then big-endian bytes."""
  payload = value.to_bytes((value.bit_length() + 7) // 8, "big")
  return bytes([len(payload)]) + payload


_SPECIAL_BYTE = re.compile(b"[\x00\xff]")
_ESCAPES = {b"\x00": b"\x00\xff", b"\xff": b"\xff\x00"}


def _ordered_string(value: bytes) -> bytes:
  """OrderedCode::WriteString: 0x00 -> 00 ff, 0xff -> ff 00, then 00 01."""
  escaped = _SPECIAL_BYTE.sub(lambda m: _ESCAPES[m.group()], value)
  return escaped + b"\x00\x01"


# OrderedCode kLengthToHeaderBits: the bits that mark the length of a signed
# number's encoding in its first two bytes.
_SIGNED_HEADER_BITS = (
    (0x00, 0x00),
    (0x80, 0x00),
    (0xC0, 0x00),
    (0xE0, 0x00),
    (0xF0, 0x00),
    (0xF8, 0x00),
    (0xFC, 0x00),
    (0xFE, 0x00),
    (0xFF, 0x00),
    (0xFF, 0x80),
    (0xFF, 0xC0),
)


def _ordered_signed_num_increasing(value: int) -> bytes:
  """OrderedCode::WriteSignedNumIncreasing.

  n bytes hold numbers in [-2**(7n-1), 2**(7n-1)): the two's complement
  big-endian value, with the sign bit followed by n-1 length bits xor-ed in.
  """
  magnitude = ~value if value < 0 else value
  length = magnitude.bit_length() // 7 + 1
  encoded = bytearray(value.to_bytes(length, "big", signed=True))
  first, second = _SIGNED_HEADER_BITS[length]
  encoded[0] ^= first
  if length > 1:
    encoded[1] ^= second
  return bytes(encoded)


def slice_key(name: str, extents) -> bytes:
  """The index key of one slice of a tensor (EncodeTensorNameSlice).

  Args:
    name: the full tensor's name.
    extents: one (start, length) per dimension; length -1 means the whole
      dimension (TensorSlice's kFullExtent, start 0).

  Returns:
    WriteNumIncreasing(0), WriteString(name), WriteNumIncreasing(rank), then
    WriteSignedNumIncreasing of each start and length.
  """
  key = _ordered_num_increasing(0) + _ordered_string(name.encode("utf-8"))
  key += _ordered_num_increasing(len(extents))
  for start, length in extents:
    key += _ordered_signed_num_increasing(start)
    key += _ordered_signed_num_increasing(length)
  return key


# --- The writer -----------------------------------------------------------


def _numpy_dtype(name, dtype):
  """The native-order numpy dtype of `dtype` (numpy's or a tf.DType)."""
  dtype = getattr(dtype, "as_numpy_dtype", dtype)  # A tf.DType.
  try:
    np_dtype = np.dtype(dtype)
  except TypeError as e:
    raise ValueError(
        f"Checkpoint tensor {name!r}: dtype {dtype!r} is not a numpy dtype."
    ) from e
  native = np_dtype.newbyteorder("=")
  if native not in _DATA_TYPES:
    supported = ", ".join(sorted(str(d) for d in _DATA_TYPES))
    raise ValueError(
        f"Checkpoint tensor {name!r}: dtype {np_dtype} cannot be written "
        f"(fixed-size numbers only: {supported})."
    )
  return native


def _shape_tuple(name, shape):
  try:
    dims = tuple(operator.index(d) for d in shape)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"Checkpoint tensor {name!r}: shape {shape!r} is not a sequence of"
        " integers."
    ) from e
  if any(d < 0 for d in dims):
    raise ValueError(
        f"Checkpoint tensor {name!r}: shape {dims} has a negative dimension."
    )
  return dims


def _shape_proto(dims):
  shape = protos.TensorShapeProto()
  for d in dims:
    shape.dim.add(size=d)
  return shape


@dataclasses.dataclass(frozen=True)
class _Range:
  """Bytes [offset, offset + size) of the data file, held by one entry."""

  key: bytes
  label: str
  offset: int
  size: int

  @property
  def end(self):
    return self.offset + self.size


class BundleWriter:
  """Writes `<prefix>.index` and `<prefix>.data-00000-of-00001` (one shard).

  The caller appends tensor bytes with `write()` (streaming: no tensor needs
  to be in memory whole) and declares which byte ranges hold which tensors
  with `add_tensor()` / `add_sliced_tensor()`; `close()` checks the ranges,
  checksums them by reading the data file back in 16 MiB pieces, and writes
  the index. Tensors written in the order and with the names given to
  `tf.raw_ops.SaveV2` give the same bytes as SaveV2 (data file and index).

  Used as a context manager, it closes on a clean exit and removes both files
  on an exception. It never imports TensorFlow.

  Raises (from each method, as documented there) ValueError naming the tensor
  and what was expected when something does not fit.
  """

  def __init__(self, prefix: str):
    """Creates the data file.

    Args:
      prefix: the checkpoint prefix, e.g. `<module>/variables/variables`. Its
        parent directory must exist.

    Raises:
      OSError: the data file cannot be created.
      RuntimeError: on a big-endian machine (the data would be mislabelled).
    """
    if sys.byteorder != "little":
      raise RuntimeError(
          "BundleWriter writes little-endian checkpoints and needs a"
          " little-endian machine."
      )
    self._prefix = os.fspath(prefix)
    self._data_path = data_filename(self._prefix)
    self._index_path = index_filename(self._prefix)
    self._file = open(self._data_path, "wb")  # pylint: disable=consider-using-with
    self._offset = 0
    self._closed = False
    # Index key -> BundleEntryProto, and the data ranges the entries hold.
    self._entries = {}
    self._ranges = []

  @property
  def prefix(self) -> str:
    return self._prefix

  @property
  def offset(self) -> int:
    """Bytes written to the data file so far."""
    return self._offset

  def write(self, data) -> None:
    """Appends raw bytes to the data file.

    Args:
      data: bytes, a bytes-like object (memoryview, bytearray) or a
        C-contiguous numpy array or numpy scalar, written as its little-endian
        memory.

    Raises:
      ValueError: the array is not C-contiguous, is big-endian or holds
        Python objects, or the writer is closed.
    """
    self._check_open("write")
    if isinstance(data, np.generic):
      data = np.asarray(data)
    if isinstance(data, np.ndarray):
      if data.dtype.hasobject:
        raise ValueError(
            f"Checkpoint {self._prefix!r}: write() got an array of Python"
            f" objects ({data.dtype}); only numbers can be written."
        )
      if not data.flags.c_contiguous:
        raise ValueError(
            f"Checkpoint {self._prefix!r}: write() needs a C-contiguous array"
            f" (got one of shape {data.shape}); pass np.ascontiguousarray(a)."
        )
      if data.dtype.byteorder == ">":
        raise ValueError(
            f"Checkpoint {self._prefix!r}: write() got a big-endian array"
            f" ({data.dtype.str}); checkpoints are little-endian, pass"
            " a.astype(a.dtype.newbyteorder('<'))."
        )
      nbytes = data.nbytes
      buffer = data.reshape(-1).view(np.uint8)
    else:
      buffer = memoryview(data)
      nbytes = buffer.nbytes
    self._file.write(buffer)
    self._offset += nbytes

  def add_tensor(self, name: str, dtype, shape, offset: int) -> None:
    """Declares a whole tensor stored at [offset, offset + size) of the data.

    Args:
      name: the checkpoint key (the variable's name, e.g. `embeddings`).
      dtype: a numpy dtype (anything `np.dtype` accepts, or a tf.DType) of
        fixed size: float16/32/64, int8..64, uint8..64, bool, complex64/128.
      shape: the tensor's dimensions; () for a scalar.
      offset: where its bytes start in the data file. size = itemsize *
        product(shape). The bytes may be written before or after this call,
        but before `close()`.

    Raises:
      ValueError: the name is empty or already added, or the dtype, shape or
        offset is invalid.
    """
    self._check_open("add_tensor")
    self._check_name(name)
    np_dtype = _numpy_dtype(name, dtype)
    dims = _shape_tuple(name, shape)
    self._add_entry(name.encode("utf-8"), repr(name), np_dtype, dims, offset)

  def add_sliced_tensor(self, name: str, dtype, full_shape, slices) -> None:
    """Declares a tensor stored as slices of rows (a partitioned variable).

    What `tf.compat.v1.train.Saver` (and so tensorflow_hub's Module.export)
    writes for a variable partitioned along dimension 0: SaveV2 with the name once per slice and shape_and_slices
    "<full shape> <start>,<rows>:0,<dim 1>:..." (the other dimensions as
    explicit whole extents, as `Variable.SaveSliceInfo.spec` gives them).

    Args:
      name: the full tensor's checkpoint key.
      dtype: as for `add_tensor`.
      full_shape: the full tensor's shape, rank >= 1.
      slices: a sequence of (start_row, num_rows, offset): rows [start_row,
        start_row + num_rows) along dimension 0 (all of the other dimensions)
        stored contiguously from `offset` in the data file. Together they must
        cover the rows [0, full_shape[0]) exactly once; the order is kept in
        the index (give them in the order they were written for SaveV2's
        bytes). A single slice of all rows is stored as a whole tensor, as
        TensorFlow does.

    Raises:
      ValueError: as for `add_tensor`, or the slices do not cover the rows
        exactly once or are empty.
    """
    self._check_open("add_sliced_tensor")
    self._check_name(name)
    np_dtype = _numpy_dtype(name, dtype)
    dims = _shape_tuple(name, full_shape)
    if not dims:
      raise ValueError(
          f"Checkpoint tensor {name!r}: a sliced tensor needs rank >= 1 (got"
          " a scalar shape)."
      )
    slices = [self._slice_triple(name, s) for s in slices]
    self._check_slice_coverage(name, dims[0], slices)
    if len(slices) == 1:
      self._add_entry(
          name.encode("utf-8"), repr(name), np_dtype, dims, slices[0][2]
      )
      return
    for start, _, offset in slices:
      if offset < 0:
        raise ValueError(
            f"Checkpoint tensor {name!r}: the slice at row {start} has"
            f" offset {offset}, which is negative."
        )
    full_entry = protos.BundleEntryProto(
        dtype=_DATA_TYPES[np_dtype], shape=_shape_proto(dims)
    )
    self._entries[name.encode("utf-8")] = full_entry
    for start, num_rows, offset in slices:
      extents = [(start, num_rows)] + [(0, d) for d in dims[1:]]
      tensor_slice = full_entry.slices.add()
      for extent_start, extent_length in extents:
        tensor_slice.extent.add(start=extent_start, length=extent_length)
      label = f"{name!r} (rows {start}:{start + num_rows} of a sliced tensor)"
      self._add_entry(
          slice_key(name, extents),
          label,
          np_dtype,
          (num_rows,) + dims[1:],
          offset,
      )

  def close(self) -> None:
    """Checks the entries, checksums them and writes the index.

    Closes the data file, checks that every entry's byte range lies within
    the bytes written and that no two ranges overlap (bytes no entry holds
    are allowed), computes each entry's CRC32C by reading its bytes back in
    16 MiB pieces, then writes `<prefix>.index` (via a temporary file and a
    rename). On an error both files are removed. A second call does nothing.

    Raises:
      ValueError: naming the tensor whose range lies past the data written
        or overlaps another's.
      OSError: reading the data file or writing the index failed.
    """
    if self._closed:
      return
    # On any error (also KeyboardInterrupt) abort() removes both files; the
    # error itself goes on to the caller.
    with contextlib.ExitStack() as on_error:
      on_error.callback(self.abort)
      self._file.close()
      self._check_ranges()
      self._write_crcs()
      self._write_index()
      on_error.pop_all()
    self._closed = True

  def abort(self) -> None:
    """Closes and removes the data and index files (a failed write)."""
    self._closed = True
    self._file.close()
    for path in (self._data_path, self._index_path):
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc_value, traceback):
    if exc_type is None:
      self.close()
    else:
      self.abort()

  # --- internals ---------------------------------------------------------

  def _check_open(self, method):
    if self._closed:
      raise ValueError(
          f"Checkpoint {self._prefix!r}: {method}() after close() or abort()."
      )

  def _check_name(self, name):
    if not isinstance(name, str) or not name:
      raise ValueError(
          f"Checkpoint {self._prefix!r}: a tensor name must be a non-empty"
          f" string (got {name!r}); the empty key holds the header."
      )
    if name.encode("utf-8") in self._entries:
      raise ValueError(f"Checkpoint tensor {name!r}: added twice.")

  def _slice_triple(self, name, item):
    try:
      start, num_rows, offset = (operator.index(v) for v in item)
    except (TypeError, ValueError) as e:
      raise ValueError(
          f"Checkpoint tensor {name!r}: a slice must be (start_row, num_rows,"
          f" offset), three integers (got {item!r})."
      ) from e
    return start, num_rows, offset

  def _check_slice_coverage(self, name, num_rows_total, slices):
    if not slices:
      raise ValueError(f"Checkpoint tensor {name!r}: no slices given.")
    next_row = 0
    for start, num_rows, _ in sorted(slices):
      if num_rows <= 0:
        raise ValueError(
            f"Checkpoint tensor {name!r}: slice at row {start} has"
            f" {num_rows} rows; each slice needs at least one."
        )
      if start != next_row:
        problem = (
            "overlaps the previous one" if start < next_row else "leaves a gap"
        )
        raise ValueError(
            f"Checkpoint tensor {name!r}: the slices must cover rows"
            f" [0, {num_rows_total}) exactly once; the slice starting at row"
            f" {start} {problem} (expected row {next_row})."
        )
      next_row = start + num_rows
    if next_row != num_rows_total:
      raise ValueError(
          f"Checkpoint tensor {name!r}: the slices must cover rows"
          f" [0, {num_rows_total}) exactly once; they end at row {next_row}."
      )

  def _add_entry(self, key, label, np_dtype, dims, offset):
    try:
      offset = operator.index(offset)
    except TypeError as e:
      raise ValueError(
          f"Checkpoint tensor {label}: offset {offset!r} is not an integer."
      ) from e
    if offset < 0:
      raise ValueError(
          f"Checkpoint tensor {label}: offset {offset} is negative."
      )
    size = np_dtype.itemsize * math.prod(dims)
    entry = protos.BundleEntryProto(
        dtype=_DATA_TYPES[np_dtype], offset=offset, size=size
    )
    entry.shape.SetInParent()  # A scalar's empty shape is still written.
    entry.shape.CopyFrom(_shape_proto(dims))
    self._entries[key] = entry
    self._ranges.append(_Range(key, label, offset, size))

  def _check_ranges(self):
    for held in self._ranges:
      if held.end > self._offset:
        raise ValueError(
            f"Checkpoint tensor {held.label}: its bytes [{held.offset},"
            f" {held.end}) lie past the end of the data written"
            f" ({self._offset} bytes)."
        )
    previous = None
    for held in sorted(self._ranges, key=lambda r: (r.offset, r.size)):
      if not held.size:
        continue
      if previous is not None and held.offset < previous.end:
        raise ValueError(
            f"Checkpoint tensors {previous.label} and {held.label} overlap:"
            f" bytes [{previous.offset}, {previous.end}) and [{held.offset},"
            f" {held.end}) of the data file."
        )
      previous = held

  def _write_crcs(self):
    with open(self._data_path, "rb", buffering=0) as data:
      for held in sorted(self._ranges, key=lambda r: r.offset):
        data.seek(held.offset)
        crc = 0
        remaining = held.size
        while remaining:
          piece = data.read(min(remaining, _CRC_CHUNK_BYTES))
          if not piece:
            raise OSError(
                f"Checkpoint tensor {held.label}: the data file"
                f" {self._data_path} ended early (was it changed while"
                " writing?)."
            )
          crc = google_crc32c.extend(crc, piece)
          remaining -= len(piece)
        self._entries[held.key].crc32c = masked_crc32c(crc)

  def _write_index(self):
    write_index(self._prefix, self._entries)
