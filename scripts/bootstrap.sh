#!/usr/bin/env bash
# Creates ./.venv (once) and installs into it the environment CI tests:
# requirements.lock (exact versions of the runtime and test dependencies),
# then the project itself, editable, without dependencies. Prints one line per
# phase; pip's own output goes to .venv/bootstrap.log, named if a step fails.
# Re-running is cheap and silent while pyproject.toml and requirements.lock
# are unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
lock="$root/requirements.lock"
stamp="$venv/.hub_estimator_installed"
log="$venv/bootstrap.log"
# The Python version requirements.lock was compiled for (see README, Install).
lock_python="3.11"

say() { echo "bootstrap: $*"; }

if [ ! -x "$venv/bin/python" ]; then
  python_bin=""
  for candidate in python3.11 python3.10 python3.9 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c \
        'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 11) else 1)'; then
      python_bin="$candidate"
      break
    fi
  done
  if [ -z "$python_bin" ]; then
    say "need Python 3.9-3.11 (TensorFlow 2.15); none found on PATH" >&2
    exit 1
  fi
  say "creating .venv ($("$python_bin" --version 2>&1))"
  "$python_bin" -m venv "$venv"
fi

want="$(cat "$root/pyproject.toml" "$lock" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

# Runs pip with its output appended to the log; on failure names the log and
# shows its end.
pip_logged() {
  if ! "$venv/bin/python" -m pip --disable-pip-version-check \
      install --progress-bar off "$@" >>"$log" 2>&1; then
    say "failed: pip install $*" >&2
    say "pip's output is in $log; its last lines:" >&2
    tail -n 15 "$log" >&2
    exit 1
  fi
}

: >"$log"
venv_python="$("$venv/bin/python" -c \
  'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$venv_python" = "$lock_python" ]; then
  say "installing locked dependencies (first run only, a few minutes:" \
    "TensorFlow is ~475 MB); log: $log"
  pip_logged -r "$lock"
  # setuptools comes from the lock, so the build needs no download.
  pip_logged --no-deps --no-build-isolation -e "$root"
else
  say "Python $venv_python: requirements.lock is for $lock_python; installing" \
    "from pyproject.toml's ranges instead (first run only, a few minutes);" \
    "log: $log"
  pip_logged -e "$root[test]"
fi
echo "$want" >"$stamp"
say "done"
