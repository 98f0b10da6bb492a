#!/bin/sh
# Install Debian's `docker-compose` (v1.29) only if neither `docker compose` (v2) nor
# `docker-compose` is present. The tests only validate docker-compose.yml with it
# (`config --quiet`), which needs no Docker engine. Idempotent; needs root (or sudo) and apt.
# Never fails the caller: the compose test skips, saying why, when the binary is still missing.
set -u

if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends docker-compose; } >&2; then
    echo "ensure-docker-compose: could not install docker-compose; the compose test will be skipped" >&2
fi
exit 0
