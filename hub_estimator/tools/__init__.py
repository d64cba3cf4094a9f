"""Command-line tools (`python -m hub_estimator.tools.<name>`)."""
