#!/bin/sh
# Install bubblewrap (the worker sandbox, see worker/sandbox/) only if `bwrap` is absent.
# Idempotent; needs root (or sudo) and apt. util-linux (prlimit, setpriv) is Essential on Debian.
set -eu

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends bubblewrap

command -v bwrap >/dev/null 2>&1 || { echo "ensure-bwrap: bwrap still missing after install" >&2; exit 1; }
