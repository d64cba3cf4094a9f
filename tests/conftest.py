"""Shared pytest setup for the suite."""


def pytest_collection_modifyitems(config, items):
  # tf.test.TestCase defines a deprecated `test_session` helper that pytest would
  # otherwise collect (and report as skipped) in every test class.
  del config
  items[:] = [item for item in items if item.name != "test_session"]
