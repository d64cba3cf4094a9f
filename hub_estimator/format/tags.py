"""Graph variants (tag sets) that publishers and consumers agree on.

tensorflow_hub's TF1 convention (its `create_module_spec` documentation): a
module meant for fine-tuning has a `{"train"}` variant (dropout on, batch
statistics, batch-norm updates in UPDATE_OPS) and a default variant with no
tags for inference, both built by one `module_fn(is_training)`.
"""

TRAIN = frozenset({"train"})
DEFAULT = frozenset()

# `tags_and_args` for `create_module_spec` with a `module_fn(is_training)`.
TRAIN_AND_DEFAULT = (
    (TRAIN, {"is_training": True}),
    (DEFAULT, {"is_training": False}),
)
