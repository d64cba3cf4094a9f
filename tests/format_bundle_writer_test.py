"""format.bundle_writer writes the checkpoint bytes TensorFlow's SaveV2 writes."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from hub_estimator.format import bundle_writer
from hub_estimator.format import protos

_DATA = ".data-00000-of-00001"
_INDEX = ".index"


def _save_v2(prefix, names, shape_and_slices, tensors):
  tf.raw_ops.SaveV2(
      prefix=prefix,
      tensor_names=names,
      shape_and_slices=shape_and_slices,
      tensors=[tf.constant(t) for t in tensors],
  )


def _write_whole(prefix, named_arrays):
  with bundle_writer.BundleWriter(prefix) as writer:
    for name, array in named_arrays:
      offset = writer.offset
      writer.write(array)
      writer.add_tensor(name, array.dtype, array.shape, offset)


def _restore(prefix, name, shape_and_slice, dtype):
  return tf.raw_ops.RestoreV2(
      prefix=prefix,
      tensor_names=[name],
      shape_and_slices=[shape_and_slice],
      dtypes=[dtype],
  )[0].numpy()


class SameBytesAsSaveV2Test(tf.test.TestCase):
  """Each case writes with SaveV2 and with BundleWriter and compares files."""

  def _assert_same_files(self, theirs, ours):
    for suffix in (_DATA, _INDEX):
      with open(theirs + suffix, "rb") as f:
        expected = f.read()
      with open(ours + suffix, "rb") as f:
        actual = f.read()
      self.assertEqual(len(expected), len(actual), suffix)
      self.assertEqual(expected, actual, suffix)

  def _prefixes(self):
    root = self.get_temp_dir()
    return os.path.join(root, "tf", "ckpt"), os.path.join(root, "ours", "ckpt")

  def _compare_whole(self, named_arrays):
    theirs, ours = self._prefixes()
    names = [name for name, _ in named_arrays]
    arrays = [array for _, array in named_arrays]
    _save_v2(theirs, names, [""] * len(names), arrays)
    os.makedirs(os.path.dirname(ours))
    _write_whole(ours, named_arrays)
    self._assert_same_files(theirs, ours)
    return ours

  def test_one_float32_tensor(self):
    array = np.linspace(-1, 1, 30, dtype=np.float32).reshape(5, 6)
    ours = self._compare_whole([("embeddings", array)])
    reader = tf.train.load_checkpoint(ours)
    self.assertEqual(reader.get_variable_to_shape_map(), {"embeddings": [5, 6]})
    self.assertAllEqual(reader.get_tensor("embeddings"), array)

  def test_dtypes_and_names_that_sort_trickily(self):
    # Written in an order unlike the index's bytewise order ("a" < "a/b" <
    # "ab" < ... < "é"), with a scalar, an empty and a non-ASCII-named tensor.
    named_arrays = [
        ("embeddings", np.arange(12, dtype=np.float32).reshape(3, 4)),
        ("ab", np.array([1, -2, 3], np.int32)),
        ("a/b", np.array(3.25, np.float64)),
        ("a", np.array([[True, False, True]])),
        ("é/x", np.array([2**40, -7], np.int64)),
        ("empty", np.zeros((0, 3), np.float32)),
        ("half", np.array([0.5, 2.0], np.float16)),
        ("bytes", np.array([0, 255], np.uint8)),
    ]
    ours = self._compare_whole(named_arrays)
    reader = tf.train.load_checkpoint(ours)
    for name, array in named_arrays:
      restored = reader.get_tensor(name)
      self.assertEqual(restored.dtype, array.dtype, name)
      self.assertAllEqual(restored, array, msg=name)

  def test_many_tensors_fill_several_index_blocks(self):
    # Step 3 between names so that the index separators get shortened.
    names = [
        f"layer_{3 * i:05d}/a_rather_long_scope_name/variable_{i % 7}"
        for i in range(5000)
    ]
    named_arrays = [
        (name, np.full((i % 3 + 1,), i, np.float32))
        for i, name in enumerate(names)
    ]
    ours = self._compare_whole(named_arrays)
    # More than one 256 KiB data block of index entries.
    self.assertGreater(os.path.getsize(ours + _INDEX), 262144)
    reader = tf.train.load_checkpoint(ours)
    self.assertAllEqual(reader.get_tensor(names[4321]), [4321.0] * 2)

  def test_sliced_tensor(self):
    full = np.arange(52, dtype=np.float32).reshape(13, 4)
    theirs, ours = self._prefixes()
    _save_v2(
        theirs,
        ["embeddings", "embeddings", "global_step"],
        ["13 4 0,7:0,4", "13 4 7,6:0,4", ""],
        [full[:7], full[7:], np.int64(12)],
    )
    os.makedirs(os.path.dirname(ours))
    with bundle_writer.BundleWriter(ours) as writer:
      writer.write(full[:7])
      writer.write(full[7:])
      writer.write(np.array(12, np.int64))
      writer.add_sliced_tensor(
          "embeddings", np.float32, (13, 4), [(0, 7, 0), (7, 6, 112)]
      )
      writer.add_tensor("global_step", np.int64, (), 208)
    self._assert_same_files(theirs, ours)

  def test_sliced_tensor_with_large_row_numbers_and_rank_one(self):
    # Slice starts and lengths of 1, 2 and 3 bytes in the keys' OrderedCode.
    rows = 70000
    full = np.arange(rows, dtype=np.float32)
    bounds = [(0, 63), (63, 9000), (9063, rows - 9063)]
    theirs, ours = self._prefixes()
    _save_v2(
        theirs,
        ["v"] * 3,
        [f"{rows} {start},{num}" for start, num in bounds],
        [full[start : start + num] for start, num in bounds],
    )
    os.makedirs(os.path.dirname(ours))
    with bundle_writer.BundleWriter(ours) as writer:
      slices = []
      for start, num in bounds:
        slices.append((start, num, writer.offset))
        writer.write(full[start : start + num])
      writer.add_sliced_tensor("v", np.float32, (rows,), slices)
    self._assert_same_files(theirs, ours)

  def test_partitioned_variable_as_a_sharded_tf1_saver_saves_it(self):
    # What tensorflow_hub's Module.export writes: Saver(sharded=True), V2.
    full = np.arange(52, dtype=np.float32).reshape(13, 4)
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    theirs, ours = self._prefixes()
    os.makedirs(os.path.dirname(theirs))
    with tf.Graph().as_default():
      parts = tf.compat.v1.get_variable(
          "embeddings",
          shape=[13, 4],
          partitioner=tf.compat.v1.fixed_size_partitioner(2),
      )
      tf.compat.v1.get_variable("bias", initializer=bias)
      saver = tf.compat.v1.train.Saver(sharded=True)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        first, second = list(parts)
        session.run([first.assign(full[:7]), second.assign(full[7:])])
        saver.save(session, theirs, write_meta_graph=False, write_state=False)
    os.makedirs(os.path.dirname(ours))
    with bundle_writer.BundleWriter(ours) as writer:
      writer.write(bias)
      writer.write(full)
      writer.add_tensor("bias", np.float32, (3,), 0)
      writer.add_sliced_tensor(
          "embeddings", np.float32, (13, 4), [(0, 7, 12), (7, 6, 12 + 112)]
      )
    self._assert_same_files(theirs, ours)

  def test_one_slice_of_all_rows_is_a_whole_tensor(self):
    full = np.ones((3, 2), np.float32)
    theirs, ours = self._prefixes()
    _save_v2(theirs, ["w"], ["3 2 0,3:0,2"], [full])
    os.makedirs(os.path.dirname(ours))
    with bundle_writer.BundleWriter(ours) as writer:
      writer.write(full)
      writer.add_sliced_tensor("w", np.float32, (3, 2), [(0, 3, 0)])
    self._assert_same_files(theirs, ours)


class ReadBackTest(tf.test.TestCase):

  def test_numpy_scalars_tf_dtypes_and_bytes(self):
    prefix = os.path.join(self.get_temp_dir(), "ckpt")
    with bundle_writer.BundleWriter(prefix) as writer:
      writer.write(np.int64(7))
      writer.write(memoryview(np.array([1.5, 2.5], np.float32)))
      writer.write(np.array([3, 4], np.int32).tobytes())
      writer.add_tensor("step", tf.int64, [], 0)
      writer.add_tensor("f", "float32", np.array([2]), 8)
      writer.add_tensor("i", np.dtype("<i4"), (np.int64(2),), 16)
    reader = tf.train.load_checkpoint(prefix)
    self.assertEqual(reader.get_tensor("step"), 7)
    self.assertAllEqual(reader.get_tensor("f"), [1.5, 2.5])
    self.assertAllEqual(reader.get_tensor("i"), [3, 4])

  def test_sliced_tensor_restores_whole_and_by_partition(self):
    full = np.random.default_rng(0).normal(size=(13, 4)).astype(np.float32)
    prefix = os.path.join(self.get_temp_dir(), "ckpt")
    # The second partition's bytes come first in the data file.
    with bundle_writer.BundleWriter(prefix) as writer:
      writer.write(full[7:])
      writer.write(full[:7])
      writer.add_sliced_tensor(
          "embeddings", "float32", [13, 4], [(0, 7, 96), (7, 6, 0)]
      )
    self.assertAllEqual(_restore(prefix, "embeddings", "", tf.float32), full)
    self.assertAllEqual(
        _restore(prefix, "embeddings", "13 4 7,6:0,4", tf.float32), full[7:]
    )
    self.assertAllEqual(
        _restore(prefix, "embeddings", "13 4 0,7:0,4", tf.float32), full[:7]
    )
    reader = tf.train.load_checkpoint(prefix)
    self.assertEqual(
        reader.get_variable_to_shape_map(), {"embeddings": [13, 4]}
    )
    self.assertAllEqual(reader.get_tensor("embeddings"), full)

  def test_partitioned_variable_restores_in_a_tf1_graph(self):
    # What a TF1 Saver does for a partitioned variable when restoring.
    full = np.arange(26, dtype=np.float32).reshape(13, 2)
    prefix = os.path.join(self.get_temp_dir(), "ckpt")
    with bundle_writer.BundleWriter(prefix) as writer:
      writer.write(full)
      writer.add_sliced_tensor(
          "emb", np.float32, (13, 2), [(0, 7, 0), (7, 6, 56)]
      )
    with tf.Graph().as_default():
      emb = tf.compat.v1.get_variable(
          "emb",
          shape=[13, 2],
          partitioner=tf.compat.v1.fixed_size_partitioner(2),
      )
      saver = tf.compat.v1.train.Saver()
      with tf.compat.v1.Session() as session:
        saver.restore(session, prefix)
        self.assertAllEqual(session.run(tf.convert_to_tensor(emb)), full)

  def test_flipped_data_byte_fails_the_checksum(self):
    array = np.arange(12, dtype=np.float32)
    prefix = os.path.join(self.get_temp_dir(), "ckpt")
    _write_whole(prefix, [("v", array)])
    self.assertAllEqual(_restore(prefix, "v", "", tf.float32), array)
    with open(prefix + _DATA, "r+b") as f:
      f.seek(5)
      byte = f.read(1)[0]
      f.seek(5)
      f.write(bytes([byte ^ 1]))
    with self.assertRaisesRegex(
        tf.errors.DataLossError, "Checksum does not match"
    ):
      _restore(prefix, "v", "", tf.float32)

  def test_crc_spans_several_read_back_pieces(self):
    array = np.arange(300000, dtype=np.float32)
    prefix = os.path.join(self.get_temp_dir(), "ckpt")
    piece = bundle_writer._CRC_CHUNK_BYTES
    try:
      bundle_writer._CRC_CHUNK_BYTES = 4096 + 3
      _write_whole(prefix, [("v", array)])
    finally:
      bundle_writer._CRC_CHUNK_BYTES = piece
    self.assertAllEqual(_restore(prefix, "v", "", tf.float32), array)


class BadInputTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.prefix = os.path.join(self.get_temp_dir(), "ckpt")

  def _assert_no_files(self):
    self.assertFalse(os.path.exists(self.prefix + _DATA))
    self.assertFalse(os.path.exists(self.prefix + _INDEX))
    self.assertEqual(
        [n for n in os.listdir(self.get_temp_dir()) if n.startswith("ckpt")],
        [],
    )

  def test_range_past_the_data_written(self):
    with self.assertRaisesRegex(
        ValueError,
        r"tensor 'embeddings': its bytes \[40, 80\) lie past the end of the"
        r" data written \(60 bytes\)",
    ):
      with bundle_writer.BundleWriter(self.prefix) as writer:
        writer.write(np.zeros(15, np.float32))
        writer.add_tensor("embeddings", np.float32, (10,), 40)
    self._assert_no_files()

  def test_overlapping_tensors(self):
    with self.assertRaisesRegex(
        ValueError,
        r"tensors 'a' and 'b' overlap: bytes \[0, 16\) and \[8, 24\)",
    ):
      with bundle_writer.BundleWriter(self.prefix) as writer:
        writer.write(np.zeros(6, np.float32))
        writer.add_tensor("b", np.float32, (4,), 8)
        writer.add_tensor("a", np.float32, (4,), 0)
    self._assert_no_files()

  def test_slice_overlapping_a_tensor_is_named(self):
    with self.assertRaisesRegex(
        ValueError,
        r"tensors 'emb' \(rows 0:2 of a sliced tensor\) and 'x' overlap",
    ):
      with bundle_writer.BundleWriter(self.prefix) as writer:
        writer.write(np.zeros(8, np.float32))
        writer.add_sliced_tensor(
            "emb", np.float32, (4,), [(0, 2, 0), (2, 2, 8)]
        )
        writer.add_tensor("x", np.float32, (), 4)
    self._assert_no_files()

  def test_duplicate_name(self):
    with bundle_writer.BundleWriter(self.prefix) as writer:
      writer.write(np.zeros(2, np.float32))
      writer.add_tensor("v", np.float32, (1,), 0)
      with self.assertRaisesRegex(ValueError, "tensor 'v': added twice"):
        writer.add_tensor("v", np.float32, (1,), 4)
      with self.assertRaisesRegex(ValueError, "tensor 'v': added twice"):
        writer.add_sliced_tensor("v", np.float32, (2,), [(0, 1, 4), (1, 1, 8)])
    # The writer stays usable after a rejected add.
    self.assertAllEqual(_restore(self.prefix, "v", "", tf.float32), [0.0])

  def test_slices_that_do_not_cover_the_rows(self):
    cases = [
        ([(0, 3, 0), (4, 1, 12)], r"starting at row 4 leaves a gap"),
        ([(0, 3, 0), (2, 3, 12)], r"starting at row 2 overlaps the previous"),
        ([(0, 3, 0)], r"they end at row 3"),
        ([(1, 4, 0)], r"starting at row 1 leaves a gap \(expected row 0\)"),
        ([(0, 5, 0), (5, 1, 20)], r"they end at row 6"),
        ([(0, 0, 0), (0, 5, 0)], r"at row 0 has 0 rows"),
        ([], r"no slices given"),
    ]
    for slices, message in cases:
      with self.subTest(slices=slices):
        with bundle_writer.BundleWriter(self.prefix) as writer:
          writer.write(np.zeros(6, np.float32))
          with self.assertRaisesRegex(
              ValueError, r"tensor 'emb': .*" + message
          ):
            writer.add_sliced_tensor("emb", np.float32, (5,), slices)

  def test_bad_dtype_shape_and_name(self):
    with bundle_writer.BundleWriter(self.prefix) as writer:
      with self.assertRaisesRegex(
          ValueError, r"tensor 'words': dtype <U3 cannot be written"
      ):
        writer.add_tensor("words", np.dtype("<U3"), (2,), 0)
      with self.assertRaisesRegex(
          ValueError, r"tensor 'v': shape \(2, -1\) has a negative dimension"
      ):
        writer.add_tensor("v", np.float32, (2, -1), 0)
      with self.assertRaisesRegex(ValueError, r"tensor 'v': offset -4"):
        writer.add_tensor("v", np.float32, (2,), -4)
      with self.assertRaisesRegex(ValueError, "a non-empty string"):
        writer.add_tensor("", np.float32, (2,), 0)
      with self.assertRaisesRegex(ValueError, "needs rank >= 1"):
        writer.add_sliced_tensor("s", np.float32, (), [(0, 1, 0)])
      # Floats are not truncated into integers.
      with self.assertRaisesRegex(
          ValueError,
          r"tensor 'v': shape \(2.5,\) is not a sequence of integers",
      ):
        writer.add_tensor("v", np.float32, (2.5,), 0)
      with self.assertRaisesRegex(
          ValueError, r"tensor 'v': offset 4.0 is not an integer"
      ):
        writer.add_tensor("v", np.float32, (2,), 4.0)
      with self.assertRaisesRegex(
          ValueError,
          r"tensor 's': a slice must be \(start_row, num_rows, offset\), three"
          r" integers \(got \(0, 1\)\)",
      ):
        writer.add_sliced_tensor("s", np.float32, (1,), [(0, 1)])

  def test_arrays_that_cannot_be_written_as_they_are(self):
    with bundle_writer.BundleWriter(self.prefix) as writer:
      with self.assertRaisesRegex(ValueError, "C-contiguous"):
        writer.write(np.zeros((4, 3), np.float32).T)
      with self.assertRaisesRegex(ValueError, "big-endian"):
        writer.write(np.zeros(3, ">f4"))
      with self.assertRaisesRegex(ValueError, "array of Python objects"):
        writer.write(np.array([1.0, None]))
      self.assertEqual(writer.offset, 0)

  def test_exception_inside_with_removes_the_files(self):
    with self.assertRaisesRegex(RuntimeError, "reading the vectors failed"):
      with bundle_writer.BundleWriter(self.prefix) as writer:
        writer.write(np.zeros(1000, np.float32))
        writer.add_tensor("v", np.float32, (1000,), 0)
        raise RuntimeError("reading the vectors failed")
    self._assert_no_files()

  def test_use_after_close(self):
    writer = bundle_writer.BundleWriter(self.prefix)
    writer.close()
    writer.close()  # A second close does nothing.
    with self.assertRaisesRegex(ValueError, r"write\(\) after close\(\)"):
      writer.write(b"x")
    reader = tf.train.load_checkpoint(self.prefix)
    self.assertEqual(reader.get_variable_to_shape_map(), {})


class HelpersTest(tf.test.TestCase):

  def test_masked_crc32c(self):
    # tsl crc32c.h: Mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8.
    self.assertEqual(bundle_writer.masked_crc32c(0), 0xA282EAD8)
    self.assertEqual(
        bundle_writer.masked_crc32c(0xFFFFFFFF),
        (0xFFFFFFFF + 0xA282EAD8) % 2**32,
    )

  def test_slice_key_of_a_whole_dimension_and_negative_numbers(self):
    # A whole-dimension extent is (0, -1) in EncodeTensorNameSlice.
    key = bundle_writer.slice_key("a\x00b", [(2, 3), (0, -1)])
    self.assertEqual(key, b"\x00a\x00\xffb\x00\x01\x01\x02\x82\x83\x80\x7f")
    # OrderedCode escapes 0x00 as 00 ff and 0xff as ff 00, in one pass.
    self.assertEqual(
        bundle_writer._ordered_string(b"\xff\x00"), b"\xff\x00\x00\xff\x00\x01"
    )
    self.assertEqual(
        bundle_writer._ordered_signed_num_increasing(-65), b"\x3f\xbf"
    )
    self.assertEqual(
        bundle_writer._ordered_signed_num_increasing(2**62),
        b"\xff\xc0" + b"\x40" + bytes(7),
    )

  def test_header_entry(self):
    prefix = os.path.join(self.get_temp_dir(), "ckpt")
    bundle_writer.BundleWriter(prefix).close()
    header = protos.BundleHeaderProto(
        num_shards=1, version=protos.VersionDef(producer=1)
    ).SerializeToString()
    with open(prefix + _INDEX, "rb") as f:
      index = f.read()
    # The first entry of the first block: no shared bytes, key "", the header.
    self.assertEqual(
        index[: 3 + len(header)], b"\x00\x00" + bytes([len(header)]) + header
    )


class ReadIndexAndStringTest(tf.test.TestCase):
  """read_index, write_index and string_scalar against SaveV2's files."""

  def test_read_index_gives_saveV2_entries_and_write_index_rewrites_them(self):
    prefix = os.path.join(self.get_temp_dir(), "tf", "ckpt")
    full = np.arange(52, dtype=np.float32).reshape(13, 4)
    # Long names: the index needs several blocks.
    names = ["emb", "emb", "step"] + [
        "t%03d" % i + "x" * 1000 for i in range(300)
    ]
    _save_v2(
        prefix,
        names,
        ["13 4 0,7:0,4", "13 4 7,6:0,4", ""] + [""] * 300,
        [full[:7], full[7:], np.int64(12)]
        + [np.full([3], i, np.int32) for i in range(300)],
    )
    header, entries = bundle_writer.read_index(prefix)
    self.assertEqual(header.num_shards, 1)
    # The full tensor, its two slices, the scalar and 300 tensors.
    self.assertLen(entries, 304)
    self.assertLen(entries[b"emb"].slices, 2)
    part = entries[bundle_writer.slice_key("emb", [(7, 6), (0, 4)])]
    self.assertEqual((part.offset, part.size), (112, 96))
    self.assertEqual(entries[b"step"].dtype, protos.DATA_TYPES["DT_INT64"])
    self.assertEqual(
        [d.size for d in entries[names[-1].encode()].shape.dim], [3]
    )
    # Written back from what was read: the same index file.
    copy = os.path.join(self.get_temp_dir(), "copy", "ckpt")
    os.makedirs(os.path.dirname(copy))
    bundle_writer.write_index(copy, entries)
    with open(prefix + _INDEX, "rb") as f, open(copy + _INDEX, "rb") as g:
      self.assertEqual(f.read(), g.read())

  def test_read_index_of_a_file_that_is_not_an_index(self):
    prefix = os.path.join(self.get_temp_dir(), "ckpt")
    with open(prefix + _INDEX, "wb") as f:
      f.write(b"not a table" * 10)
    with self.assertRaisesRegex(
        ValueError, "ckpt.index is not a tensor bundle index: no table footer"
    ):
      bundle_writer.read_index(prefix)

  def test_string_scalar_is_what_saveV2_writes(self):
    for value in (b"", b"x", bytes(range(256)) * 3):
      prefix = os.path.join(self.get_temp_dir(), "s%d" % len(value), "ckpt")
      _save_v2(prefix, ["s"], [""], [value])
      data, crc = bundle_writer.string_scalar(value)
      with open(prefix + _DATA, "rb") as f:
        self.assertEqual(f.read(), data)
      entry = bundle_writer.read_index(prefix)[1][b"s"]
      self.assertEqual((entry.size, entry.crc32c), (len(data), crc))


class NoTensorFlowTest(tf.test.TestCase):

  def test_import_does_not_import_tensorflow(self):
    code = (
        "import sys\n"
        "import hub_estimator.format.bundle_writer\n"
        "assert 'tensorflow' not in sys.modules, sorted(\n"
        "    m for m in sys.modules if m.startswith('tensorflow'))[:5]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    self.assertEqual(result.returncode, 0, result.stderr)


if __name__ == "__main__":
  tf.test.main()
