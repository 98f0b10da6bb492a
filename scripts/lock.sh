#!/usr/bin/env bash
# Regenerate the lock files in requirements/ from pyproject.toml; run it after changing a pin
# (tests/test_dependencies.py fails until the locks agree with pyproject.toml again).
#   requirements/lock-web.txt     the base: the web process, migrations, the operator CLI
#   requirements/lock-worker.txt  the base and the worker extra (score, cost, pre-flight workers)
#   requirements/lock-all.txt     the base, worker and dev extras (scripts/install.sh, CI)
# Every package is pinned with its hashes, for CPython 3.11 on Linux x86_64, except torch: its
# exact pin lives in pyproject.toml and each install puts the right build of it in first, with
# --no-deps (the CPU build here and in the app image, the CUDA build in the cost-worker image;
# their wheels and hashes differ), then installs a lock, which holds torch's own dependencies.
# The lock of the whole environment is resolved first; the other two are constrained by it, so
# a package has the same version in all three.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-.venv/bin/uv}"
# torch is resolved from its CPU build (no nvidia-* packages): this machine's local wheels where
# they hold it, else the CPU index's page of torch wheels.
if [ -z "${TORCH_FIND_LINKS:-}" ]; then
  if compgen -G '/opt/wheels/torch-*+cpu-cp311-*.whl' > /dev/null; then
    TORCH_FIND_LINKS=/opt/wheels
  else
    TORCH_FIND_LINKS=https://download.pytorch.org/whl/cpu/torch/
  fi
fi
compile() {
  "$UV" pip compile pyproject.toml --quiet --python-version 3.11 \
    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package torch \
    --find-links "$TORCH_FIND_LINKS" --custom-compile-command scripts/lock.sh "$@"
}
compile --extra worker --extra dev -o requirements/lock-all.txt
compile --extra worker -c requirements/lock-all.txt -o requirements/lock-worker.txt
compile -c requirements/lock-all.txt -o requirements/lock-web.txt
if grep -E -i -l '^(nvidia-|triton==)' requirements/lock-*.txt; then
  echo "error: the CUDA build of torch was resolved (its nvidia-* packages are locked above);" \
    "point TORCH_FIND_LINKS at the CPU build" >&2
  exit 1
fi
