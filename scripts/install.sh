#!/usr/bin/env bash
# Install the whole environment into .venv from its lock (requirements/lock-all.txt: the base,
# worker and dev extras, every package pinned with its hashes; scripts/lock.sh regenerates it),
# then the project itself. Idempotent: skips when neither the lock nor pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: Python 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    echo "python3-venv missing; installing it with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
stamp=.venv/.paretoboard-installed
want=$(cat pyproject.toml requirements/lock-all.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q pip==26.3
  # torch first, alone: exactly pyproject's pin, the CPU wheel on this machine (a looser pin
  # pulls GBs of CUDA packages); the lock holds its dependencies but not torch itself, whose
  # wheels (CPU, CUDA) differ by build.
  torch=$(grep -o -E '"torch==[^"]+"' pyproject.toml | tr -d '"')
  .venv/bin/python -m pip install -q --no-deps "$torch"
  .venv/bin/python -m pip install -q --require-hashes -r requirements/lock-all.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
