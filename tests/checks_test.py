"""Tests for hub_estimator.checks."""

import math
import unittest

import numpy as np

from hub_estimator import checks


class CheckPositiveTest(unittest.TestCase):

  def test_accepts_and_returns_positive_values(self):
    self.assertEqual(checks.check_positive(3, 'a.b'), 3)
    self.assertEqual(checks.check_positive(np.int64(2), 'a.b'), 2)
    self.assertEqual(checks.check_positive(0.5, 'a.b', integer=False), 0.5)
    self.assertIsNone(checks.check_positive(None, 'a.b', allow_none=True))

  def test_rejects_with_the_key_and_value(self):
    for value, kwargs, message in [
        (0, {}, 'a.b must be a positive integer; got 0.'),
        (True, {}, 'a.b must be a positive integer; got True.'),
        (2.0, {}, 'a.b must be a positive integer; got 2.0.'),
        (None, {}, 'a.b must be a positive integer; got None.'),
        ('3', {}, "a.b must be a positive integer; got '3'."),
        (-1, {'allow_none': True}, 'positive integer or None; got -1.'),
        (0.0, {'integer': False}, 'a.b must be a positive number; got 0.0.'),
        (math.inf, {'integer': False}, 'positive number; got inf.'),
        (math.nan, {'integer': False}, 'positive number; got nan.'),
    ]:
      with self.assertRaises(ValueError, msg=value) as cm:
        checks.check_positive(value, 'a.b', **kwargs)
      self.assertIn(message, str(cm.exception))


if __name__ == '__main__':
  unittest.main()
