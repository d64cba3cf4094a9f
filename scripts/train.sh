#!/usr/bin/env bash
# The README's main command: trains the digits MLP publisher into
# runs/digits_mlp of this checkout (bootstraps ./.venv first). Extra arguments
# go to the trainer and win over the defaults, e.g.
#   bash scripts/train.sh --gin_param="TRAIN_STEPS=200"
#   bash scripts/train.sh --gin_param="MODEL_DIR='/tmp/run1'"
# The trainer runs in the caller's working directory, so a relative MODEL_DIR
# (or data file) given here is relative to where the command was typed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
# TensorFlow 2.15 logs cuDNN/cuFFT/cuBLAS plugin-registration errors at import,
# GPU or not; 3 keeps its C++ log to fatal errors (Python errors still show).
# TF_CPP_MIN_LOG_LEVEL=0 bash scripts/train.sh shows all of it.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
exec "$root/.venv/bin/python" -m trainers.train \
  --gin_file="$root/gin/experiments/digits_mlp.gin" \
  --gin_param="MODEL_DIR='$root/runs/digits_mlp'" \
  "$@"
