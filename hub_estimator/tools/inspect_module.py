"""Shows what a TF1 Hub module holds, and whether it loads under the op policy.

Usage:
  python -m hub_estimator.tools.inspect_module PATH [PATH ...]
  python -m hub_estimator.tools.inspect_module --json PATH

Reads the module's files only; it never imports or runs the module's graph.
Exit status: 0 when every module loads under the default op policy
(`load_module_spec(path)` succeeds), 1 otherwise (refused ops, or a file that
is missing or corrupt), 2 for a usage error.

The `--json` document (`SCHEMA_VERSION` 1; fields are only ever added):

  {
    "schema_version": 1,
    "path": "/abs/module",
    "loadable": true,            # load_module_spec(path) succeeds
    "error": null,               # why it does not load (a message), or null
    "format": {"module_def_format": 3, "required_features": []},
    "graph_variants": [{
      "tags": ["train"],
      "tensorflow_version": "2.15.1",      # who wrote the graph ("" unknown)
      "num_nodes": 123,                    # nodes of the graph itself
      "functions": ["f_1"],                # its function library
      "signatures": {"default": {
        "inputs": {"x": TENSOR}, "outputs": {"default": TENSOR}}},
      "regularization_losses": ["l2/Mul:0"],
      "update_ops": ["bn/AssignMovingAvg"],
      "attached_messages": {"image_module_info": ATTACHMENT},
      "op_histogram": {"MatMul": 2},          # graph nodes by op type
      "function_op_histogram": {"ReadFile": 1} # nodes inside functions
    }],
    "variables": [{"name": "dense/kernel", "shape": [64, 16],
                   "dtype": "float32", "bytes": 4096, "trainable": true}],
    "assets": [{"name": "vocab.txt", "bytes": 42, "sha256": "..."}],
    "provenance": {...} or null,   # ../export_metadata.json of an export
    "op_policy": {"verdict": "allowed" | "refused", "refused": [{
      "tags": [], "function": null, "node": "n", "op": "ReadFile",
      "kind": "file read", "why": "reads a file that is not ..."}]}
                                # why: the reason, with the attr value that
                                # makes it refused when there is one
  }

  TENSOR = {"kind": "dense" | "sparse" | "ragged" | "composite",
            "dtype": "float32", "shape": [null, 3] (null: unknown rank),
            "ragged_rank": 1 (ragged only),
            "has_default": false (inputs only: callers may leave it out),
            "default": VALUE (inputs with a default: its constant value,
            null when computed in the graph)}
  ATTACHMENT = {"type": "ImageModuleInfo" | "StringValue" | null,
                "value": decoded fields or text, "bytes": size}

`trainable` is whether a variable is in the TRAINABLE_VARIABLES collection of
some graph variant; `bytes` is elements times the dtype's size (the checkpoint
holds that much data for it).
"""

import hashlib
import json
import os
import sys

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from google.protobuf import message as proto_message
from google.protobuf import wrappers_pb2
from tensorflow.core.framework import variable_pb2

from hub_estimator.format import op_policy
from hub_estimator.format import protos
from hub_estimator.format import saved_model_io
from hub_estimator.format import spec as spec_lib
from hub_estimator.format import tensor_info as tensor_info_lib

SCHEMA_VERSION = 1

_GraphKeys = tf.compat.v1.GraphKeys
# Attachment keys the tool decodes, with their message types:
# tensorflow_hub's image module info, and the operative gin config that our
# exporters attach (hub_estimator.export.GIN_CONFIG_ATTACHMENT_KEY).
_ATTACHMENT_TYPES = {
    "image_module_info": protos.ImageModuleInfo,
    "gin_operative_config": wrappers_pb2.StringValue,
}
# The provenance file our exporters write beside the module folders.
_EXPORT_METADATA = "export_metadata.json"
_CHUNK_BYTES = 1 << 20


def _json_value(value):
  """A numpy default value as plain JSON (bytes decoded as UTF-8 if possible)."""
  if value is None:
    return None
  value = np.asarray(value)
  if value.dtype.kind in ("S", "O"):
    return _decode_nested(value.tolist())
  if value.dtype in (np.float16, np.float32):
    # The shortest decimal that reads back as the same value: 0.9, not
    # 0.8999999761581421 (the float32 widened to a Python float).
    shortest = [float(str(x)) for x in value.reshape(-1)]
    return np.array(shortest, dtype=object).reshape(value.shape).tolist()
  return value.tolist()


def _decode_nested(value):
  if isinstance(value, list):
    return [_decode_nested(v) for v in value]
  if isinstance(value, bytes):
    try:
      return value.decode("utf-8")
    except UnicodeDecodeError:
      return value.hex()
  return value


def _shape(shape):
  if shape.rank is None:
    return None
  return shape.as_list()


def describe_tensor(info, is_input):
  """Returns the JSON description of a ParsedTensorInfo (TENSOR above).

  Args:
    info: the ParsedTensorInfo of a signature input or output.
    is_input: whether it is an input (only inputs have `has_default`).
  """
  value_type = info.type_spec.value_type
  if info.is_sparse:
    kind = "sparse"
  elif value_type is tf.RaggedTensor:
    kind = "ragged"
  elif info.is_composite:
    kind = "composite"
  else:
    kind = "dense"
  result = {"kind": kind, "dtype": info.dtype.name}
  result["shape"] = _shape(info.get_shape())
  if kind == "ragged":
    result["ragged_rank"] = info.type_spec.ragged_rank
  if is_input:
    result["has_default"] = bool(info.has_default)
    if info.has_default:
      result["default"] = _json_value(info.default_value)
  return result


def _describe_attachments(meta_graph):
  collection = meta_graph.collection_def.get(spec_lib.ATTACHMENTS_COLLECTION)
  result = {}
  if collection is None:
    return result
  for serialized in collection.bytes_list.value:
    attachment = protos.ModuleAttachment.FromString(serialized)
    entry = {"type": None, "value": None, "bytes": len(attachment.value)}
    message_type = _ATTACHMENT_TYPES.get(attachment.key)
    if message_type is not None:
      try:
        message = message_type.FromString(attachment.value)
      except proto_message.DecodeError:
        message = None
      if isinstance(message, wrappers_pb2.StringValue):
        entry.update(type="StringValue", value=message.value)
      elif message is not None:
        entry.update(
            type=message_type.DESCRIPTOR.name,
            value=json_format.MessageToDict(
                message, preserving_proto_field_name=True
            ),
        )
    result[attachment.key] = entry
  return result


def _node_list(meta_graph, key):
  collection = meta_graph.collection_def.get(key)
  return list(collection.node_list.value) if collection is not None else []


def _histogram(op_types):
  counts = {}
  for op_type in op_types:
    counts[op_type] = counts.get(op_type, 0) + 1
  return dict(sorted(counts.items()))


def _describe_variant(spec, tags):
  meta_graph = spec.get_meta_graph(tags)
  graph_def = meta_graph.graph_def
  signatures = {}
  for name in sorted(spec.get_signature_names(tags)):
    signatures[name] = {
        "inputs": {
            key: describe_tensor(info, is_input=True)
            for key, info in sorted(
                spec.get_input_info_dict(name, tags).items()
            )
        },
        "outputs": {
            key: describe_tensor(info, is_input=False)
            for key, info in sorted(
                spec.get_output_info_dict(name, tags).items()
            )
        },
    }
  return {
      "tags": sorted(tags),
      "tensorflow_version": meta_graph.meta_info_def.tensorflow_version,
      "num_nodes": len(graph_def.node),
      "functions": sorted(f.signature.name for f in graph_def.library.function),
      "signatures": signatures,
      "regularization_losses": _node_list(
          meta_graph, _GraphKeys.REGULARIZATION_LOSSES
      ),
      "update_ops": _node_list(meta_graph, _GraphKeys.UPDATE_OPS),
      "attached_messages": _describe_attachments(meta_graph),
      "op_histogram": _histogram(node.op for node in graph_def.node),
      "function_op_histogram": _histogram(
          node.op
          for function in graph_def.library.function
          for node in function.node_def
      ),
  }


def _trainable_names(saved_model):
  names = set()
  for meta_graph in saved_model.meta_graphs:
    collection = meta_graph.collection_def.get(_GraphKeys.TRAINABLE_VARIABLES)
    if collection is None:
      continue
    for value in collection.bytes_list.value:
      variable_def = variable_pb2.VariableDef.FromString(value)
      if variable_def.HasField("save_slice_info_def"):
        names.add(variable_def.save_slice_info_def.full_name)
      else:
        names.add(variable_def.variable_name.split(":")[0])
  return names


def _describe_variables(path, saved_model):
  prefix = saved_model_io.variables_prefix(path)
  if not tf.io.gfile.exists(prefix + ".index"):
    return []
  reader = tf.train.load_checkpoint(prefix)
  dtypes = reader.get_variable_to_dtype_map()
  trainable = _trainable_names(saved_model)
  result = []
  for name, shape in sorted(reader.get_variable_to_shape_map().items()):
    dtype = tf.as_dtype(dtypes[name])
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    result.append({
        "name": name,
        "shape": list(shape),
        "dtype": dtype.name,
        "bytes": size * dtype.size,
        "trainable": name in trainable,
    })
  return result


def _sha256(filename):
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(filename, "rb") as f:
    while True:
      chunk = f.read(_CHUNK_BYTES)
      if not chunk:
        break
      digest.update(chunk)
  return digest.hexdigest()


def _describe_assets(path):
  assets_dir = os.path.join(path, saved_model_io.ASSETS_DIRNAME)
  if not tf.io.gfile.isdir(assets_dir):
    return []
  result = []
  for name in sorted(tf.io.gfile.listdir(assets_dir)):
    filename = os.path.join(assets_dir, name.rstrip("/"))
    if tf.io.gfile.isdir(filename):
      continue
    result.append({
        "name": name,
        "bytes": tf.io.gfile.stat(filename).length,
        "sha256": _sha256(filename),
    })
  return result


def _provenance(path):
  filename = os.path.join(os.path.dirname(path.rstrip("/")), _EXPORT_METADATA)
  if not tf.io.gfile.exists(filename):
    return None
  try:
    with tf.io.gfile.GFile(filename) as f:
      return json.load(f)
  except ValueError as e:
    return {"error": "cannot parse %s: %s" % (filename, e)}


def inspect(path):
  """Returns the description of the module at `path` (the `--json` document).

  Never imports or runs the graph. A module that cannot be read at all gets a
  document with `loadable` false, `error` set and empty sections.

  Args:
    path: a module directory.

  Returns:
    A dict of plain JSON values, as documented in this module's docstring.
  """
  if "://" not in path:
    path = os.path.abspath(path)
  document = {
      "schema_version": SCHEMA_VERSION,
      "path": path,
      "loadable": False,
      "error": None,
      "format": None,
      "graph_variants": [],
      "variables": [],
      "assets": [],
      "provenance": None,
      "op_policy": None,
  }
  try:
    module_def = saved_model_io.read_module_def(path)
    document["format"] = {
        "module_def_format": module_def.format,
        "required_features": list(module_def.required_features),
    }
    spec = spec_lib.load_module_spec(path, allowed_ops=op_policy.TRUST_ALL_OPS)
    saved_model = spec.saved_model
    report = op_policy.vet(saved_model, path)
    document["graph_variants"] = [
        _describe_variant(spec, tags) for tags in spec.get_tags()
    ]
    document["variables"] = _describe_variables(path, saved_model)
    document["assets"] = _describe_assets(path)
    document["provenance"] = _provenance(path)
  except (tf.errors.OpError, ValueError) as e:
    document["error"] = str(e)
    return document
  refused = report.refused()
  document["op_policy"] = {
      "verdict": "refused" if refused else "allowed",
      "refused": [
          {
              "tags": f.tags,
              "function": f.function,
              "node": f.node,
              "op": f.op,
              "kind": f.kind,
              "why": op_policy.explain(f),
          }
          for f in refused
      ],
  }
  if refused:
    document["error"] = str(report.error())
  document["loadable"] = not refused
  return document


def _text_tensor(description):
  text = "%s %s" % (description["dtype"], description["shape"])
  if description["kind"] != "dense":
    text = "%s %s" % (description["kind"], text)
  if description.get("ragged_rank") is not None:
    text += " ragged_rank=%d" % description["ragged_rank"]
  if description.get("has_default"):
    text += " (optional, default %s)" % (
        "computed"
        if description["default"] is None
        else json.dumps(description["default"])[:60]
    )
  return text


def describe(path):
  """Returns a human-readable description of the module at `path`.

  A module that cannot be read, or that the op policy refuses, is described
  as far as possible, ending with the reason.
  """
  return format_text(inspect(path))


_SOURCE_FIELDS = (
    "source",
    "module_fn",
    "path",
    "run",
    "exporter",
    "version",
    "global_step",
    "metric",
)


def _source_lines(provenance, module_name):
  """Where the module came from, as its export recorded it, and its chain.

  Args:
    provenance: the export's metadata (`export_metadata.json`).
    module_name: the module's folder name in the export version.

  Returns:
    Text lines: the `module_sources` entry for the module (its source, how it
    was fine-tuned), then each `upstream` entry, one level deeper each.
  """
  source = None
  for entry in provenance.get("module_sources") or []:
    if isinstance(entry, dict) and entry.get("export_name") == module_name:
      source = entry
  lines, label, indent = [], "module source", "  "
  while isinstance(source, dict):
    lines.append(
        "%s%s: %s"
        % (
            indent,
            label,
            ", ".join(
                "%s=%s" % (k, source[k])
                for k in _SOURCE_FIELDS
                if source.get(k) is not None
            ),
        )
    )
    if isinstance(source.get("fine_tuning"), dict):
      lines.append(
          "%s  fine_tuning: %s"
          % (
              indent,
              ", ".join(
                  "%s=%s" % kv for kv in sorted(source["fine_tuning"].items())
              ),
          )
      )
    source, label, indent = source.get("upstream"), "upstream", indent + "  "
  return lines


def format_text(document):
  """Renders an `inspect` document as text, one fact a line."""
  lines = ["module %s" % document["path"]]
  if document["format"] is None or not document["graph_variants"]:
    lines.append("  error: %s" % document["error"])
    return "\n".join(lines)
  lines.append("  format %d" % document["format"]["module_def_format"])
  for variant in document["graph_variants"]:
    lines.append(
        "  graph variant tags=%s (%d nodes, %d functions, written by"
        " TensorFlow %s)"
        % (
            variant["tags"],
            variant["num_nodes"],
            len(variant["functions"]),
            variant["tensorflow_version"] or "unknown",
        )
    )
    for name, signature in variant["signatures"].items():
      lines.append("    signature %r" % name)
      for key, tensor in signature["inputs"].items():
        lines.append("      input  %-20s %s" % (key, _text_tensor(tensor)))
      for key, tensor in signature["outputs"].items():
        lines.append("      output %-20s %s" % (key, _text_tensor(tensor)))
    for key in ("regularization_losses", "update_ops"):
      if variant[key]:
        lines.append("    %s: %s" % (key, ", ".join(variant[key])))
    for key, attachment in variant["attached_messages"].items():
      value = attachment["value"]
      if isinstance(value, str):
        value = "%d lines of text" % len(value.splitlines())
      lines.append(
          "    attached message %r (%s, %d bytes): %s"
          % (
              key,
              attachment["type"] or "unknown type",
              attachment["bytes"],
              value,
          )
      )
    histogram = ", ".join(
        "%s %d" % item
        for item in sorted(
            variant["op_histogram"].items(), key=lambda kv: (-kv[1], kv[0])
        )
    )
    lines.append("    ops: %s" % histogram)
    if variant["function_op_histogram"]:
      lines.append(
          "    ops in functions: %s"
          % ", ".join(
              "%s %d" % item
              for item in variant["function_op_histogram"].items()
          )
      )
  total = 0
  for variable in document["variables"]:
    total += variable["bytes"]
    lines.append(
        "  variable %-40s %s %s %d bytes%s"
        % (
            variable["name"],
            variable["shape"],
            variable["dtype"],
            variable["bytes"],
            "" if variable["trainable"] else " (not trainable)",
        )
    )
  if document["variables"]:
    lines.append(
        "  %d variables, %d weights, %d bytes"
        % (
            len(document["variables"]),
            sum(
                int(np.prod(v["shape"], dtype=np.int64))
                for v in document["variables"]
            ),
            total,
        )
    )
  else:
    lines.append("  no variables")
  for asset in document["assets"]:
    lines.append(
        "  asset %s %d bytes sha256 %s"
        % (asset["name"], asset["bytes"], asset["sha256"])
    )
  if not document["assets"]:
    lines.append("  assets: none")
  if document["provenance"] is not None:
    provenance = document["provenance"]
    lines.append(
        "  provenance: %s"
        % ", ".join(
            "%s=%s" % (k, provenance[k])
            for k in ("global_step", "exporter", "checkpoint_path")
            if k in provenance
        )
    )
    if isinstance(provenance, dict):
      lines.extend(
          _source_lines(
              provenance, os.path.basename(document["path"].rstrip("/"))
          )
      )
  policy = document["op_policy"]
  if policy is not None and policy["verdict"] == "allowed":
    lines.append("  op policy: allowed (loads under the default policy)")
  elif policy is not None:
    lines.append("  op policy: REFUSED")
    for finding in policy["refused"]:
      where = "node %r" % finding["node"]
      if finding["function"] is not None:
        where += " in function %r" % finding["function"]
      lines.append(
          "    graph variant %s: op %s (%s) %s"
          % (finding["tags"], finding["op"], where, finding["why"])
      )
  return "\n".join(lines)


def main(argv):
  """Runs the command line; returns the exit status (see the module docstring)."""
  args = argv[1:]
  as_json = "--json" in args
  paths = [a for a in args if a != "--json"]
  usage = __doc__.strip().splitlines()
  if (
      not paths
      or (as_json and len(paths) != 1)
      or any(p.startswith("-") for p in paths)
  ):
    print("\n".join(usage[2:5]), file=sys.stderr)
    return 2
  status = 0
  for path in paths:
    document = inspect(path)
    if as_json:
      print(json.dumps(document, indent=2, sort_keys=True))
    else:
      print(format_text(document))
    if not document["loadable"]:
      status = 1
      if not as_json:
        print("error: %s" % document["error"], file=sys.stderr)
  return status


if __name__ == "__main__":
  sys.exit(main(sys.argv))
