"""Estimator integration for consumers: module sources and feature columns."""
