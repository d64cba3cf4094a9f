"""Reading a module directory: tfhub_module.pb, saved_model.pb, variables/, assets/."""

import os

import tensorflow as tf
from google.protobuf import message as proto_message
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from hub_estimator.format import protos

# pylint: disable=unused-import
from hub_estimator.format.names import (
    ASSET_FILEPATHS_KEY,
    ASSET_PLACEHOLDER_VALUE,
    ASSETS_DIRNAME,
    MODULE_DEF_FILENAME,
    SAVED_MODEL_ASSETS_KEY,
    SAVED_MODEL_FILENAME,
    VARIABLES_BASENAME,
    VARIABLES_DIRNAME,
    variables_prefix,
)

# pylint: enable=unused-import


class ModuleFormatError(ValueError):
  """A module directory is missing files, is corrupt or uses an unsupported format."""


# Every variable is read back (which verifies the CRC32C checksums the
# checkpoint stores per tensor) when the data files of a module total at most
# this many bytes; larger modules get the size check only. Reading back costs
# about 5 ms per MiB (measured on a 40 MB module, 2 busy CPU cores), so this
# bounds the extra load time near 80 ms.
CHECKSUM_MAX_BYTES = 16 << 20


def _first_line(error):
  text = str(getattr(error, "message", None) or error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def find_variables_error(module_dir):
  """Checks `variables/` against its index: shards present, sizes, checksums.

  A truncated or corrupt data shard otherwise fails only when a session
  restores it ("Read less bytes than requested"), naming neither the module
  nor the file. Checked: the index opens; every data shard it implies
  exists; the shards hold at least the bytes the index's numeric tensors
  need; and (up to `CHECKSUM_MAX_BYTES`) every tensor reads back with a
  matching checksum.

  Args:
    module_dir: the module folder.

  Returns:
    A message naming the module and the exact file, or None (also when the
    module has no `variables/variables.index`: modules without variables
    have none, and instantiation reports it missing when variables need it).
  """
  prefix = variables_prefix(module_dir)
  index = prefix + ".index"
  if not tf.io.gfile.exists(index):
    return None
  try:
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
  except (tf.errors.OpError, ValueError, RuntimeError) as e:
    return "Module %s: cannot read the variables index %s: %s" % (
        module_dir,
        index,
        _first_line(e),
    )
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  shards = sorted(tf.io.gfile.glob(prefix + ".data-*-of-*"))
  if not shards:
    return (
        "Module %s is missing variable data: %s.data-00000-of-00001 (%s "
        "lists %d variables)." % (module_dir, prefix, index, len(shapes))
    )
  total = int(shards[0].rsplit("-of-", 1)[1])
  expected = ["%s.data-%05d-of-%05d" % (prefix, i, total) for i in range(total)]
  missing = sorted(set(expected) - set(shards))
  if missing:
    return "Module %s is missing variable data: %s." % (
        module_dir,
        ", ".join(missing),
    )
  files = expected[0] if total == 1 else "the data files " + ", ".join(expected)
  numeric_bytes = 0
  for name, shape in shapes.items():
    if dtypes[name] != tf.string:
      count = 1
      for dim in shape:
        count *= dim
      numeric_bytes += count * dtypes[name].size
  stored_bytes = sum(tf.io.gfile.stat(path).length for path in expected)
  if stored_bytes < numeric_bytes:
    return (
        "Module %s: variable data is truncated: %s hold %d bytes, but %s "
        "describes %d bytes of tensors."
        % (
            module_dir,
            files,
            stored_bytes,
            index,
            numeric_bytes,
        )
    )
  if stored_bytes <= CHECKSUM_MAX_BYTES:
    for name in sorted(shapes):
      try:
        reader.get_tensor(name)
      except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as e:
        return "Module %s: variable %r in %s is corrupt: %s" % (
            module_dir,
            name,
            files,
            _first_line(e),
        )
  return None


def _read_bytes(path):
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def read_module_def(module_dir):
  """Reads and checks `tfhub_module.pb`.

  Raises:
    tf.errors.NotFoundError: if the directory does not exist.
    ModuleFormatError: if it is not a TF1 Hub module or uses an unsupported format.
  """
  if not tf.io.gfile.isdir(module_dir):
    raise tf.errors.NotFoundError(
        None,
        None,
        "Module directory %r does not exist or is not a directory."
        % module_dir,
    )
  module_def_path = os.path.join(module_dir, MODULE_DEF_FILENAME)
  if not tf.io.gfile.exists(module_def_path):
    if tf.io.gfile.exists(os.path.join(module_dir, SAVED_MODEL_FILENAME)):
      raise ModuleFormatError(
          "%r is a plain SavedModel, not a TF1 Hub module: it has"
          " saved_model.pb but no %s. Load it with tf.saved_model.load (TF2) or"
          " tf.compat.v1.saved_model.load instead."
          % (module_dir, MODULE_DEF_FILENAME)
      )
    raise ModuleFormatError(
        "%r is not a TF1 Hub module: %s is missing (found: %s)."
        % (
            module_dir,
            MODULE_DEF_FILENAME,
            sorted(tf.io.gfile.listdir(module_dir)),
        )
    )
  try:
    module_def = protos.ModuleDef.FromString(_read_bytes(module_def_path))
  except proto_message.DecodeError as e:
    raise ModuleFormatError(
        "Cannot parse file %r as a ModuleDef: %s" % (module_def_path, e)
    ) from None
  if module_def.format != protos.FORMAT_V3:
    raise ModuleFormatError(
        "Unsupported module def format: %d in %r (only FORMAT_V3 = 3 is "
        "supported)." % (module_def.format, module_def_path)
    )
  if module_def.required_features:
    raise ModuleFormatError(
        "Unsupported features: %s required by %r; this version of hub_estimator"
        " supports none."
        % (list(module_def.required_features), module_def_path)
    )
  return module_def


def read_saved_model(module_dir):
  """Reads `saved_model.pb` and points its asset constants into `assets/`.

  Raises:
    ModuleFormatError: if the file is missing or cannot be parsed.
  """
  path = os.path.join(module_dir, SAVED_MODEL_FILENAME)
  if not tf.io.gfile.exists(path):
    raise ModuleFormatError(
        "Module %r is missing %s." % (module_dir, SAVED_MODEL_FILENAME)
    )
  saved_model = saved_model_pb2.SavedModel()
  try:
    saved_model.ParseFromString(_read_bytes(path))
  except proto_message.DecodeError as e:
    raise ModuleFormatError(
        "Cannot parse file %r as a SavedModel: %s" % (path, e)
    ) from None
  if not saved_model.meta_graphs:
    raise ModuleFormatError("%r holds no graphs." % path)
  assets_dir = os.path.join(module_dir, ASSETS_DIRNAME)
  for meta_graph in saved_model.meta_graphs:
    _resolve_asset_paths(meta_graph, assets_dir, path)
  return saved_model


def _stays_inside(relative_name):
  """True if a relative file name cannot leave the folder it is joined to."""
  if (
      not relative_name
      or os.path.isabs(relative_name)
      or "://" in relative_name
  ):
    return False
  normalized = os.path.normpath(relative_name)
  return normalized != ".." and not normalized.startswith(".." + os.sep)


def find_escaping_asset_error(asset_path, module_dir):
  """Says so if an asset file resolves (through symlinks) outside its module.

  A module folder is a unit that is copied, published and trusted as a
  whole; an asset that is a symlink to a file elsewhere would make consumers
  read, and re-exports copy, a file that is not part of it. Paths on remote
  filesystems (`gs://...`) have no symlinks and are not checked.

  Args:
    asset_path: the asset file, under `module_dir/assets/`.
    module_dir: the module folder.

  Returns:
    A message naming the asset, where it resolves to and the module, or None.
  """
  if "://" in asset_path:
    return None
  real = os.path.realpath(asset_path)
  root = os.path.realpath(module_dir)
  if os.path.commonpath([real, root]) == root:
    return None
  return (
      "Asset file %s of module %r resolves to %s, outside the module (through "
      "a symlink); refusing to use it. Copy the file into the module's "
      "assets/ folder instead of linking it." % (asset_path, module_dir, real)
  )


def _resolve_asset_paths(meta_graph, assets_dir, source):
  if SAVED_MODEL_ASSETS_KEY not in meta_graph.collection_def:
    return
  nodes = {node.name: node for node in meta_graph.graph_def.node}
  for any_proto in meta_graph.collection_def[
      SAVED_MODEL_ASSETS_KEY
  ].any_list.value:
    asset = meta_graph_pb2.AssetFileDef()
    any_proto.Unpack(asset)
    if not _stays_inside(asset.filename):
      raise ModuleFormatError(
          "Asset filename (%s) points outside assets_dir %r in %r."
          % (asset.filename, assets_dir, source)
      )
    filename = os.path.join(assets_dir, asset.filename)
    if not tf.io.gfile.exists(filename):
      raise ModuleFormatError(
          "Asset file %s of module %r is missing."
          % (filename, os.path.dirname(assets_dir))
      )
    problem = find_escaping_asset_error(filename, os.path.dirname(assets_dir))
    if problem:
      raise ModuleFormatError(problem)
    node = nodes.get(asset.tensor_info.name.split(":")[0])
    if node is None:
      raise ModuleFormatError(
          "Asset tensor %r named in %r is not in the graph."
          % (asset.tensor_info.name, source)
      )
    node.attr["value"].tensor.string_val[:] = [filename.encode("utf-8")]
  del meta_graph.collection_def[SAVED_MODEL_ASSETS_KEY]
