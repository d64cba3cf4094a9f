"""Gin-configurable building blocks: module_fns, heads, model_fns, inputs."""
