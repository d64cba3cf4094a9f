"""Writing a module directory: assets first, then variables, saved_model.pb, tfhub_module.pb."""

import os

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.lib.io import file_io

from hub_estimator.format import protos
from hub_estimator.format.saved_model_io import (
    ASSET_FILEPATHS_KEY,
    ASSET_PLACEHOLDER_VALUE,
    ASSETS_DIRNAME,
    MODULE_DEF_FILENAME,
    SAVED_MODEL_ASSETS_KEY,
    SAVED_MODEL_FILENAME,
    VARIABLES_DIRNAME,
    variables_prefix,
)


def _asset_nodes(meta_graph):
  """Returns the Const nodes named in the ASSET_FILEPATHS collection, checked."""
  if ASSET_FILEPATHS_KEY not in meta_graph.collection_def:
    return []
  nodes = {node.name: node for node in meta_graph.graph_def.node}
  result = []
  for tensor_name in meta_graph.collection_def[
      ASSET_FILEPATHS_KEY
  ].node_list.value:
    if not tensor_name.endswith(":0"):
      raise ValueError(
          "Asset tensor %r must be the first output of a constant."
          % tensor_name
      )
    node = nodes.get(tensor_name[:-2])
    if node is None or node.op != "Const":
      raise TypeError("Asset node must be of type constant: %r." % tensor_name)
    tensor = node.attr["value"].tensor
    if tf.as_dtype(node.attr["dtype"].type) != tf.string:
      raise TypeError("Asset node must be of dtype string: %r." % tensor_name)
    if len(tensor.string_val) != 1 or tensor.tensor_shape.dim:
      raise TypeError("Asset node must be a scalar: %r." % tensor_name)
    result.append((tensor_name, node))
  return result


def _export_assets(meta_graphs, assets_dir):
  """Copies asset files into `assets_dir`; rewrites the meta graphs to refer to them."""
  destination_by_source = {}
  used_names = set()
  for meta_graph in meta_graphs:
    asset_defs = []
    for tensor_name, node in _asset_nodes(meta_graph):
      source = node.attr["value"].tensor.string_val[0]
      if source not in destination_by_source:
        base = os.path.basename(source.decode("utf-8"))
        name, suffix = base, 0
        while name in used_names:
          name = "%s%d" % (base, suffix)
          suffix += 1
        used_names.add(name)
        destination_by_source[source] = name
      node.attr["value"].tensor.string_val[:] = [ASSET_PLACEHOLDER_VALUE]
      asset_defs.append(
          meta_graph_pb2.AssetFileDef(
              tensor_info=meta_graph_pb2.TensorInfo(name=tensor_name),
              filename=destination_by_source[source],
          )
      )
    if asset_defs:
      collection = meta_graph.collection_def[SAVED_MODEL_ASSETS_KEY].any_list
      for asset_def in sorted(asset_defs, key=lambda a: a.tensor_info.name):
        collection.value.add().Pack(asset_def)
  tf.io.gfile.makedirs(assets_dir)
  for source, name in sorted(
      destination_by_source.items(), key=lambda kv: kv[1]
  ):
    source_path = source.decode("utf-8")
    if not tf.io.gfile.exists(source_path):
      raise tf.errors.NotFoundError(
          None,
          None,
          "Asset file %r of the module does not exist (anymore)." % source_path,
      )
    tf.io.gfile.copy(
        source_path, os.path.join(assets_dir, name), overwrite=False
    )


def write_module(spec, path, write_variables_fn):
  """Writes a module directory.

  Args:
    spec: the ModuleSpec whose graph variants to write (its asset constants name
      the source files, which are copied).
    path: the directory to create (str or bytes). Must not hold a module already.
    write_variables_fn: called with the checkpoint prefix
      (`<path>/variables/variables`) to write the variables; None if the module
      has none (an empty `variables/` is still created).

  Raises:
    tf.errors.AlreadyExistsError: if `path` already holds a module.
  """
  path = tf.compat.as_str_any(path)
  if tf.io.gfile.exists(os.path.join(path, MODULE_DEF_FILENAME)):
    raise tf.errors.AlreadyExistsError(
        None, None, "A module already exists at %r." % path
    )
  saved_model = saved_model_pb2.SavedModel.FromString(
      spec.saved_model.SerializeToString()
  )
  tf.io.gfile.makedirs(path)
  _export_assets(saved_model.meta_graphs, os.path.join(path, ASSETS_DIRNAME))
  tf.io.gfile.makedirs(os.path.join(path, VARIABLES_DIRNAME))
  if write_variables_fn is not None:
    write_variables_fn(variables_prefix(path))
  file_io.atomic_write_string_to_file(
      os.path.join(path, SAVED_MODEL_FILENAME),
      saved_model.SerializeToString(),
      overwrite=True,
  )
  file_io.atomic_write_string_to_file(
      os.path.join(path, MODULE_DEF_FILENAME),
      protos.ModuleDef(format=protos.FORMAT_V3).SerializeToString(),
      overwrite=False,
  )


def write_checkpoint(prefix, entries):
  """Writes a V2 checkpoint (`prefix.index`, `prefix.data-*`) from numpy values.

  Uses a graph of its own, so nothing is added to the caller's graph.

  Args:
    prefix: the checkpoint prefix.
    entries: list of (key, slice_spec, dtype, value); slice_spec is "" for a
      whole tensor or a partition's "full_shape offset,length:..." spec.
  """
  with tf.Graph().as_default():
    placeholders = [
        tf.compat.v1.placeholder(dtype, name="value_%d" % i)
        for i, (_, _, dtype, _) in enumerate(entries)
    ]
    save = tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=[key for key, _, _, _ in entries],
        shape_and_slices=[spec for _, spec, _, _ in entries],
        tensors=placeholders,
    )
    with tf.compat.v1.Session() as session:
      session.run(
          save,
          feed_dict={
              p: value for p, (_, _, _, value) in zip(placeholders, entries)
          },
      )
