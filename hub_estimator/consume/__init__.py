"""Estimator integration for consumers: module sources and feature columns."""

# The public modules.
__all__ = [
    'feature_columns',
    'sources',
]
