"""Input files are checked before training; data errors name file and row."""

import os

import tensorflow as tf

from hub_estimator.models import data_files
from hub_estimator.models import inputs


def _example(value):
  return tf.train.Example(
      features=tf.train.Features(
          feature={
              'x': tf.train.Feature(
                  float_list=tf.train.FloatList(value=[value])
              ),
              'label': tf.train.Feature(
                  int64_list=tf.train.Int64List(value=[int(value)])
              ),
          }
      )
  ).SerializeToString()


_SPEC = {'x': ('float32', [1]), 'label': ('int64', [])}


class DataFilesTest(tf.test.TestCase):

  def write(self, name, data):
    path = os.path.join(self.get_temp_dir(), name)
    with open(path, 'wb' if isinstance(data, bytes) else 'w') as f:
      f.write(data)
    return path

  def tfrecord(self, name, n=5):
    path = os.path.join(self.get_temp_dir(), name)
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(n):
        writer.write(_example(i))
    return path

  def csv(self, path, **kwargs):
    return inputs.csv_input(
        path, ['a', 'b'], ['float32', 'int64'], label_key='b', **kwargs
    )

  def test_good_files_pass(self):
    self.assertIsNone(
        self.csv(self.write('ok.csv', 'a,b\n1,2\n')).find_input_error()
    )
    path = self.tfrecord('ok.tfrecord')
    input_fn = inputs.tfrecord_input(path, _SPEC, label_key='label')
    self.assertIsNone(input_fn.find_input_error())
    self.assertIsNone(input_fn.find_data_error())

  def test_pattern_matching_nothing(self):
    missing = os.path.join(self.get_temp_dir(), 'nope-*.csv')
    self.assertIn(
        f'csv_input.file_pattern={missing!r} matches no file',
        self.csv(missing).find_input_error(),
    )

  def test_empty_and_header_only_csv(self):
    empty = self.write('empty.csv', '')
    self.assertEqual(
        self.csv(empty).find_input_error(),
        f'csv_input.file_pattern: {empty} is empty (0 bytes).',
    )
    header_only = self.write('header.csv', 'a,b\n')
    self.assertEqual(
        self.csv(header_only).find_input_error(),
        f'csv_input.file_pattern: {header_only}: the CSV file has no row after'
        ' its header.',
    )

  def test_unreadable_file(self):
    folder = os.path.join(self.get_temp_dir(), 'dir.csv')
    os.makedirs(folder, exist_ok=True)
    self.assertIn(
        'is a folder, not a data file', self.csv(folder).find_input_error()
    )

  def test_truncated_tfrecord_is_found(self):
    data = open(self.tfrecord('whole.tfrecord'), 'rb').read()
    record = len(data) // 5
    # Cut inside a record header: TensorFlow itself reads 4 records quietly.
    cut_header = self.write('cut1.tfrecord', data[: 4 * record + 7])
    self.assertIn(
        'truncated TFRecord file: 7 stray bytes after record 4',
        inputs.tfrecord_input(cut_header, _SPEC).find_input_error(),
    )
    cut_body = self.write('cut2.tfrecord', data[:-3])
    self.assertIn(
        f'{cut_body}: truncated or corrupt TFRecord file: record 5',
        inputs.tfrecord_input(cut_body, _SPEC).find_input_error(),
    )

  def test_garbage_and_empty_tfrecord(self):
    garbage = self.write('garbage.tfrecord', b'this is not a tfrecord file')
    self.assertIn(
        f'{garbage}: truncated or corrupt TFRecord file: record 1',
        inputs.tfrecord_input(garbage, _SPEC).find_input_error(),
    )
    empty = self.write('empty.tfrecord', b'')
    self.assertIn(
        'is empty (0 bytes)',
        inputs.tfrecord_input(empty, _SPEC).find_input_error(),
    )

  def test_csv_bad_rows_name_file_and_row(self):
    short = self.write('short.csv', 'a,b\n1,2\n3\n')
    self.assertEqual(
        str(self.csv(short).find_data_error()),
        f'{short}, row 2 (line 3): Expect 2 fields but have 1 in record',
    )
    not_a_number = self.write('nan.csv', 'a,b\n1,2\n3,4\nfive,6\n')
    self.assertEqual(
        str(self.csv(not_a_number).find_data_error()),
        f'{not_a_number}, row 3 (line 4): Field 0 in record is not a valid'
        " float: five (field 0 is column 'a')",
    )

  def test_tfrecord_missing_feature_names_file_and_record(self):
    path = self.tfrecord('ok.tfrecord', n=3)
    spec = dict(_SPEC, y=('float32', [2]))
    located = str(inputs.tfrecord_input(path, spec).find_data_error())
    self.assertStartsWith(located, f'{path}, record 1: ')
    self.assertIn('Feature: y (data type: float) is required', located)

  def test_corrupt_tfrecord_names_file_and_record(self):
    data = open(self.tfrecord('whole.tfrecord', n=3), 'rb').read()
    corrupt = bytearray(data)
    corrupt[len(data) // 3 + 20] ^= 0xFF  # A data byte of record 2.
    path = self.write('corrupt.tfrecord', bytes(corrupt))
    located = str(inputs.tfrecord_input(path, _SPEC).find_data_error())
    self.assertStartsWith(located, f'{path}, record 2: ')
    self.assertIn('corrupted record', located)

  def test_empty_number_field_is_an_error_not_the_default(self):
    path = self.write('gap.csv', 'a,b\n1,2\n,3\n')
    self.assertEqual(
        str(self.csv(path).find_data_error()),
        f'{path}, row 2 (line 3): Field 0 is required but missing in record!'
        " (field 0 is column 'a')",
    )
    strings = inputs.csv_input(path, ['a', 'b'], ['string', 'int64'])
    self.assertIsNone(strings.find_data_error())  # '' is a string.

  def test_check_finds_the_record_past_many_batches(self):
    rows = ''.join(f'{i},{i % 3}\n' for i in range(1000))
    path = self.write('labels.csv', 'a,b\n' + rows + '7,9\n' + rows)

    def check(element):
      _, labels = element
      return 'label 9' if (labels == 9).any() else None

    self.assertEqual(
        str(self.csv(path).find_data_error(check=check)),
        f'{path}, row 1001 (line 1002): label 9',
    )

  def test_a_bad_record_is_blamed_only_for_its_own_error(self):
    path = self.write('nan.csv', 'a,b\n1,2\nfive,6\n')
    bad = self.csv(path).find_data_error()
    same = tf.errors.InvalidArgumentError(
        None, None, 'Field 0 in record is not a valid float: five'
    )
    other = tf.errors.InvalidArgumentError(
        None, None, 'assertion failed: [labels must be class ids in [0, 3)'
    )
    self.assertTrue(data_files.explains(bad, same))
    self.assertFalse(data_files.explains(bad, other))
    self.assertFalse(data_files.explains(None, same))

  def test_csv_header_in_another_order_than_column_names(self):
    path = self.write('swapped.csv', 'b,a\n1,2\n')
    self.assertEqual(
        self.csv(path).find_input_error(),
        f'csv_input.file_pattern: {path}: its header names the columns in'
        ' another order than csv_input.column_names, so columns would be'
        " read under the wrong names: header ['b', 'a'], column_names ['a',"
        " 'b']. List the columns in file order.",
    )
    other_names = self.write('renamed.csv', 'x,y\n1,2\n')
    self.assertIsNone(self.csv(other_names).find_input_error())

  def test_a_file_without_header_read_with_header_true_is_refused(self):
    path = self.write('no_header.csv', '1,2\n3,4\n')
    self.assertEqual(
        self.csv(path).find_input_error(),
        f"csv_input.file_pattern: {path}: line 1 ('1,2') is all numbers, so"
        ' it looks like a data row, but csv_input.header = True would skip it'
        ' as the header and lose that row. Bind csv_input.header = False if'
        ' the file has no header (or, if its header really is numbers, list'
        ' those names in csv_input.column_names).',
    )
    self.assertIsNone(self.csv(path, header=False).find_input_error())
    numeric_names = self.write('numeric_names.csv', '1,2\n3,4\n')
    numeric_input = inputs.csv_input(
        numeric_names, ['1', '2'], ['float32', 'int64'], label_key='2'
    )
    self.assertIsNone(numeric_input.find_input_error())

  def test_header_read_as_a_row_suggests_header_true(self):
    path = self.write('with_header.csv', 'a,b\n1,2\n')
    self.assertEqual(
        str(self.csv(path, header=False).find_data_error()),
        f'{path}, row 1 (line 1): Field 0 in record is not a valid float: a'
        " (field 0 is column 'a'); is line 1 a header? Then bind"
        ' csv_input.header = True',
    )


if __name__ == '__main__':
  tf.test.main()
