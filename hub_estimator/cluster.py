"""Validates the TF_CONFIG environment variable before a run uses it.

tf.estimator reads TF_CONFIG (JSON) inside `RunConfig()` and reports a bad
one with messages that do not always name the field, and only once the run
builds its RunConfig. `find_tf_config_error` checks it on its own, field by
field, with the rules of tf.estimator 2.15's `run_config.py`
(`_validate_task_type_and_task_id`): a cluster has exactly one `chief` (or
one legacy `master`), the task is listed in the cluster (except an
`evaluator`, which never is), and its index is in range.
"""

import json
from typing import Any, Mapping, Optional

ENV_VAR = 'TF_CONFIG'

# The task types tf.estimator's RunConfig knows (`TaskType`).
TASK_TYPES = ('chief', 'master', 'worker', 'ps', 'evaluator')


def _find_cluster_error(cluster: Any) -> Optional[str]:
  if not isinstance(cluster, Mapping):
    return (
        'TF_CONFIG field "cluster" must be an object mapping task types to'
        f' lists of "host:port" addresses; got {cluster!r}.'
    )
  for task_type, addresses in cluster.items():
    if task_type not in TASK_TYPES or task_type == 'evaluator':
      allowed = [t for t in TASK_TYPES if t != 'evaluator']
      return (
          f'TF_CONFIG field "cluster" has the unknown task type {task_type!r};'
          f' expected among {allowed} (an evaluator is not listed in the'
          ' cluster).'
      )
    if (
        isinstance(addresses, (str, bytes))
        or not isinstance(addresses, (list, tuple))
        or not addresses
        or not all(isinstance(a, str) and ':' in a for a in addresses)
    ):
      return (
          f'TF_CONFIG field "cluster.{task_type}" must be a non-empty list of'
          f' "host:port" strings; got {addresses!r}.'
      )
  chiefs = [t for t in ('chief', 'master') if t in cluster]
  if len(chiefs) > 1:
    return (
        'TF_CONFIG field "cluster" lists both "chief" and "master"; list one'
        ' chief (as "chief").'
    )
  if not chiefs:
    return (
        'TF_CONFIG field "cluster" has no "chief": a distributed run needs'
        f' exactly one; got task types {sorted(cluster)}. Add'
        ' "chief": ["host:port"].'
    )
  if len(cluster[chiefs[0]]) != 1:
    return (
        f'TF_CONFIG field "cluster.{chiefs[0]}" must list exactly one address'
        f' (one chief); got {len(cluster[chiefs[0]])}:'
        f' {list(cluster[chiefs[0]])}.'
    )
  return None


def _find_task_error(task: Any, cluster: Mapping[str, Any]) -> Optional[str]:
  if not isinstance(task, Mapping):
    return (
        'TF_CONFIG field "task" must be an object like {"type": "worker",'
        f' "index": 0}}; got {task!r}.'
    )
  task_type = task.get('type')
  index = task.get('index', 0 if not cluster else None)
  if task_type not in TASK_TYPES:
    return (
        f'TF_CONFIG field "task.type" must be one of {list(TASK_TYPES)}; got'
        f' {task_type!r}.'
    )
  if isinstance(index, bool) or not isinstance(index, int) or index < 0:
    return (
        f'TF_CONFIG field "task.index" must be an integer >= 0; got {index!r}.'
    )
  if not cluster:
    if task_type != 'worker' or index != 0:
      return (
          'TF_CONFIG has no "cluster", so it describes one local task; its'
          ' "task" must be {"type": "worker", "index": 0} (or leave "task"'
          f' out); got type {task_type!r}, index {index}.'
      )
    return None
  if task_type == 'evaluator':
    if 'master' in cluster:
      return (
          'TF_CONFIG: an "evaluator" task cannot join a cluster with a legacy'
          ' "master" (tf.estimator does not support it); name the chief'
          ' "chief" in "cluster".'
      )
    return None
  if task_type not in cluster:
    return (
        f'TF_CONFIG field "task.type" is {task_type!r}, which is not in'
        f' "cluster" (task types there: {sorted(cluster)}).'
    )
  if index >= len(cluster[task_type]):
    return (
        f'TF_CONFIG field "task.index" is {index}, out of range for the'
        f' {len(cluster[task_type])} {task_type!r} address(es) in "cluster":'
        f' use 0 to {len(cluster[task_type]) - 1}.'
    )
  return None


def find_tf_config_error(text: Optional[str]) -> Optional[str]:
  """Checks the value of TF_CONFIG; returns what is wrong, or None.

  Args:
    text: the environment variable's value; None (unset) means a local run
      (nothing to check).

  Returns:
    A message naming the TF_CONFIG field, what was expected and what was
    found; None when TF_CONFIG is unset or valid. Set but empty is an error,
    as tf.estimator's RunConfig cannot parse it.
  """
  if text is None:
    return None
  if not text.strip():
    return (
        f'TF_CONFIG is set but empty ({text!r}); unset it for a local run'
        ' (unset TF_CONFIG) or give its JSON, e.g. {"cluster": {...},'
        ' "task": {"type": "worker", "index": 0}}.'
    )
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    return (
        f'TF_CONFIG is not valid JSON ({e.msg} at line {e.lineno} column'
        f' {e.colno}); got {text!r}.'
    )
  if not isinstance(config, Mapping):
    return f'TF_CONFIG must be a JSON object; got {text!r}.'
  cluster = config.get('cluster') or {}
  if cluster:
    problem = _find_cluster_error(cluster)
    if problem:
      return problem
  if 'task' not in config:
    if cluster:
      return (
          'TF_CONFIG has a "cluster" but no "task"; add e.g. "task": {"type":'
          ' "worker", "index": 0} naming this process.'
      )
    return None
  return _find_task_error(config['task'], cluster)
