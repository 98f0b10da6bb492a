#!/usr/bin/env bash
# Install everything, migrate the embedded database, import the tasks, and run the service:
# Redis (started, and installed, when absent), a score worker (with the reconciler schedule)
# and a cost worker, so that scoring never waits behind a model being counted, and the web
# process. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/ensure-bwrap.sh
# The embedded Redis keeps its queue on disk (var/redis), as the compose stack does.
REDIS_URL=$(PARETOBOARD_REDIS_PERSIST=1 PARETOBOARD_REDIS_DIR="${PARETOBOARD_REDIS_DIR:-$PWD/var/redis}" scripts/ensure-redis.sh)
export PARETOBOARD_BROKER__URL="${PARETOBOARD_BROKER__URL:-$REDIS_URL/0}"
export PARETOBOARD_BROKER__RESULT_BACKEND="${PARETOBOARD_BROKER__RESULT_BACKEND:-$REDIS_URL/1}"
PB=.venv/bin/paretoboard
TASKS_DIR="${PARETOBOARD_STORAGE__TASKS_DIR:-../shared/data/elue}"
$PB db upgrade
$PB tasks import "$TASKS_DIR"
mkdir -p var/log
$PB worker --queues score --beat >> var/log/worker.log 2>&1 &
worker_pid=$!
$PB worker --queues cost >> var/log/cost-worker.log 2>&1 &
cost_pid=$!
# Pre-flight checks (the model captured and the weights matched while an upload waits): a
# worker of their own, so that a check never waits behind a cost job.
$PB worker --queues preflight >> var/log/preflight-worker.log 2>&1 &
preflight_pid=$!
# First-run data: the published ElasticBERT-base baseline and example submissions evaluated by
# the worker. Idempotent; in the background so the site is up at once and fills in within minutes.
# PARETOBOARD_SEED=0 skips it.
seed_pid=""
if [ "${PARETOBOARD_SEED:-1}" != 0 ]; then
  $PB seed --baselines "$TASKS_DIR/baselines.json" >> var/log/seed.log 2>&1 &
  seed_pid=$!
fi
trap 'kill $seed_pid "$worker_pid" "$cost_pid" "$preflight_pid" 2>/dev/null || true; wait $seed_pid "$worker_pid" "$cost_pid" "$preflight_pid" 2>/dev/null || true' EXIT INT TERM
HOST="${PARETOBOARD_HOST:-127.0.0.1}"
PORT="${PARETOBOARD_PORT:-8000}"
echo "paretoboard: score worker pid $worker_pid (log: var/log/worker.log), cost worker pid $cost_pid (var/log/cost-worker.log), pre-flight worker pid $preflight_pid (var/log/preflight-worker.log; seed: var/log/seed.log); web on http://${HOST}:${PORT}/"
.venv/bin/uvicorn web.app:create_app --factory --host "$HOST" --port "$PORT"
