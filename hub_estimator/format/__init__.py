"""The TF1 Hub module format: specs, instantiation and on-disk io."""

# The public modules; graph_index is internal to module.py and spec.py,
# tf2_checkpoint to tf2_bridge.
__all__ = [
    'bundle_writer',
    'module',
    'names',
    'op_policy',
    'protos',
    'saved_model_io',
    'spec',
    'tags',
    'tensor_info',
    'tf2_bridge',
    'writer',
]
