#!/usr/bin/env bash
# Install everything, migrate the embedded database, import the tasks, and run the service.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
PB=.venv/bin/paretoboard
TASKS_DIR="${PARETOBOARD_STORAGE__TASKS_DIR:-../shared/data/elue}"
$PB db upgrade
$PB tasks import "$TASKS_DIR"
HOST="${PARETOBOARD_HOST:-127.0.0.1}"
PORT="${PARETOBOARD_PORT:-8000}"
echo "paretoboard is starting on http://${HOST}:${PORT}/"
exec .venv/bin/uvicorn server.app:create_app --factory --host "$HOST" --port "$PORT"
