"""Gin-configurable building blocks: module_fns, heads, model_fns, inputs."""

# The public modules.
__all__ = [
    'heads',
    'inputs',
    'model_fn',
    'module_fns',
    'optimizers',
]
