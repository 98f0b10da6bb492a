#!/usr/bin/env bash
# Install the project and its pinned dependencies into .venv (idempotent; skips when up to date).
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
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch==2.13.0 exactly: the CPU wheel on this machine; a looser pin pulls GBs of CUDA packages.
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
