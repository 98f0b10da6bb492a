#!/usr/bin/env bash
# Print a PostgreSQL URL for the tests: the server on 127.0.0.1:5432 when it answers, else a
# throwaway cluster started from the installed PostgreSQL 15 binaries (installed when absent).
set -euo pipefail
PGPORT_MAIN=5432
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$PGPORT_MAIN"; then
  echo "postgresql+psycopg://postgres@127.0.0.1:${PGPORT_MAIN}/test"
  exit 0
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bindir" ]; then
  echo "installing PostgreSQL from Debian's packages" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi
root="${PARETOBOARD_PG_DIR:-/tmp/paretoboard-pg}"
port=55432
run_as=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home /nonexistent postgres
  run_as=(runuser -u postgres --)
fi
if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
  rm -rf "$root"; mkdir -p "$root"
  [ "$(id -u)" = 0 ] && chown postgres "$root"
  "${run_as[@]}" "$bindir/initdb" -D "$root/data" -U postgres --auth=trust >&2
  "${run_as[@]}" "$bindir/pg_ctl" -D "$root/data" -l "$root/log" -w \
    -o "-h 127.0.0.1 -p $port -k $root" start >&2
  "${run_as[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres test >&2
fi
echo "postgresql+psycopg://postgres@127.0.0.1:${port}/test"
