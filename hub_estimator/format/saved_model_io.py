"""Reading a module directory: tfhub_module.pb, saved_model.pb, variables/, assets/."""

import os

import tensorflow as tf
from google.protobuf import message as proto_message
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from hub_estimator.format import protos

MODULE_DEF_FILENAME = "tfhub_module.pb"
SAVED_MODEL_FILENAME = "saved_model.pb"
VARIABLES_DIRNAME = "variables"
VARIABLES_BASENAME = "variables"
ASSETS_DIRNAME = "assets"

ASSET_FILEPATHS_KEY = tf.compat.v1.GraphKeys.ASSET_FILEPATHS
SAVED_MODEL_ASSETS_KEY = "saved_model_assets"
ASSET_PLACEHOLDER_VALUE = b"SAVEDMODEL-ASSET"


class ModuleFormatError(ValueError):
  """A module directory is missing files, is corrupt or uses an unsupported format."""


def variables_prefix(module_dir):
  """Returns the checkpoint prefix of a module directory's variables."""
  return os.path.join(module_dir, VARIABLES_DIRNAME, VARIABLES_BASENAME)


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
    node = nodes.get(asset.tensor_info.name.split(":")[0])
    if node is None:
      raise ModuleFormatError(
          "Asset tensor %r named in %r is not in the graph."
          % (asset.tensor_info.name, source)
      )
    node.attr["value"].tensor.string_val[:] = [filename.encode("utf-8")]
  del meta_graph.collection_def[SAVED_MODEL_ASSETS_KEY]
