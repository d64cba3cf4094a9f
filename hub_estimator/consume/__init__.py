"""Estimator integration for consumers: module sources."""
