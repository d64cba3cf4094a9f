"""Gin-configurable building blocks: module_fns, heads, optimizers, model_fns, inputs."""
