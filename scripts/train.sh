#!/usr/bin/env bash
# The README's main command: trains the digits MLP publisher into
# runs/digits_mlp (bootstraps ./.venv first). Extra arguments go to the
# trainer and win over the defaults, e.g.
#   bash scripts/train.sh --gin_param="TRAIN_STEPS=200"
#   bash scripts/train.sh --gin_param="MODEL_DIR='/tmp/run1'"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$root/.venv/bin/python" -m trainers.train \
  --gin_file=gin/experiments/digits_mlp.gin \
  --gin_param="MODEL_DIR='runs/digits_mlp'" \
  "$@"
