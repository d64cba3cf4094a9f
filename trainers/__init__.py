"""Thin absl entry points; the library (hub_estimator) does the work."""
