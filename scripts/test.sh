#!/usr/bin/env bash
# Install everything, start what the tests need when absent, then lint, type-check and test.
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow, or -k parser).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/ensure-bwrap.sh
scripts/ensure-chromium.sh  # Debian's Chromium for the browser tests (tests/test_browser.py)
scripts/ensure-docker-compose.sh  # validates docker-compose.yml (tests/test_compose.py)
PARETOBOARD_TEST_PG_URL="${PARETOBOARD_TEST_PG_URL:-$(scripts/ensure-postgres.sh)}"
PARETOBOARD_TEST_REDIS_URL="${PARETOBOARD_TEST_REDIS_URL:-$(scripts/ensure-redis.sh)}"
export PARETOBOARD_TEST_PG_URL PARETOBOARD_TEST_REDIS_URL
echo "PostgreSQL for tests: $PARETOBOARD_TEST_PG_URL; Redis: $PARETOBOARD_TEST_REDIS_URL"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest -m "not slow and not gpu" "$@"
