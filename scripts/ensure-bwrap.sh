#!/bin/sh
# Install bubblewrap (the worker sandbox, see worker/sandbox/) only if `bwrap` is absent,
# libseccomp2 (loaded by pyseccomp) only if its library is missing, and libcgroup's tools
# (cgroup-tools: cgcreate/cgset/cgexec/cgdelete, one cgroup per sandbox run for the whole-sandbox
# limits, worker/sandbox/cgroup.py) only if `cgcreate` is absent. Idempotent; needs root (or
# sudo) and apt. prlimit and setpriv come with util-linux, which Debian always has.
set -eu

need=""
command -v bwrap >/dev/null 2>&1 || need="bubblewrap"
command -v cgcreate >/dev/null 2>&1 || need="$need cgroup-tools"
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2'; then
    need="$need libseccomp2"
fi
[ -n "$need" ] || exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086  # $need is a list of package names
$SUDO apt-get install -y -q --no-install-recommends $need

command -v bwrap >/dev/null 2>&1 || { echo "ensure-bwrap: bwrap still missing after install" >&2; exit 1; }
