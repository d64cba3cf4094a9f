"""input_fn factories: numpy arrays, CSV, TFRecord, and built-in offline data.

Every factory is gin-configurable and returns a plain `input_fn()` that
builds a `tf.data.Dataset` of `(features, labels)`. Bind them in gin under the
`train/` and `eval/` scopes, e.g. `run.train_input_fn = @train/digits_input()`.

The input_fns over files also carry two checks (plain function attributes,
each returning a message naming the file, or None):
`input_fn.find_input_error()` (before training: the files exist, are
readable, hold a record, and TFRecord files are not truncated) and
`input_fn.find_data_error(check=None)` (after TensorFlow reported a data
error: the first record that fails to read, or that `check` rejects, as a
`data_files.BadRecord` naming the file and row or record).
"""

import dataclasses
import os
import re
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import gin
import numpy as np
import tensorflow as tf

from hub_estimator import checks
from hub_estimator.models import data_files

InputFn = Callable[[], tf.data.Dataset]

_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')

_SPLITS = ('train', 'eval')


def _check_split(split: str, key: str) -> None:
  if split not in _SPLITS:
    raise ValueError(f'{key} must be one of {list(_SPLITS)}; got {split!r}.')


def _finish(
    dataset: tf.data.Dataset,
    batch_size: int,
    num_epochs: Optional[int],
    shuffle: bool,
    seed: Optional[int],
    shuffle_buffer: int,
) -> tf.data.Dataset:
  """Shuffles, repeats, batches and prefetches an unbatched dataset."""
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed)
  dataset = dataset.repeat(num_epochs)
  dataset = dataset.batch(batch_size)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _from_arrays(
    features: Mapping[str, np.ndarray],
    labels: Optional[np.ndarray],
    batch_size: int,
    num_epochs: Optional[int],
    shuffle: bool,
    seed: Optional[int],
) -> tf.data.Dataset:
  tensors = (dict(features),) if labels is None else (dict(features), labels)
  dataset = tf.data.Dataset.from_tensor_slices(tensors)
  n = len(next(iter(features.values())))
  return _finish(dataset, batch_size, num_epochs, shuffle, seed, n)


# ------------------------------------------------------------------- numpy --


@gin.configurable
def numpy_input(
    x: Union[str, Mapping[str, Any], np.ndarray, Sequence[Any]],
    y: Union[str, np.ndarray, Sequence[Any], None] = None,
    feature_key: str = 'x',
    batch_size: int = 32,
    num_epochs: Optional[int] = None,
    shuffle: bool = True,
    seed: Optional[int] = 0,
) -> InputFn:
  """Returns an input_fn over in-memory arrays or a `.npz` file.

  Args:
    x: the features: a dict of arrays (one per feature), one array (named
      `feature_key`), or the path of a `.npz` file; with a file, every array
      except `y` becomes a feature.
    y: the labels: an array, or the name of an array in the `.npz` file; None
      means the dataset yields features only. float64 arrays (features or
      labels) are cast to float32.
    feature_key: the feature name used when `x` is a single array.
    batch_size: examples per batch.
    num_epochs: passes over the data; None means repeat forever.
    shuffle: whether to shuffle examples.
    seed: shuffle seed; None means nondeterministic.

  Returns:
    An input_fn yielding `(features, labels)` batches.

  Raises:
    ValueError: arrays have different lengths, `y` names a missing array, or
      the `.npz` file cannot be read (the message names it).
  """
  checks.check_positive(batch_size, 'numpy_input.batch_size')
  if isinstance(x, str):
    try:
      with np.load(x) as data:
        arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, AttributeError) as e:
      # AttributeError: np.load of a .npy file returns an array (no .files).
      raise ValueError(
          f'numpy_input.x={x!r} cannot be read as a .npz file:'
          f' {type(e).__name__}: {e}'
      ) from e
    if isinstance(y, str):
      if y not in arrays:
        raise ValueError(
            f'numpy_input.y={y!r} is not an array of {x}; it has'
            f' {sorted(arrays)}.'
        )
      y = arrays.pop(y)
    features = arrays
  elif isinstance(x, Mapping):
    features = {k: np.asarray(v) for k, v in x.items()}
  else:
    features = {feature_key: np.asarray(x)}
  labels = None if y is None else np.asarray(y)
  # Python floats (e.g. lists in gin) arrive as float64; models use float32.
  features = {
      k: v.astype(np.float32) if v.dtype == np.float64 else v
      for k, v in features.items()
  }
  if labels is not None and labels.dtype == np.float64:
    labels = labels.astype(np.float32)
  lengths = {k: len(v) for k, v in features.items()}
  if labels is not None:
    lengths['<labels>'] = len(labels)
  if len(set(lengths.values())) != 1:
    raise ValueError(
        f'numpy_input: arrays must have the same length; got {lengths}.'
    )

  def input_fn():
    return _from_arrays(features, labels, batch_size, num_epochs, shuffle, seed)

  return input_fn


# --------------------------------------------------------------------- CSV --


_CSV_DTYPES = {'float32': 0.0, 'int64': 0, 'string': ''}


def _csv_defaults(column_types: Sequence[str]) -> list:
  """CsvDataset record defaults: numbers required, strings default to ''.

  A number column has no default (an empty tensor), so an empty field fails
  ("Field 3 is required but missing") instead of reading as 0: an empty
  label would otherwise silently be class 0. An empty string field is an
  empty string.
  """
  return [
      tf.constant([''] if t == 'string' else [], dtype=tf.as_dtype(t))
      for t in column_types
  ]


def _csv_field_detail(message: str, column_names: Sequence[str]) -> str:
  """' (field 3 is column 'p3')' for TensorFlow's "Field 3 ..." (0-based)."""
  match = re.search(r'\bField (\d+)\b', message)
  if not match or int(match.group(1)) >= len(column_names):
    return ''
  index = int(match.group(1))
  return f' (field {index} is column {column_names[index]!r})'


@gin.configurable
def csv_input(
    file_pattern: str,
    column_names: Sequence[str],
    column_types: Sequence[str],
    label_key: Optional[str] = None,
    packed_features: Optional[Mapping[str, Sequence[str]]] = None,
    header: bool = True,
    field_delim: str = ',',
    batch_size: int = 32,
    num_epochs: Optional[int] = None,
    shuffle: bool = True,
    seed: Optional[int] = 0,
    shuffle_buffer: int = 10000,
) -> InputFn:
  """Returns an input_fn over CSV files.

  Args:
    file_pattern: glob of CSV files.
    column_names: the name of every column, in file order.
    column_types: for each column one of `float32`, `int64`, `string`.
    label_key: the column used as labels; None means no labels.
    packed_features: optional map from a new feature name to columns that are
      stacked (as float32) into one vector feature, e.g. `{'x': ['p0', 'p1']}`;
      the packed columns are removed. None means each column is a feature.
    header: whether each file starts with a header line to skip.
    field_delim: the field separator.
    batch_size: examples per batch.
    num_epochs: passes over the data; None means repeat forever.
    shuffle: whether to shuffle files and examples.
    seed: shuffle seed; None means nondeterministic.
    shuffle_buffer: examples held in the shuffle buffer.

  Returns:
    An input_fn yielding `(features, labels)` batches.

  Raises:
    ValueError: the columns and types disagree, or a name is unknown.
  """
  column_names = list(column_names)
  column_types = list(column_types)
  if len(column_names) != len(column_types):
    raise ValueError(
        'csv_input.column_names and csv_input.column_types must have the same'
        f' length; got {len(column_names)} and {len(column_types)}.'
    )
  bad = [t for t in column_types if t not in _CSV_DTYPES]
  if bad:
    raise ValueError(
        f'csv_input.column_types must be among {sorted(_CSV_DTYPES)}; got'
        f' {bad}.'
    )
  if label_key is not None and label_key not in column_names:
    raise ValueError(
        f'csv_input.label_key={label_key!r} is not a column; columns are'
        f' {column_names}.'
    )
  packed = {k: list(v) for k, v in (packed_features or {}).items()}
  for name, cols in packed.items():
    missing = [c for c in cols if c not in column_names]
    if missing:
      raise ValueError(
          f'csv_input.packed_features[{name!r}] names unknown columns'
          f' {missing}; columns are {column_names}.'
      )

  def parse(*fields):
    row = dict(zip(column_names, fields))
    label = row.pop(label_key) if label_key is not None else None
    for name, cols in packed.items():
      row[name] = tf.stack([tf.cast(row.pop(c), tf.float32) for c in cols])
    return row if label is None else (row, label)

  def input_fn():
    # Built here, in the input_fn's graph (the factory may run eagerly).
    defaults = _csv_defaults(column_types)
    files = tf.data.Dataset.list_files(file_pattern, shuffle=shuffle, seed=seed)
    dataset = files.interleave(
        lambda f: tf.data.experimental.CsvDataset(
            f, defaults, header=header, field_delim=field_delim
        ),
        cycle_length=1,
    )
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(
        dataset, batch_size, num_epochs, shuffle, seed, shuffle_buffer
    )

  def one_file(path):
    return tf.data.experimental.CsvDataset(
        path,
        _csv_defaults(column_types),
        header=header,
        field_delim=field_delim,
    ).map(parse)

  def row_name(n):
    return f'row {n} (line {n + 1 if header else n})'

  input_fn.find_input_error = lambda: data_files.find_files_error(
      file_pattern,
      'csv_input.file_pattern',
      'csv',
      header=header,
      column_names=column_names,
      field_delim=field_delim,
  )

  def find_data_error(check=None):
    bad = data_files.locate_bad_record(
        data_files.match_files(file_pattern, 'csv_input.file_pattern'),
        one_file,
        row_name,
        check,
    )
    if bad is None:
      return None
    detail = _csv_field_detail(bad.message, column_names)
    if (
        not header
        and bad.record == row_name(1)
        and 'not a valid' in bad.message
    ):
      detail += '; is line 1 a header? Then bind csv_input.header = True'
    return dataclasses.replace(bad, detail=detail)

  input_fn.find_data_error = find_data_error
  return input_fn


# ---------------------------------------------------------------- TFRecord --


def make_feature_spec(
    spec: Mapping[str, Sequence[Any]],
) -> dict:
  """Builds a `tf.io.parse_example` spec from a gin-friendly description.

  Args:
    spec: map from feature name to `(dtype, shape)` for a FixedLenFeature,
      `(dtype, shape, default)` to give a default value, or `(dtype, None)` for
      a VarLenFeature (parsed as a SparseTensor). dtype is `float32`, `int64`
      or `string`.

  Returns:
    A dict of `tf.io.FixedLenFeature` / `tf.io.VarLenFeature`.

  Raises:
    ValueError: an entry is malformed (the message names the feature).
  """
  result = {}
  for name, entry in spec.items():
    entry = list(entry)
    if len(entry) not in (2, 3) or entry[0] not in _CSV_DTYPES:
      raise ValueError(
          f'feature_spec[{name!r}] must be (dtype, shape[, default]) with'
          f' dtype among {sorted(_CSV_DTYPES)}; got {entry!r}.'
      )
    dtype = tf.as_dtype(entry[0])
    if entry[1] is None:
      result[name] = tf.io.VarLenFeature(dtype)
    else:
      default = entry[2] if len(entry) == 3 else None
      result[name] = tf.io.FixedLenFeature(list(entry[1]), dtype, default)
  return result


@gin.configurable
def tfrecord_input(
    file_pattern: str,
    feature_spec: Mapping[str, Sequence[Any]],
    label_key: Optional[str] = None,
    compression_type: Optional[str] = None,
    batch_size: int = 32,
    num_epochs: Optional[int] = None,
    shuffle: bool = True,
    seed: Optional[int] = 0,
    shuffle_buffer: int = 10000,
) -> InputFn:
  """Returns an input_fn over TFRecord files of serialized `tf.train.Example`.

  Args:
    file_pattern: glob of TFRecord files.
    feature_spec: what to parse; see `make_feature_spec` (e.g.
      `{'x': ('float32', [64]), 'label': ('int64', [])}`).
    label_key: the parsed feature used as labels; None means no labels.
    compression_type: `GZIP`, `ZLIB`, or None for uncompressed files.
    batch_size: examples per batch.
    num_epochs: passes over the data; None means repeat forever.
    shuffle: whether to shuffle files and examples.
    seed: shuffle seed; None means nondeterministic.
    shuffle_buffer: examples held in the shuffle buffer.

  Returns:
    An input_fn yielding `(features, labels)` batches.

  Raises:
    ValueError: the feature spec is malformed or lacks `label_key`.
  """
  parse_spec = make_feature_spec(feature_spec)
  if label_key is not None and label_key not in parse_spec:
    raise ValueError(
        f'tfrecord_input.label_key={label_key!r} is not in feature_spec'
        f' {sorted(parse_spec)}.'
    )

  def parse(serialized):
    features = tf.io.parse_example(serialized, parse_spec)
    if label_key is None:
      return features
    label = features.pop(label_key)
    return features, label

  def input_fn():
    files = tf.data.Dataset.list_files(file_pattern, shuffle=shuffle, seed=seed)
    dataset = tf.data.TFRecordDataset(files, compression_type=compression_type)
    if shuffle:
      dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    dataset = dataset.repeat(num_epochs).batch(batch_size)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)

  def one_file(path):
    records = tf.data.TFRecordDataset(path, compression_type=compression_type)
    return records.map(lambda r: parse(tf.expand_dims(r, 0)))

  input_fn.find_input_error = lambda: data_files.find_files_error(
      file_pattern,
      'tfrecord_input.file_pattern',
      'tfrecord',
      compression_type=compression_type,
  )
  input_fn.find_data_error = lambda check=None: data_files.locate_bad_record(
      data_files.match_files(file_pattern, 'tfrecord_input.file_pattern'),
      one_file,
      lambda n: f'record {n}',
      check,
  )
  return input_fn


# ------------------------------------------------------- built-in: digits --


def _digit_labels(target: np.ndarray, task: str) -> np.ndarray:
  tasks = {
      'digit': lambda t: t.astype(np.int64),
      'parity': lambda t: (t % 2).astype(np.int64),
      'attributes': (
          lambda t: np.stack([t % 2 == 0, t >= 5], 1).astype(np.float32)
      ),
      'value': lambda t: (t.astype(np.float32) / 9.0)[:, None],
  }
  if task not in tasks:
    raise ValueError(
        f'digits_input.task must be one of {sorted(tasks)}; got {task!r}.'
    )
  return tasks[task](target)


def load_digits(
    split: str, eval_fraction: float = 0.2, task: str = 'digit'
) -> Tuple[np.ndarray, np.ndarray]:
  """Returns scikit-learn's bundled 8x8 digits (no download), split in two.

  Args:
    split: `train` or `eval`; the split is fixed (seeded) for every run.
    eval_fraction: share of the 1797 examples held out for `eval`.
    task: the labels: `digit` (int 0-9), `parity` (int 0/1), `attributes`
      (float multi-hot [is_even, is_at_least_5]), or `value` (float digit/9).

  Returns:
    `(images, labels)`: float32 pixels in [0, 1] of shape [n, 64], labels.
  """
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  _check_split(split, 'digits_input.split')
  if not 0.0 < eval_fraction < 1.0:
    raise ValueError(
        f'digits_input.eval_fraction must be in (0, 1); got {eval_fraction}.'
    )
  digits = datasets.load_digits()
  order = np.random.RandomState(0).permutation(len(digits.target))
  n_eval = int(round(len(order) * eval_fraction))
  index = order[n_eval:] if split == 'train' else order[:n_eval]
  images = (digits.data[index] / 16.0).astype(np.float32)
  return images, _digit_labels(digits.target[index], task)


@gin.configurable
def digits_input(
    split: str = 'train',
    feature_key: str = 'x',
    as_images: bool = False,
    task: str = 'digit',
    batch_size: int = 64,
    num_epochs: Optional[int] = None,
    shuffle: bool = True,
    seed: Optional[int] = 0,
    eval_fraction: float = 0.2,
    fraction: float = 1.0,
) -> InputFn:
  """Returns an input_fn over scikit-learn's bundled digits (offline).

  Args:
    split: `train` or `eval`.
    feature_key: the name of the single pixel feature.
    as_images: False gives vectors of shape [64]; True gives images of shape
      [8, 8, 1].
    task: which labels; see `load_digits`.
    batch_size: examples per batch.
    num_epochs: passes over the data; None means repeat forever.
    shuffle: whether to shuffle examples.
    seed: shuffle seed; None means nondeterministic.
    eval_fraction: share of the data held out for `eval`.
    fraction: share of the split's examples to use, in (0, 1]: its first
      `round(n * fraction)` examples (the split's order is fixed), e.g. 0.1
      for a small target data set (144 of the 1437 training examples).

  Returns:
    An input_fn yielding `({feature_key: pixels}, labels)` batches.
  """
  checks.check_positive(batch_size, 'digits_input.batch_size')
  checks.check_positive(num_epochs, 'digits_input.num_epochs', allow_none=True)
  images, labels = load_digits(split, eval_fraction, task)
  if not 0.0 < fraction <= 1.0:
    raise ValueError(
        f'digits_input.fraction must be in (0, 1]; got {fraction!r}.'
    )
  count = max(1, int(round(len(images) * fraction)))
  images, labels = images[:count], labels[:count]
  if as_images:
    images = images.reshape([-1, 8, 8, 1])

  def input_fn():
    return _from_arrays(
        {feature_key: images}, labels, batch_size, num_epochs, shuffle, seed
    )

  return input_fn


# ------------------------------------------------------- built-in: topics --

# A small synthetic text-classification task, generated deterministically so
# text examples run offline. Each sentence mixes words of its topic with
# common filler words and a few words outside the vocabulary.
TOPIC_WORDS = (
    (
        'goal',
        'match',
        'team',
        'score',
        'player',
        'coach',
        'league',
        'ball',
        'referee',
        'stadium',
        'season',
        'tournament',
    ),
    (
        'bread',
        'cheese',
        'soup',
        'recipe',
        'oven',
        'spice',
        'dinner',
        'salad',
        'butter',
        'kitchen',
        'flavor',
        'dessert',
    ),
    (
        'rain',
        'cloud',
        'storm',
        'sunny',
        'wind',
        'forecast',
        'snow',
        'thunder',
        'humid',
        'breeze',
        'fog',
        'temperature',
    ),
    (
        'guitar',
        'song',
        'melody',
        'drum',
        'concert',
        'album',
        'piano',
        'lyrics',
        'band',
        'chorus',
        'rhythm',
        'violin',
    ),
)
FILLER_WORDS = (
    'the',
    'a',
    'and',
    'of',
    'today',
    'very',
    'with',
    'new',
    'big',
    'was',
)
TOPIC_NAMES = ('sports', 'food', 'weather', 'music')


@gin.configurable
def topics_vocab_file() -> str:
  """Returns the path of the vocabulary file of the built-in topics data."""
  return os.path.join(_DATA_DIR, 'topics_vocab.txt')


def make_topics(num_examples: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """Generates the synthetic topics text data set.

  Args:
    num_examples: sentences to generate.
    seed: the generator seed; each seed gives a fixed data set.

  Returns:
    `(sentences, labels)`: byte strings of shape [n] and int64 topic ids.
  """
  rng = np.random.RandomState(seed)
  sentences, labels = [], []
  for _ in range(num_examples):
    topic = rng.randint(len(TOPIC_WORDS))
    words = []
    for _ in range(rng.randint(4, 10)):
      r = rng.rand()
      if r < 0.55:
        words.append(TOPIC_WORDS[topic][rng.randint(12)])
      elif r < 0.9:
        words.append(FILLER_WORDS[rng.randint(len(FILLER_WORDS))])
      else:
        words.append('unk%d' % rng.randint(50))
    sentences.append(' '.join(words).encode('utf-8'))
    labels.append(topic)
  return np.array(sentences, dtype=object), np.array(labels, dtype=np.int64)


@gin.configurable
def topics_input(
    split: str = 'train',
    feature_key: str = 'text',
    num_examples: Optional[int] = None,
    batch_size: int = 32,
    num_epochs: Optional[int] = None,
    shuffle: bool = True,
    seed: Optional[int] = 0,
) -> InputFn:
  """Returns an input_fn over the built-in synthetic topics text data.

  Args:
    split: `train` (generated with seed 1) or `eval` (seed 2).
    feature_key: the name of the string feature (shape [batch]).
    num_examples: sentences in the split; None means 2000 for train and 400
      for eval.
    batch_size: examples per batch.
    num_epochs: passes over the data; None means repeat forever.
    shuffle: whether to shuffle examples.
    seed: shuffle seed; None means nondeterministic.

  Returns:
    An input_fn yielding `({feature_key: sentences}, topic ids)` batches.
  """
  _check_split(split, 'topics_input.split')
  if num_examples is None:
    num_examples = 2000 if split == 'train' else 400
  checks.check_positive(num_examples, 'topics_input.num_examples')
  sentences, labels = make_topics(num_examples, 1 if split == 'train' else 2)

  def input_fn():
    return _from_arrays(
        {feature_key: sentences}, labels, batch_size, num_epochs, shuffle, seed
    )

  return input_fn
