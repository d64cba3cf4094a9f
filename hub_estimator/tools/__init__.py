"""Command-line tools (`python -m hub_estimator.tools.<name>`)."""

# The tools (each runs as `python -m hub_estimator.tools.<name>`); vectors.py
# is the vector-file reader they share.
__all__ = [
    'convert_to_tf2',
    'export_text_embedding',
    'inspect_module',
]
