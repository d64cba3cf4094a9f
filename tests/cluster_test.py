"""TF_CONFIG is validated on its own, with one message per field."""

import json

from absl.testing import parameterized
import tensorflow as tf

from hub_estimator import cluster

_CLUSTER = {'chief': ['h0:1'], 'worker': ['h1:1', 'h2:1'], 'ps': ['h3:1']}


def _config(cluster_spec=None, task=None):
  config = {}
  if cluster_spec is not None:
    config['cluster'] = cluster_spec
  if task is not None:
    config['task'] = task
  return json.dumps(config)


class TFConfigTest(parameterized.TestCase, tf.test.TestCase):

  @parameterized.parameters(
      None,
      '{}',
      _config(_CLUSTER, {'type': 'worker', 'index': 1}),
      _config(_CLUSTER, {'type': 'chief', 'index': 0}),
      _config(_CLUSTER, {'type': 'ps', 'index': 0}),
      _config(_CLUSTER, {'type': 'evaluator', 'index': 0}),
      _config(None, {'type': 'worker', 'index': 0}),
  )
  def test_valid(self, text):
    self.assertIsNone(cluster.find_tf_config_error(text))

  @parameterized.named_parameters(
      ('bad_json', '{"cluster": ', 'TF_CONFIG is not valid JSON'),
      ('not_object', '[1, 2]', 'TF_CONFIG must be a JSON object'),
      # tf.estimator's RunConfig json-parses a set TF_CONFIG, even ''.
      ('empty', '', "TF_CONFIG is set but empty (''); unset it for a local"),
      ('blank', ' \n', "TF_CONFIG is set but empty (' \\n')"),
      (
          'unknown_task_type',
          _config(_CLUSTER, {'type': 'wrker', 'index': 0}),
          'TF_CONFIG field "task.type" must be one of',
      ),
      (
          'task_not_in_cluster',
          _config({'chief': ['h0:1']}, {'type': 'ps', 'index': 0}),
          'TF_CONFIG field "task.type" is \'ps\', which is not in "cluster"',
      ),
      (
          'index_out_of_range',
          _config(_CLUSTER, {'type': 'worker', 'index': 2}),
          (
              'TF_CONFIG field "task.index" is 2, out of range for the 2'
              ' \'worker\' address(es) in "cluster": use 0 to 1.'
          ),
      ),
      (
          'negative_index',
          _config(_CLUSTER, {'type': 'worker', 'index': -1}),
          'TF_CONFIG field "task.index" must be an integer >= 0; got -1.',
      ),
      (
          'two_chiefs',
          _config({'chief': ['h0:1', 'h1:1']}, {'type': 'chief', 'index': 0}),
          'TF_CONFIG field "cluster.chief" must list exactly one address',
      ),
      (
          'chief_and_master',
          _config(
              {'chief': ['h0:1'], 'master': ['h1:1']},
              {'type': 'chief', 'index': 0},
          ),
          'lists both "chief" and "master"',
      ),
      (
          'no_chief',
          _config({'worker': ['h0:1']}, {'type': 'worker', 'index': 0}),
          'TF_CONFIG field "cluster" has no "chief"',
      ),
      (
          'unknown_cluster_task_type',
          _config({'chief': ['h0:1'], 'wrker': ['h1:1']}),
          'TF_CONFIG field "cluster" has the unknown task type \'wrker\'',
      ),
      (
          'address_not_a_list',
          _config({'chief': 'h0:1'}, {'type': 'chief', 'index': 0}),
          (
              'TF_CONFIG field "cluster.chief" must be a non-empty list of'
              ' "host:port" strings'
          ),
      ),
      (
          'no_task',
          _config(_CLUSTER),
          'TF_CONFIG has a "cluster" but no "task"',
      ),
      (
          'local_non_worker',
          _config(None, {'type': 'chief', 'index': 0}),
          'TF_CONFIG has no "cluster"',
      ),
  )
  def test_invalid(self, text, expected):
    self.assertIn(expected, cluster.find_tf_config_error(text))


if __name__ == '__main__':
  tf.test.main()
