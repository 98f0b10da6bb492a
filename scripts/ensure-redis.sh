#!/usr/bin/env bash
# Make sure a Redis server answers on 127.0.0.1:${REDIS_PORT:-6379}: start one (installing
# redis-server from Debian's packages when absent) if none does. Prints the Redis URL.
# PARETOBOARD_REDIS_PERSIST=1 (scripts/run.sh) starts it with an append-only file in
# $PARETOBOARD_REDIS_DIR, so queued jobs survive a restart, as in docker-compose.yml.
set -euo pipefail
port="${REDIS_PORT:-6379}"
ping() { (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
if ! ping; then
  if ! command -v redis-server >/dev/null; then
    echo "installing redis-server from Debian's packages" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  fi
  dir="${PARETOBOARD_REDIS_DIR:-/tmp/paretoboard-redis}"
  mkdir -p "$dir"
  persist=(--save "" --appendonly no)
  if [ "${PARETOBOARD_REDIS_PERSIST:-0}" = 1 ]; then
    persist=(--save "" --appendonly yes --appendfsync everysec)
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
    "${persist[@]}" --logfile "$dir/redis.log" >&2
  for _ in $(seq 50); do ping && break; sleep 0.1; done
  ping || { echo "redis-server did not start; see $dir/redis.log" >&2; exit 1; }
fi
echo "redis://127.0.0.1:${port}"
