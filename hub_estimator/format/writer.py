"""Writing a module directory: assets first, then variables, saved_model.pb, tfhub_module.pb.

Also the one copy of variable values from a checkpoint into a module's
`variables/` (`CheckpointCopy`), used by `ModuleSpec.export` and by the
exporters' export core.
"""

import os
from typing import NamedTuple, Optional, Sequence, Tuple

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
    ModuleFormatError,
    SAVED_MODEL_ASSETS_KEY,
    SAVED_MODEL_FILENAME,
    VARIABLES_DIRNAME,
    find_escaping_asset_error,
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
  for source in destination_by_source:
    # An asset of a loaded module (its `assets/` folder beside a
    # tfhub_module.pb) is re-checked here: a symlink out of that module,
    # made after it was loaded, must not copy an outside file into this one.
    source_path = source.decode("utf-8")
    source_assets = os.path.dirname(source_path)
    source_module = os.path.dirname(source_assets)
    if os.path.basename(source_assets) == ASSETS_DIRNAME and tf.io.gfile.exists(
        os.path.join(source_module, MODULE_DEF_FILENAME)
    ):
      problem = find_escaping_asset_error(source_path, source_module)
      if problem:
        raise ModuleFormatError(problem)
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


class VariableEntry(NamedTuple):
  """One tensor (or partition) to copy from a checkpoint into a module.

  Attributes:
    module_key: its key in the module's checkpoint (the module-relative
      variable name; a partitioned variable's full name).
    checkpoint_key: its key in the source checkpoint.
    slice_spec: "" for a whole tensor, else the partition's slice spec
      ("full_shape offset,length:...", as `tf.Variable.SaveSliceInfo.spec`).
    dtype: the base dtype.
    shape: the full shape (None entries where unknown).
  """

  module_key: str
  checkpoint_key: str
  slice_spec: str
  dtype: tf.DType
  shape: Tuple[Optional[int], ...]


class CheckpointCopy:
  """Copies fixed `entries` from checkpoints into module checkpoints.

  One RestoreV2 -> SaveV2 run in a cached session of its own graph: the
  tensors go straight from the source checkpoint to the module checkpoint
  under their module keys, without a session on a model graph.
  """

  def __init__(self, entries: Sequence[VariableEntry], what: str):
    """Creates the copy.

    Args:
      entries: the tensors to copy.
      what: names the module in error messages, e.g. "module 'embedding'".
    """
    self._entries = tuple(entries)
    self._what = what
    self._checked = False
    self._copy = None  # (session, source placeholder, target placeholder, op)

  @property
  def entries(self) -> Tuple[VariableEntry, ...]:
    return self._entries

  def check(self, checkpoint_path: str) -> None:
    """Raises ValueError naming a variable missing or different in a checkpoint.

    Checked once per `CheckpointCopy`: the later checkpoints of one run have
    the same keys, dtypes and shapes.
    """
    if self._checked:
      return
    checkpoint_path = tf.compat.as_str_any(checkpoint_path)
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_path)
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    for entry in self._entries:
      if entry.checkpoint_key not in dtypes:
        raise ValueError(
            "Variable %r, which %s needs (as %r), is not found in checkpoint"
            " %s. Details: the module variables must be saved under these"
            " keys (the graph names, for an estimator's checkpoints)."
            % (
                entry.checkpoint_key,
                self._what,
                entry.module_key,
                checkpoint_path,
            )
        )
      if dtypes[entry.checkpoint_key] != entry.dtype or (
          None not in entry.shape
          and tuple(shapes[entry.checkpoint_key]) != entry.shape
      ):
        raise ValueError(
            "Checkpoint %s stores %r as %s%s but %s expects %s%s."
            % (
                checkpoint_path,
                entry.checkpoint_key,
                dtypes[entry.checkpoint_key].name,
                list(shapes[entry.checkpoint_key]),
                self._what,
                entry.dtype.name,
                list(entry.shape),
            )
        )
    self._checked = True

  def write(self, checkpoint_path: str, variables_prefix: str) -> None:
    """Writes the module checkpoint at `variables_prefix` from a checkpoint."""
    variables_prefix = tf.compat.as_str_any(variables_prefix)
    tf.io.gfile.makedirs(os.path.dirname(variables_prefix))
    if not self._entries:
      return  # No variables: an empty variables/ folder, as tensorflow_hub.
    if self._copy is None:
      graph = tf.Graph()
      with graph.as_default():
        source = tf.compat.v1.placeholder(tf.string, [], name="checkpoint")
        target = tf.compat.v1.placeholder(tf.string, [], name="module")
        tensors = tf.raw_ops.RestoreV2(
            prefix=source,
            tensor_names=[e.checkpoint_key for e in self._entries],
            shape_and_slices=[e.slice_spec for e in self._entries],
            dtypes=[e.dtype for e in self._entries],
        )
        save = tf.raw_ops.SaveV2(
            prefix=target,
            tensor_names=[e.module_key for e in self._entries],
            shape_and_slices=[e.slice_spec for e in self._entries],
            tensors=tensors,
        )
      graph.finalize()
      self._copy = (tf.compat.v1.Session(graph=graph), source, target, save)
    session, source, target, save = self._copy
    session.run(
        save,
        feed_dict={
            source: tf.compat.as_str_any(checkpoint_path),
            target: variables_prefix,
        },
    )

  def write_module(self, spec, path, checkpoint_path: str) -> None:
    """Checks the checkpoint, then writes `spec` to `path` with its values.

    Raises:
      ValueError: the checkpoint lacks a variable or stores it differently.
      tf.errors.AlreadyExistsError: `path` already holds a module.
    """
    self.check(checkpoint_path)
    write_module(spec, path, lambda prefix: self.write(checkpoint_path, prefix))

  def close(self) -> None:
    """Releases the cached session."""
    if self._copy is not None:
      self._copy[0].close()
      self._copy = None
