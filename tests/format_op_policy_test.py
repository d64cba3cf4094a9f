"""The op policy: hostile modules are refused at load, allowed only explicitly.

Each hostile module is a copy of a benign exported module (vocabulary table
from assets/, variables, a {"train"} variant with UPDATE_OPS) whose
saved_model.pb is edited: nodes built in a scratch graph are grafted into one
graph variant and wired into a signature output, a collection or a function.
"""

import os
import re
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import op_def_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saver_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.client import pywrap_tf_session

import hub_estimator as hub
from hub_estimator.consume import feature_columns
from hub_estimator.format import op_policy
import interop_fixtures as fixtures

_GraphKeys = tf.compat.v1.GraphKeys
_TRAIN = ["train"]


def _read(path):
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    return saved_model_pb2.SavedModel.FromString(f.read())


def _write(path, saved_model):
  with open(os.path.join(path, "saved_model.pb"), "wb") as f:
    f.write(saved_model.SerializeToString())


def _meta_graph(saved_model, tags):
  for meta_graph in saved_model.meta_graphs:
    if sorted(meta_graph.meta_info_def.tags) == sorted(tags):
      return meta_graph
  raise KeyError(tags)


def _graft(meta_graph, build_fn):
  """Builds `build_fn()` in a scratch graph under scope "hostile" and copies it in.

  Returns:
    The names of the tensors and ops `build_fn` returned (a list).
  """
  with tf.Graph().as_default() as graph:
    with tf.compat.v1.name_scope("hostile"):
      results = tf.nest.flatten(build_fn())
    graph_def = graph.as_graph_def()
  meta_graph.graph_def.node.extend(graph_def.node)
  meta_graph.graph_def.library.MergeFrom(graph_def.library)
  return [r.name for r in results]


def _add_output(meta_graph, key, tensor_name, dtype=tf.string):
  info = meta_graph_pb2.TensorInfo(
      name=tensor_name, dtype=dtype.as_datatype_enum
  )
  info.tensor_shape.unknown_rank = True
  meta_graph.signature_def["default"].outputs[key].CopyFrom(info)


def _add_to_collection(meta_graph, key, tensor_name):
  meta_graph.collection_def[key].node_list.value.append(tensor_name)


class OpPolicyTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="op_policy_")
    vocab = os.path.join(cls.root, "vocab.txt")
    fixtures.write_vocab(vocab)
    cls.secret = os.path.join(cls.root, "secret.txt")
    with open(cls.secret, "w") as f:
      f.write("the consumer's secret")
    message = fixtures.image_module_info(hub.ImageModuleInfo)
    spec = hub.create_module_spec(
        fixtures.make_text_module_fn(hub, vocab, message),
        tags_and_args=fixtures.tags_and_args(),
    )
    cls.benign = os.path.join(cls.root, "benign")
    spec.export(cls.benign, checkpoint_path=cls._checkpoint(spec))

  @classmethod
  def _checkpoint(cls, spec):
    prefix = os.path.join(cls.root, "ckpt", "model")
    with tf.Graph().as_default():
      module = hub.Module(spec)
      saver = tf.compat.v1.train.Saver(module.variable_map)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        return saver.save(session, prefix)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def _hostile(self, name, edit_fn, tags=()):
    """Copies the benign module to `name` and applies `edit_fn(meta_graph)`."""
    path = os.path.join(self.root, name)
    shutil.copytree(self.benign, path)
    saved_model = _read(path)
    edit_fn(_meta_graph(saved_model, tags))
    _write(path, saved_model)
    return path

  def assert_refused(self, path, lines, op_types):
    """Asserts loading is refused naming `path`, each line, and the fix."""
    with self.assertRaises(hub.UnsafeModuleError) as raised:
      hub.load_module_spec(path)
    message = str(raised.exception)
    self.assertIn("Module %s is refused by the op policy" % path, message)
    for line in lines:
      self.assertIn(line, message)
    self.assertIn("allowed_ops=%r" % sorted(op_types), message)
    self.assertIn("hub_estimator.TRUST_ALL_OPS", message)
    self.assertIsInstance(raised.exception, hub.ModuleFormatError)
    self.assertEqual(raised.exception.path, path)
    return raised.exception

  # -- benign modules load as before --

  def test_benign_module_with_asset_table_loads_and_runs(self):
    report = op_policy.vet(_load_saved_model(self.benign), self.benign)
    self.assertEqual(report.findings, [])
    with hub.eval_function_for_module(self.benign) as f:
      ids = f(fixtures.TEXTS, as_dict=True)["ids"]
    self.assertAllEqual(ids, [1, 0, 5, 4, 2, 1])

  def test_module_exported_by_tensorflow_hub_loads(self):
    import tensorflow_hub as peer  # pylint: disable=g-import-not-at-top

    vocab = os.path.join(self.root, "peer_vocab.txt")
    fixtures.write_vocab(vocab)
    message = fixtures.image_module_info(peer.ImageModuleInfo)
    path = os.path.join(self.root, "peer_text_module")
    with tf.Graph().as_default():
      spec = peer.create_module_spec(
          fixtures.make_text_module_fn(peer, vocab, message),
          tags_and_args=fixtures.tags_and_args(),
      )
      module = peer.Module(spec)
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        module.export(path, session)
    spec = hub.load_module_spec(path)
    self.assertEqual(spec.get_tags(), [set(), {"train"}])
    with hub.eval_function_for_module(path) as f:
      self.assertAllEqual(
          f(fixtures.TEXTS, as_dict=True)["ids"], [1, 0, 5, 4, 2, 1]
      )

  def test_print_to_stderr_and_string_ops_are_not_refused(self):
    def edit(meta_graph):
      printed, joined = _graft(
          meta_graph,
          lambda: [
              tf.print("hello", output_stream=sys.stderr),
              tf.strings.join(["a", "b"]),
          ],
      )
      _add_to_collection(meta_graph, _GraphKeys.UPDATE_OPS, printed)
      _add_output(meta_graph, "joined", joined)

    hub.load_module_spec(self._hostile("prints_to_stderr", edit, _TRAIN))

  # -- hostile modules are refused, each kind --

  def test_read_file_in_an_output_leaks_a_secret(self):
    secret = self.secret

    def edit(meta_graph):
      (name,) = _graft(meta_graph, lambda: tf.io.read_file(secret))
      _add_output(meta_graph, "leak", name)

    path = self._hostile("read_secret", edit)
    error = self.assert_refused(
        path,
        [
            "graph variant []: op ReadFile (node 'hostile/ReadFile') reads a"
            " file that is not one of the module's assets [file read]."
        ],
        ["ReadFile"],
    )
    self.assertEqual(
        error.findings,
        [
            op_policy.Finding(
                [], None, "hostile/ReadFile", "ReadFile", "file read"
            )
        ],
    )
    with tf.Graph().as_default():
      with self.assertRaises(hub.UnsafeModuleError):
        hub.Module(path)
    # Allowed explicitly, the module does what it says.
    with hub.eval_function_for_module(path, allowed_ops=["ReadFile"]) as f:
      leaked = f(fixtures.TEXTS, as_dict=True)["leak"]
    self.assertEqual(leaked, b"the consumer's secret")
    hub.load_module_spec(path, allowed_ops=hub.TRUST_ALL_OPS)

  def test_write_file_in_an_unused_table_initializer(self):
    target = os.path.join(self.root, "written_by_table_init.txt")

    def edit(meta_graph):
      (name,) = _graft(
          meta_graph,
          lambda: tf.io.write_file(target, "pwned"),
      )
      _add_to_collection(meta_graph, _GraphKeys.TABLE_INITIALIZERS, name)

    path = self._hostile("table_init_writes", edit, tags=_TRAIN)
    self.assert_refused(
        path,
        [
            "graph variant ['train']: op WriteFile (node 'hostile/WriteFile')"
            " writes files [file write]."
        ],
        ["WriteFile"],
    )
    # Allowed, it really does run at session start.
    with tf.Graph().as_default():
      hub.Module(path, tags={"train"}, allowed_ops=["WriteFile"])
      with tf.compat.v1.train.MonitoredSession():
        pass
    self.assertTrue(os.path.exists(target))

  def test_foreign_save_in_update_ops(self):
    target = os.path.join(self.root, "foreign_ckpt")

    def edit(meta_graph):
      (name,) = _graft(
          meta_graph,
          lambda: tf.raw_ops.SaveV2(
              prefix=target,
              tensor_names=["x"],
              shape_and_slices=[""],
              tensors=[tf.constant(1.0)],
          ),
      )
      _add_to_collection(meta_graph, _GraphKeys.UPDATE_OPS, name)

    path = self._hostile("save_in_update_ops", edit, tags=_TRAIN)
    self.assert_refused(
        path,
        [
            "graph variant ['train']: op SaveV2 (node 'hostile/SaveV2') saves"
            " or restores a checkpoint other than the module's own saver"
            " reading its variables/ [checkpoint save/restore]."
        ],
        ["SaveV2"],
    )

  def test_foreign_restore_and_file_listing(self):
    def edit(meta_graph):
      restored, listed = _graft(
          meta_graph,
          lambda: [
              tf.raw_ops.RestoreV2(
                  prefix="/elsewhere/model.ckpt",
                  tensor_names=["x"],
                  shape_and_slices=[""],
                  dtypes=[tf.float32],
              )[0],
              tf.io.matching_files("/etc/*"),
          ],
      )
      _add_output(meta_graph, "restored", restored, tf.float32)
      _add_output(meta_graph, "listed", listed)

    path = self._hostile("restore_and_list", edit)
    self.assert_refused(
        path,
        [
            "op RestoreV2 (node 'hostile/RestoreV2')",
            (
                "op MatchingFiles (node 'hostile/MatchingFiles') lists files"
                " and folders [file listing]."
            ),
        ],
        ["MatchingFiles", "RestoreV2"],
    )

  def test_py_func_token_calls_the_consumers_function(self):
    def edit(meta_graph):
      node = meta_graph.graph_def.node.add(name="hostile/PyFunc", op="PyFunc")
      node.attr["token"].s = b"pyfunc_0"
      node.attr["Tin"].list.type[:] = []
      node.attr["Tout"].list.type[:] = [tf.string.as_datatype_enum]
      _add_output(meta_graph, "called", "hostile/PyFunc:0")

    path = self._hostile("py_func", edit)
    self.assert_refused(
        path,
        [
            "graph variant []: op PyFunc (node 'hostile/PyFunc') runs a Python"
            " function of the loading process"
        ],
        ["PyFunc"],
    )
    hub.load_module_spec(path, allowed_ops=["PyFunc"])

  def test_print_to_a_file(self):
    target = os.path.join(self.root, "printed.txt")

    def edit(meta_graph):
      (name,) = _graft(
          meta_graph, lambda: tf.print("leak", output_stream="file://" + target)
      )
      _add_to_collection(meta_graph, _GraphKeys.UPDATE_OPS, name)

    path = self._hostile("print_to_file", edit, tags=_TRAIN)
    self.assert_refused(
        path,
        ["op PrintV2 (node 'hostile/PrintV2') prints to a file"],
        ["PrintV2"],
    )

  def test_ops_inside_a_function_library(self):
    secret = self.secret

    @tf.function
    def reader(filename):
      return tf.io.read_file(filename)

    def edit(meta_graph):
      (name,) = _graft(meta_graph, lambda: reader(tf.constant(secret)))
      _add_output(meta_graph, "leak", name)

    path = self._hostile("function_library", edit)
    error = self.assert_refused(
        path, ["op ReadFile (node 'ReadFile' in function '"], ["ReadFile"]
    )
    (finding,) = error.findings
    self.assertStartsWith(finding.function, "__inference_reader_")
    with hub.eval_function_for_module(path, allowed_ops=["ReadFile"]) as f:
      self.assertEqual(
          f(fixtures.TEXTS, as_dict=True)["leak"], b"the consumer's secret"
      )

  def test_call_of_a_function_the_module_does_not_define(self):
    @tf.function
    def consumer_fn(x):
      return x + 1.0

    def edit(meta_graph):
      (name,) = _graft(meta_graph, lambda: consumer_fn(tf.constant(1.0)))
      # The body stays out: the call would run the loading graph's function
      # of that name.
      del meta_graph.graph_def.library.function[:]
      _add_output(meta_graph, "called", name, tf.float32)

    path = self._hostile("foreign_function", edit)
    self.assert_refused(
        path,
        [
            "op PartitionedCall (node 'hostile/PartitionedCall') calls a"
            " function that is not in the module's function library"
        ],
        ["PartitionedCall"],
    )

  def test_unregistered_op(self):
    def edit(meta_graph):
      meta_graph.graph_def.node.add(name="strange", op="NoSuchOpAnywhere")

    path = self._hostile("unregistered", edit)
    self.assert_refused(
        path,
        [
            "op NoSuchOpAnywhere (node 'strange') is not registered in this"
            " TensorFlow"
        ],
        ["NoSuchOpAnywhere"],
    )
    # Allowed, the module still cannot run here: the op library is missing.
    with tf.Graph().as_default():
      with self.assertRaisesRegex(
          tf.errors.NotFoundError, r"\['NoSuchOpAnywhere'\]"
      ):
        hub.Module(path, allowed_ops=["NoSuchOpAnywhere"])

  def test_dataset_graph_held_as_data_is_refused(self):
    # A serialized dataset graph (TextLineDataset of the secret) is only a
    # string constant to the policy; DatasetFromGraph runs it.
    with tf.Graph().as_default():
      dataset = tf.data.TextLineDataset(self.secret).batch(10)
      serialized = dataset._as_serialized_graph()  # pylint: disable=protected-access
      with tf.compat.v1.Session() as session:
        graph_bytes = session.run(serialized)

    def build():
      # Through a stateful op: Grappler would fold DatasetFromGraph of a
      # constant.
      always = tf.random.uniform([]) >= 0.0
      graph_def = tf.where(always, graph_bytes, "")
      variant = tf.raw_ops.DatasetFromGraph(graph_def=graph_def)
      dataset = tf.data.experimental.from_variant(
          variant, tf.TensorSpec([None], tf.string)
      )
      return tf.data.experimental.get_single_element(dataset)

    def edit(meta_graph):
      (name,) = _graft(meta_graph, build)
      _add_output(meta_graph, "leak", name)

    path = self._hostile("dataset_from_graph", edit)
    self.assert_refused(
        path,
        [
            "graph variant []: op DatasetFromGraph (node"
            " 'hostile/DatasetFromGraph') runs a graph, dataset, function or"
            " compiled program that it reads from a tensor or attribute, where"
            " the policy cannot vet it [program as data]."
        ],
        ["DatasetFromGraph"],
    )
    # Allowed explicitly, it does read the consumer's file.
    with hub.eval_function_for_module(
        path, allowed_ops=["DatasetFromGraph"]
    ) as f:
      leaked = f(fixtures.TEXTS, as_dict=True)["leak"]
    self.assertEqual(list(leaked), [b"the consumer's secret"])

  def test_files_named_in_attributes_are_refused(self):
    secret = self.secret

    def build():
      return tf.raw_ops.FixedUnigramCandidateSampler(
          true_classes=tf.zeros([1, 1], tf.int64),
          num_true=1,
          num_sampled=1,
          unique=True,
          range_max=2,
          vocab_file=secret,
      )[0]

    def edit(meta_graph):
      (sampled,) = _graft(meta_graph, build)
      _add_output(meta_graph, "sampled", sampled, tf.int64)
      # Skipgram has no Python wrapper: a raw NodeDef (output 0: its words).
      node = meta_graph.graph_def.node.add(
          name="hostile/Skipgram", op="Skipgram"
      )
      node.attr["filename"].s = secret.encode()
      node.attr["batch_size"].i = 1
      node.attr["window_size"].i = 1
      node.attr["min_count"].i = 1
      node.attr["subsample"].f = 0.0
      _add_output(meta_graph, "words", "hostile/Skipgram:0")

    path = self._hostile("file_attributes", edit)
    self.assert_refused(
        path,
        [
            (
                "op Skipgram (node 'hostile/Skipgram') reads a file that is not"
                " one of the module's assets [file read]."
            ),
            (
                "op FixedUnigramCandidateSampler (node"
                " 'hostile/FixedUnigramCandidateSampler') reads a file that is"
                " not one of the module's assets [file read]."
            ),
        ],
        ["FixedUnigramCandidateSampler", "Skipgram"],
    )

  def test_every_registered_op_with_a_file_like_name_is_classified(self):
    # The census: an op this TensorFlow registers whose string attrs or inputs
    # have a file-like name must be refused or explained in op_policy, so a
    # TensorFlow upgrade cannot bring an unvetted file op.
    registered = _registered_op_defs()
    classified = (
        set(op_policy._REFUSED_OP_TYPES)  # pylint: disable=protected-access
        | set(op_policy.NOT_A_FILE)
        | op_policy.FILE_BY_ATTR_VALUE
    )
    pattern = re.compile(op_policy.FILE_LIKE_NAME, re.IGNORECASE)
    unclassified = {}
    for op_def in registered.values():
      names = [
          attr.name
          for attr in op_def.attr
          if attr.type in ("string", "list(string)")
      ] + [arg.name for arg in op_def.input_arg]
      file_like = [name for name in names if pattern.search(name)]
      if file_like and op_def.name not in classified:
        unclassified[op_def.name] = file_like
    self.assertEqual(unclassified, {})
    # The census itself finds the ops the tables name (no dead entries).
    self.assertEqual(sorted(classified - set(registered)), [])
    for op_type in ("Skipgram", "FixedUnigramCandidateSampler", "ReadFile"):
      self.assertEqual(
          op_policy._REFUSED_OP_TYPES[op_type],  # pylint: disable=protected-access
          op_policy.FILE_READ,
      )

  # -- state of the consumer reached by name --

  def _run_in_consumer(self, path, output, allowed_ops, consumer_fn=None):
    """Runs `output` of the module at `path` in a graph holding the consumer's
    resource variable "consumer/secret" (value 42.0) and `consumer_fn()`'s
    state; returns the value."""
    with tf.Graph().as_default():
      with tf.compat.v1.variable_scope("consumer"):
        tf.compat.v1.get_variable("secret", initializer=42.0, use_resource=True)
      init_consumer = consumer_fn() if consumer_fn else tf.no_op()
      module = hub.Module(path, allowed_ops=allowed_ops)
      value = module(fixtures.TEXTS, as_dict=True)[output]
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(tf.compat.v1.tables_initializer())
        session.run(init_consumer)
        return session.run(value)

  def test_resource_named_inside_a_function_reads_the_consumers_variable(
      self,
  ):
    @tf.function
    def steal():
      handle = tf.raw_ops.VarHandleOp(
          dtype=tf.float32, shape=[], shared_name="consumer/secret"
      )
      return tf.raw_ops.ReadVariableOp(resource=handle, dtype=tf.float32)

    def edit(meta_graph):
      (name,) = _graft(meta_graph, steal)
      _add_output(meta_graph, "stolen", name, tf.float32)

    path = self._hostile("function_var_handle", edit)
    error = self.assert_refused(
        path,
        [
            "op VarHandleOp (node 'VarHandleOp' in function '",
            (
                "can reach a variable, table, queue, iterator or other resource"
                " of the loading process by its name (shared_name"
                " 'consumer/secret', container '' inside a function: names in"
                " function bodies are not prefixed with the module's scope at"
                " load) [shared state]."
            ),
        ],
        ["VarHandleOp"],
    )
    (finding,) = error.findings
    self.assertEqual(finding.kind, op_policy.SHARED_STATE)
    # Allowed explicitly, the attack works: the module reads the consumer's
    # variable.
    self.assertEqual(
        self._run_in_consumer(path, "stolen", ["VarHandleOp"]), 42.0
    )

  def test_graph_level_shared_names_are_the_modules_own(self):
    # At graph level the same name is prefixed with the module's scope at
    # load (as tensorflow_hub does), so it stays allowed and cannot alias.
    def edit(meta_graph):
      (name,) = _graft(
          meta_graph,
          lambda: tf.raw_ops.ReadVariableOp(
              resource=tf.raw_ops.VarHandleOp(
                  dtype=tf.float32,
                  shape=[],
                  shared_name="consumer/secret",
                  container="localhost",
              ),
              dtype=tf.float32,
          ),
      )
      _add_output(meta_graph, "stolen", name, tf.float32)

    path = self._hostile("graph_var_handle", edit)
    hub.load_module_spec(path)
    with self.assertRaisesRegex(
        tf.errors.FailedPreconditionError, "module/consumer/secret"
    ):
      self._run_in_consumer(path, "stolen", None)
    # Legit modules' tables carry shared names and load: ours and
    # tensorflow_hub's (test_module_exported_by_tensorflow_hub_loads).
    shared_names = [
        node.attr["shared_name"].s
        for node in _read(self.benign).meta_graphs[0].graph_def.node
        if node.op == "HashTableV2"
    ]
    self.assertNotEmpty(shared_names)
    self.assertTrue(all(shared_names))

  def test_handles_forged_from_bytes_or_by_plural_names(self):
    with tf.Graph().as_default():
      handle = tf.raw_ops.VarHandleOp(
          dtype=tf.float32, shape=[], shared_name="consumer/secret"
      )
      serialized = tf.io.serialize_tensor(handle)
      with tf.compat.v1.Session() as session:
        serialized = session.run(serialized)
    forged = tf.make_tensor_proto(0.0)
    forged.ParseFromString(serialized)

    def edit(meta_graph):
      const = meta_graph.graph_def.node.add(name="hostile/Handle", op="Const")
      const.attr["dtype"].type = tf.resource.as_datatype_enum
      const.attr["value"].tensor.CopyFrom(forged)
      read = meta_graph.graph_def.node.add(
          name="hostile/ReadConst", op="ReadVariableOp", input=[const.name]
      )
      read.attr["dtype"].type = tf.float32.as_datatype_enum
      _add_output(meta_graph, "from_const", read.name + ":0", tf.float32)
      handles = meta_graph.graph_def.node.add(
          name="hostile/Handles", op="_VarHandlesOp"
      )
      handles.attr["containers"].list.s.append(b"")
      handles.attr["shared_names"].list.s.append(b"consumer/secret")
      handles.attr["N"].i = 1
      handles.attr["dtypes"].list.type.append(tf.float32.as_datatype_enum)
      handles.attr["shapes"].list.shape.add()
      (parsed,) = _graft(
          meta_graph,
          lambda: tf.raw_ops.ParseTensor(
              serialized=tf.constant(serialized), out_type=tf.resource
          ),
      )
      del parsed

    path = self._hostile("forged_handles", edit)
    self.assert_refused(
        path,
        [
            (
                "op Const (node 'hostile/Handle') can reach a variable, table,"
                " queue, iterator or other resource of the loading process by"
                " its name (a constant of dtype resource) [shared state]."
            ),
            "op _VarHandlesOp (node 'hostile/Handles') can reach",
            (
                "op ParseTensor (node 'hostile/ParseTensor') can reach a"
                " variable, table, queue, iterator or other resource of the"
                " loading process by its name (out_type resource made from"
                " bytes) [shared state]."
            ),
        ],
        ["Const", "ParseTensor", "_VarHandlesOp"],
    )
    self.assertEqual(
        self._run_in_consumer(path, "from_const", hub.TRUST_ALL_OPS), 42.0
    )

  def test_iterator_from_string_handle_reads_the_consumers_input(self):
    def consumer_iterator():
      dataset = tf.data.Dataset.from_tensor_slices([7.0, 8.0])
      iterator = tf.compat.v1.data.make_initializable_iterator(
          dataset, shared_name="train_input"
      )
      return iterator.initializer

    with tf.Graph().as_default():
      consumer_iterator()
      string_handle = tf.compat.v1.get_default_graph().get_tensor_by_name(
          "IteratorV2:0"
      )
      string_handle = tf.raw_ops.IteratorToStringHandle(
          resource_handle=string_handle
      )
      with tf.compat.v1.Session() as session:
        string_handle = session.run(string_handle)

    def steal():
      iterator = tf.raw_ops.IteratorFromStringHandleV2(
          string_handle=string_handle,
          output_types=[tf.float32],
          output_shapes=[[]],
      )
      return tf.raw_ops.IteratorGetNext(
          iterator=iterator, output_types=[tf.float32], output_shapes=[[]]
      )[0]

    def edit(meta_graph):
      (name,) = _graft(meta_graph, steal)
      _add_output(meta_graph, "stolen", name, tf.float32)

    path = self._hostile("iterator_string_handle", edit)
    self.assert_refused(
        path,
        [
            "op IteratorFromStringHandleV2 (node"
            " 'hostile/IteratorFromStringHandleV2') can reach a variable,"
            " table, queue, iterator or other resource of the loading process"
            " by its name [shared state]."
        ],
        ["IteratorFromStringHandleV2"],
    )
    self.assertEqual(
        self._run_in_consumer(
            path,
            "stolen",
            ["IteratorFromStringHandleV2"],
            consumer_fn=consumer_iterator,
        ),
        7.0,
    )

  def test_cross_device_communication_is_refused(self):
    def edit(meta_graph):
      (reduced,) = _graft(
          meta_graph,
          lambda: tf.raw_ops.CollectiveReduceV2(
              input=tf.constant([1.0]),
              group_size=2,
              group_key=1,
              instance_key=1,
              ordering_token=[],
              merge_op="Add",
              final_op="Id",
          ),
      )
      _add_output(meta_graph, "reduced", reduced, tf.float32)
      send = meta_graph.graph_def.node.add(
          name="hostile/XlaSend", op="XlaSend", input=[reduced]
      )
      send.attr["T"].type = tf.float32.as_datatype_enum
      send.attr["tensor_name"].s = b"leak"
      _add_to_collection(meta_graph, _GraphKeys.UPDATE_OPS, send.name)

    path = self._hostile("collective", edit)
    self.assert_refused(
        path,
        [
            (
                "op CollectiveReduceV2 (node 'hostile/CollectiveReduceV2')"
                " talks to other processes, hosts or devices [network]."
            ),
            (
                "op XlaSend (node 'hostile/XlaSend') talks to other processes,"
                " hosts or devices [network]."
            ),
        ],
        ["CollectiveReduceV2", "XlaSend"],
    )

  def test_every_registered_communication_op_is_classified(self):
    registered = _registered_op_defs()
    pattern = re.compile(op_policy.COMMUNICATION_LIKE_NAME)
    unclassified = sorted(
        name
        for name in registered
        if pattern.search(name)
        and op_policy._REFUSED_OP_TYPES.get(name)  # pylint: disable=protected-access
        not in (op_policy.NETWORK, op_policy.PROGRAM_AS_DATA)
        and name not in op_policy.NOT_COMMUNICATION
    )
    self.assertEqual(unclassified, [])
    self.assertEqual(
        sorted(set(op_policy.NOT_COMMUNICATION) - set(registered)), []
    )

  def test_every_registered_op_making_a_resource_handle_is_classified(self):
    # An op with an output of dtype resource names its resource by a
    # shared_name/container attr (renamed at load, refused in functions), is
    # refused, or is explained in HANDLE_NOT_BY_NAME.
    registered = _registered_op_defs()
    unclassified = []
    for op_def in registered.values():
      makes_handle = any(
          arg.type == tf.resource.as_datatype_enum for arg in op_def.output_arg
      )
      attrs = {attr.name for attr in op_def.attr}
      if (
          makes_handle
          and not attrs & set(op_policy.NAMED_RESOURCE_ATTRS)
          and op_def.name not in op_policy._REFUSED_OP_TYPES  # pylint: disable=protected-access
          and op_def.name not in op_policy.HANDLE_NOT_BY_NAME
      ):
        unclassified.append(op_def.name)
    self.assertEqual(unclassified, [])
    self.assertEqual(
        sorted(set(op_policy.HANDLE_NOT_BY_NAME) - set(registered)), []
    )
    self.assertEqual(
        sorted(set(op_policy.HANDLE_FROM_BYTES) - set(registered)), []
    )

  def test_every_finding_is_listed_once_across_variants(self):
    def edit(meta_graph):
      (name,) = _graft(meta_graph, lambda: tf.io.read_file("/etc/hostname"))
      _add_output(meta_graph, "leak", name)

    path = self._hostile("two_variants", edit)
    saved_model = _read(path)
    edit(_meta_graph(saved_model, _TRAIN))
    _write(path, saved_model)
    error = self.assert_refused(
        path,
        [
            "graph variant ['train']: op ReadFile",
            "graph variant []: op ReadFile",
        ],
        ["ReadFile"],
    )
    self.assertLen(error.findings, 2)

  # -- the module's own assets and saver --

  def test_reading_an_own_asset_is_allowed_but_not_through_a_link(self):
    def edit(meta_graph):
      (asset,) = meta_graph.collection_def[
          _GraphKeys.ASSET_FILEPATHS
      ].node_list.value
      node = meta_graph.graph_def.node.add(
          name="hostile/ReadAsset", op="ReadFile"
      )
      node.input.append(asset)
      _add_output(meta_graph, "vocabulary", "hostile/ReadAsset:0")

    path = self._hostile("reads_own_asset", edit)
    with hub.eval_function_for_module(path) as f:
      text = f(fixtures.TEXTS, as_dict=True)["vocabulary"]
    self.assertEqual(text.decode().split(), fixtures.VOCAB)
    # An asset that is a symbolic link to a file elsewhere is not the
    # module's: loading refuses it (before the op policy looks at the ops).
    (asset_name,) = os.listdir(os.path.join(path, "assets"))
    asset_path = os.path.join(path, "assets", asset_name)
    os.remove(asset_path)
    os.symlink(self.secret, asset_path)
    with self.assertRaisesRegex(
        hub.ModuleFormatError,
        "Asset file %s of module .* resolves to .*, outside the module"
        % asset_path,
    ):
      hub.load_module_spec(path)

  def test_own_saver_is_allowed_unless_something_else_runs_it(self):
    def add_saver(meta_graph):
      def build():
        filename = tf.compat.v1.placeholder_with_default("model", [], "file")
        value = tf.constant(1.0)
        save = tf.raw_ops.SaveV2(
            prefix=filename,
            tensor_names=["x"],
            shape_and_slices=[""],
            tensors=[value],
        )
        with tf.control_dependencies([save]):
          saved = tf.identity(filename, name="saved")
        restore = tf.raw_ops.RestoreV2(
            prefix=filename,
            tensor_names=["x"],
            shape_and_slices=[""],
            dtypes=[tf.float32],
        )[0]
        return filename, saved, restore

      filename, saved, restore = _graft(meta_graph, build)
      meta_graph.saver_def.CopyFrom(
          saver_pb2.SaverDef(
              filename_tensor_name=filename,
              save_tensor_name=saved,
              restore_op_name=restore.split(":")[0],
          )
      )
      return restore

    path = self._hostile("own_saver", add_saver)
    hub.load_module_spec(path)

    def run_saver_on_update(meta_graph):
      restore = add_saver(meta_graph)
      _add_to_collection(meta_graph, _GraphKeys.UPDATE_OPS, restore)

    path = self._hostile("saver_in_update_ops", run_saver_on_update, _TRAIN)
    self.assert_refused(
        path, ["op RestoreV2 (node 'hostile/RestoreV2')"], ["RestoreV2"]
    )

  def test_restore_left_by_a_nested_module_is_allowed_only_as_initializer(
      self,
  ):
    benign = self.benign

    def outer_module_fn():
      text = tf.compat.v1.placeholder(tf.string, [None], name="text")
      inner = hub.Module(benign)
      hub.add_signature(inputs=text, outputs=inner(text) * 2.0)

    outer = os.path.join(self.root, "outer")
    with tf.Graph().as_default():
      module = hub.Module(hub.create_module_spec(outer_module_fn))
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        module.export(outer, session)
    saved_model = _read(outer)
    restores = [
        node.name
        for node in saved_model.meta_graphs[0].graph_def.node
        if node.op == "RestoreV2"
    ]
    self.assertNotEmpty(restores)  # They read the inner module's variables.
    hub.load_module_spec(outer)
    _add_to_collection(
        saved_model.meta_graphs[0], _GraphKeys.UPDATE_OPS, restores[0]
    )
    _write(outer, saved_model)
    self.assert_refused(
        outer, ["op RestoreV2 (node '%s')" % restores[0]], ["RestoreV2"]
    )

  # -- the allowed_ops argument --

  def test_allowed_ops_must_be_names_or_the_sentinel(self):
    with self.assertRaisesRegex(ValueError, r"did you mean \['PyFunc'\]"):
      hub.load_module_spec(self.benign, allowed_ops="PyFunc")
    with self.assertRaisesRegex(ValueError, "op type names"):
      hub.load_module_spec(self.benign, allowed_ops=[None])
    spec = hub.load_module_spec(self.benign)
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "is a ModuleSpec already"):
        hub.Module(spec, allowed_ops=["ReadFile"])
    self.assertEqual(repr(hub.TRUST_ALL_OPS), "hub_estimator.TRUST_ALL_OPS")

  def test_feature_columns_pass_allowed_ops_through(self):
    secret = self.secret

    def edit(meta_graph):
      (name,) = _graft(meta_graph, lambda: tf.io.read_file(secret))
      _add_output(meta_graph, "leak", name)

    path = self._hostile("column_module", edit)
    make_columns = [
        lambda **kw: hub.text_embedding_column("text", path, **kw),
        lambda **kw: hub.sparse_text_embedding_column(
            "text", path, "sqrtn", None, **kw
        ),
    ]
    for make_column in make_columns:
      with self.assertRaisesRegex(
          hub.UnsafeModuleError, "op ReadFile \\(node 'hostile/ReadFile'\\)"
      ):
        make_column()
      column = make_column(allowed_ops=["ReadFile"])
      self.assertEqual(column.allowed_ops, ("ReadFile",))
      self.assertEqual(type(column).from_config(column.get_config()), column)
    with self.assertRaisesRegex(hub.UnsafeModuleError, "op ReadFile"):
      hub.image_embedding_column("images", path, image_size=(2, 2))

  def test_gin_module_sources_pass_allowed_ops_through(self):
    import gin  # pylint: disable=g-import-not-at-top
    from hub_estimator import gin_utils  # pylint: disable=g-import-not-at-top
    from hub_estimator.consume import sources  # pylint: disable=g-import-not-at-top

    secret = self.secret

    def edit(meta_graph):
      (name,) = _graft(meta_graph, lambda: tf.io.read_file(secret))
      _add_output(meta_graph, "leak", name)

    path = self._hostile("source_module", edit)
    with self.assertRaisesRegex(
        gin_utils.ConfigError,
        "(?s)PathSource.path=.*is refused by the op policy.*op ReadFile.*"
        r"PathSource.allowed_ops = \['ReadFile'\]",
    ):
      sources.PathSource(path=path).module_spec()
    for binding in ("['ReadFile']", "%hub_estimator.TRUST_ALL_OPS"):
      gin.clear_config()
      try:
        gin.parse_config([
            "PathSource.path = %r" % path,
            "PathSource.allowed_ops = %s" % binding,
        ])
        spec = sources.PathSource().module_spec()
      finally:
        gin.clear_config()
      self.assertIn("leak", spec.get_output_info_dict())

  def test_spec_built_in_process_is_not_vetted(self):
    def module_fn():
      x = tf.compat.v1.placeholder(tf.string, [], name="x")
      hub.add_signature(inputs=x, outputs=tf.io.read_file(x))

    spec = hub.create_module_spec(module_fn)
    with hub.eval_function_for_module(spec) as f:
      self.assertEqual(f(self.secret.encode()), b"the consumer's secret")


def _registered_op_defs():
  """Every op this TensorFlow registers, by name (OpDef protos)."""
  op_list = op_def_pb2.OpList.FromString(
      pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList())
  )
  return {op_def.name: op_def for op_def in op_list.op}


def _load_saved_model(path):
  from hub_estimator.format import saved_model_io  # pylint: disable=g-import-not-at-top

  return saved_model_io.read_saved_model(path)


if __name__ == "__main__":
  tf.test.main()
