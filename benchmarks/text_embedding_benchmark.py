r"""Time and peak memory of export_text_embedding vs tensorflow/hub's example.

Generates a synthetic word-vector file of --rows x --dim (GloVe text, which
both exporters read, and/or word2vec binary, which only ours reads), then runs
each exporter as a separate process on the same file, --repeats times
interleaved (the order alternating), and prints per run and as medians: wall
time, CPU time (user + system, of the process and its children) and peak
RSS, the ratios ours / theirs, and ours' peak above a baseline process (see
below) as a multiple of the float32 matrix. Each repeat runs each exporter
twice: a timed run, which nothing else on the machine watches, and a memory
run, whose RSS is sampled (reading a process's memory map every 10 ms takes
CPU from the processes measured: on 2 CPUs it added about 15% to ours' wall
time):

  python benchmarks/text_embedding_benchmark.py \
      --tfhub_export_script=/tmp/export.py            # 100,000 x 300, text
  python benchmarks/text_embedding_benchmark.py \
      --rows=2200000 --formats=binary --repeats=1     # ours alone, binary

Peak RSS (of the memory runs) is the larger of the process's own peak
(ru_maxrss, exact) and the peak of its RSS plus the private memory (USS) of
all its descendants (sampled every 10 ms), so helper processes cannot hide
memory: ours parses text in one process per CPU. Wall and CPU time are those
of the timed runs.

ours' peak is also shown above a baseline process (the tool's imports, which
do not include TensorFlow, and nothing read), as a multiple of the float32
matrix. It also measures, in a process of its own, numpy's C parser alone on
the text (the same `np.loadtxt` call, 1 MiB of lines at a time, one process),
as a multiple of theirs.

The peer is `examples/text_embeddings/export.py` at tag v0.15.0 of the
public tensorflow/hub repository; this project does not ship it: check it out
and pass its path as --tfhub_export_script. Without it the benchmark measures
ours alone and says so. Both export with one OOV bucket, punctuation
stripping and the sqrtn combiner (the peer's defaults).
"""

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags
import numpy as np
import psutil

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_integer("rows", 100_000, "Vectors in the generated file.")
flags.DEFINE_integer("dim", 300, "Values per vector.")
flags.DEFINE_list(
    "formats",
    ["text"],
    "Files to generate and export: text (GloVe layout) and/or binary"
    " (word2vec .bin; tensorflow/hub's example cannot read it).",
)
flags.DEFINE_string(
    "tfhub_export_script",
    None,
    "Path of tensorflow/hub's examples/text_embeddings/export.py (tag"
    " v0.15.0); without it only ours is measured.",
)
flags.DEFINE_integer(
    "repeats",
    3,
    "Runs of each exporter, interleaved; medians are reported.",
)
flags.DEFINE_string(
    "work_dir",
    None,
    "Where the vectors files and modules go (removed afterwards); default: a"
    " new temporary folder.",
)
FLAGS = flags.FLAGS

# Loads both modules with tensorflow_hub 0.15 and prints the largest
# difference of their embeddings of a few sentences.
_COMPARE = """
import sys
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
sentences = ["w0", "w1 w2, w3!", "w99 unknown", "", "w7 w7 w12"]
outputs = []
for path in sys.argv[1:]:
  with tf.Graph().as_default():
    out = hub.Module(path)(tf.constant(sentences))
    with tf.compat.v1.Session() as s:
      s.run([tf.compat.v1.global_variables_initializer(),
             tf.compat.v1.tables_initializer()])
      outputs.append(s.run(out))
print(float(np.abs(outputs[0] - outputs[1]).max()))
"""

_BASELINE = """
import sys
from hub_estimator.tools import export_text_embedding
assert "tensorflow" not in sys.modules
"""

# Parses the numbers of a GloVe text file (argv: path, dim) with the numpy
# call tools/vectors.py makes, 1 MiB of lines at a time, without TensorFlow.
_PARSE = """
import sys
import numpy as np
path, dim = sys.argv[1], int(sys.argv[2])
rest, rows = b"", 0
with open(path, "rb") as f:
  while True:
    data = f.read(1 << 20)
    lines = (rest + data).split(b"\\n")
    rest = lines.pop() if data else b""
    if lines and lines[-1] == b"":
      lines.pop()
    if lines:
      rows += len(np.loadtxt(lines, dtype=np.float32, delimiter=" ",
                             comments=None, quotechar=None,
                             usecols=range(1, dim + 1), ndmin=2))
    if not data:
      break
print(rows)
"""


def _generate(path, rows, dim, binary):
  """Writes rows x dim standard-normal vectors; tokens are w0, w1, ..."""
  rng = np.random.default_rng(0)
  block = 10_000
  with open(path, "wb") as f:
    if binary:
      f.write(b"%d %d\n" % (rows, dim))
    for start in range(0, rows, block):
      values = rng.standard_normal([min(block, rows - start), dim])
      values = values.astype(np.float32)
      if binary:
        f.write(
            b"".join(
                b"w%d %s\n" % (start + i, row.astype("<f4").tobytes())
                for i, row in enumerate(values)
            )
        )
      else:
        row_format = " ".join(["%.6f"] * dim)
        f.write(
            "".join(
                "w%d %s\n" % (start + i, row_format % tuple(row))
                for i, row in enumerate(values.tolist())
            ).encode("ascii")
        )


def _run(argv, env=None, sample_memory=True):
  """Runs argv; returns (wall s, CPU s, peak RSS bytes). Exits on failure.

  The peak RSS is the larger of the process's ru_maxrss and, with
  `sample_memory`, the sampled peak of its RSS plus the memory private to
  each of its descendants (USS: a child forked from it shares its pages
  until it execs, as when a library runs a command). The sampling takes CPU
  from the process measured, so time the run without it. CPU seconds (user
  + system, of the process and the children it waited for) are the steadier
  figure on a busy machine.
  """
  if not sample_memory:
    started = time.monotonic()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    _check_exit(argv, status, output)
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024
  started = time.monotonic()
  process = subprocess.Popen(
      argv,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      env=env,
  )
  tree_peak = [0]
  done = threading.Event()

  def sample():
    # A process that ended between listing and reading is not counted.
    with contextlib.suppress(psutil.NoSuchProcess):
      root = psutil.Process(process.pid)
      while not done.is_set():
        total = root.memory_info().rss
        for child in root.children(recursive=True):
          with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_full_info().uss
        tree_peak[0] = max(tree_peak[0], total)
        done.wait(0.01)

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  output = process.stdout.read()
  done.set()
  sampler.join()
  _, status, usage = os.wait4(process.pid, 0)
  seconds = time.monotonic() - started
  _check_exit(argv, status, output)
  rss = max(usage.ru_maxrss * 1024, tree_peak[0])
  return seconds, usage.ru_utime + usage.ru_stime, rss


def _check_exit(argv, status, output):
  """Exits with argv's output if its process (wait status) failed."""
  code = os.waitstatus_to_exitcode(status)
  if code:
    sys.exit("%s failed (%d):\n%s" % (argv[:3], code, output.decode()[-3000:]))


def _timed_and_sampled(argv, env):
  """(wall s, CPU s) of a timed run of argv, peak RSS bytes of a sampled one."""
  seconds, cpu, _ = _run(argv, env, sample_memory=False)
  return seconds, cpu, _run(argv, env)[2]


def _median(runs):
  return tuple(statistics.median(column) for column in zip(*runs))


def _report(name, measured, baseline=None, matrix=None):
  """Prints a run's figures; with a baseline, its peak above it in matrices."""
  seconds, cpu, rss = measured
  print(
      "  %-14s wall %6.1f s  CPU %6.1f s  peak RSS %6.0f MB%s"
      % (
          name + ":",
          seconds,
          cpu,
          rss / 1e6,
          ""
          if baseline is None
          else "  (baseline + %.2fx matrix)" % ((rss - baseline) / matrix),
      )
  )


def _ratios(name, ours, theirs):
  print(
      "  %-14s wall time %.2fx, CPU time %.2fx, peak RSS %.2fx"
      % (
          name + ":",
          ours[0] / theirs[0],
          ours[1] / theirs[1],
          ours[2] / theirs[2],
      )
  )


def main(argv):
  del argv
  env = dict(os.environ, PYTHONPATH=_REPO, TF_CPP_MIN_LOG_LEVEL="2")
  work = FLAGS.work_dir or tempfile.mkdtemp(prefix="text_embedding_bench_")
  os.makedirs(work, exist_ok=True)
  matrix = FLAGS.rows * FLAGS.dim * 4
  print(
      "%d x %d vectors, float32 matrix %.0f MB"
      % (FLAGS.rows, FLAGS.dim, matrix / 1e6)
  )
  if not FLAGS.tfhub_export_script:
    print(
        "No --tfhub_export_script: measuring ours alone (no comparison with"
        " tensorflow/hub's example exporter)."
    )
  try:
    baseline = _run([sys.executable, "-c", _BASELINE], env)[2]
    print(
        "Baseline process (the tool's imports, no TensorFlow): peak RSS %.0f MB"
        % (baseline / 1e6)
    )
    for name in FLAGS.formats:
      binary = name == "binary"
      path = os.path.join(work, "vectors.bin" if binary else "vectors.txt")
      started = time.monotonic()
      # In a child: this process stays small, and so do the peaks of the
      # processes it starts (a child's ru_maxrss counts the starting
      # process's own peak, whose memory it shares until it execs).
      subprocess.run(
          [
              sys.executable,
              "-c",
              (
                  "import sys; sys.path.insert(0, sys.argv[1]); import"
                  " text_embedding_benchmark as b; b._generate(sys.argv[2],"
                  " int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] =="
                  " 'binary')"
              ),
              os.path.dirname(os.path.abspath(__file__)),
              path,
              str(FLAGS.rows),
              str(FLAGS.dim),
              name,
          ],
          check=True,
      )
      print(
          "\n[%s] %s: %.0f MB (generated in %.0f s)"
          % (
              name,
              path,
              os.path.getsize(path) / 1e6,
              time.monotonic() - started,
          )
      )
      compare = FLAGS.tfhub_export_script and not binary
      ours_dir = os.path.join(work, "ours")
      theirs_dir = os.path.join(work, "theirs")
      exporters = {
          "ours": [
              sys.executable,
              "-m",
              "hub_estimator.tools.export_text_embedding",
              "--embedding_file=" + path,
              "--export_path=" + ours_dir,
              "--num_oov_buckets=1",
              "--preprocess=strip_punctuation",
              "--combiner=sqrtn",
          ],
      }
      if compare:
        exporters["theirs"] = [
            sys.executable,
            FLAGS.tfhub_export_script,
            "--embedding_file=" + path,
            "--export_path=" + theirs_dir,
        ]
      runs = {who: [] for who in exporters}
      for repeat in range(FLAGS.repeats):
        order = list(exporters)
        if repeat % 2:
          order.reverse()
        for who in order:
          # A killed earlier benchmark with the same --work_dir may have left
          # them.
          export_dir = ours_dir if who == "ours" else theirs_dir
          shutil.rmtree(export_dir, True)
          seconds, cpu, _ = _run(exporters[who], env, sample_memory=False)
          shutil.rmtree(export_dir)
          rss = _run(exporters[who], env)[2]
          runs[who].append((seconds, cpu, rss))
          _report(
              "%s run %d" % (who, repeat + 1), runs[who][-1], baseline, matrix
          )
        if compare and repeat == 0:
          compared = subprocess.run(
              [sys.executable, "-c", _COMPARE, ours_dir, theirs_dir],
              env=env,
              capture_output=True,
              text=True,
              check=True,
          )
        for directory in (ours_dir, theirs_dir):
          shutil.rmtree(directory, ignore_errors=True)
      print("  medians of %d run(s):" % FLAGS.repeats)
      ours = _median(runs["ours"])
      _report("ours", ours, baseline, matrix)
      if compare:
        theirs = _median(runs["theirs"])
        _report("theirs", theirs, baseline, matrix)
        _ratios("ours / theirs", ours, theirs)
        print(
            "  largest difference of the two modules' embeddings of 5"
            " sentences (tensorflow_hub 0.15 loading both): %s"
            % compared.stdout.strip().splitlines()[-1]
        )
        parse = _timed_and_sampled(
            [sys.executable, "-c", _PARSE, path, str(FLAGS.dim)], env
        )
        print("  for reference, as multiples of theirs' medians:")
        _report("numpy parse alone, one process", parse)
        _ratios("parse / theirs", parse, theirs)
        print(
            "  targets: peak RSS <= 0.3x theirs: %s (%.2fx); time <= 0.2x"
            " theirs: %s (wall %.2fx; CPU %.2fx, over %d CPUs)"
            % (
                "met" if ours[2] <= 0.3 * theirs[2] else "NOT met",
                ours[2] / theirs[2],
                "met" if ours[0] <= 0.2 * theirs[0] else "NOT met",
                ours[0] / theirs[0],
                ours[1] / theirs[1],
                len(os.sched_getaffinity(0)),
            )
        )
      os.remove(path)
  finally:
    if not FLAGS.work_dir:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
