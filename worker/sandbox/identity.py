"""Which host uid the sandbox runs as, and the sweep that leaves none of its processes behind.

RLIMIT_NPROC counts the processes of the *host* uid, and the kernel never applies it to uid 0:
a sandbox started by root (even with `--unshare-user --uid 65534`, which maps back to host root)
could fork without bound. So, when the worker runs as root, bubblewrap is started through
`setpriv --reuid=UID --regid=UID --clear-groups` as a dedicated unprivileged host uid taken from
a small pool (`PARETOBOARD_SANDBOX_UID_BASE`, default 64900, `PARETOBOARD_SANDBOX_UID_COUNT`,
default 16; gid = uid). Each run holds one uid exclusively (an flock, so concurrent sandboxes of
all worker processes on the host get separate process budgets), and before and after the run
every process of that uid is killed, so nothing survives a run. The uids must not belong to
any account (checked). When the worker is not root, the sandbox runs as the worker's own uid
(no setpriv, no pool, no sweep): RLIMIT_NPROC then also counts the worker's own processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import signal
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.sandbox.errors import SandboxUnavailableError

DEFAULT_UID_BASE = 64900
DEFAULT_UID_COUNT = 16
DEFAULT_STATE_DIR = "/var/cache/paretoboard-sandbox"


@dataclass(frozen=True)
class HostIdentity:
    """The host uid/gid the sandbox's processes have; `switch` means setpriv is used (root)."""

    uid: int
    gid: int
    switch: bool


def state_dir() -> Path:
    """Root-owned folder for uid locks and the staged Python runtime (world-traversable)."""
    return Path(os.environ.get("PARETOBOARD_SANDBOX_STATE_DIR", DEFAULT_STATE_DIR))


def pool_uids() -> range:
    """The dedicated host uids used when the worker runs as root."""
    try:
        base = int(os.environ.get("PARETOBOARD_SANDBOX_UID_BASE", DEFAULT_UID_BASE))
        count = int(os.environ.get("PARETOBOARD_SANDBOX_UID_COUNT", DEFAULT_UID_COUNT))
    except ValueError as exc:
        raise SandboxUnavailableError(
            f"PARETOBOARD_SANDBOX_UID_BASE/COUNT must be integers: {exc}"
        ) from exc
    if base < 1000 or count < 1 or base + count > 65534:
        raise SandboxUnavailableError(
            "PARETOBOARD_SANDBOX_UID_BASE/COUNT must give uids in [1000, 65534)"
        )
    return range(base, base + count)


def is_root() -> bool:
    return os.geteuid() == 0


def check_pool() -> None:
    """The pool's uids must be unused by any account: the sweep kills their processes."""
    if not is_root():
        return
    for uid in pool_uids():
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            continue
        raise SandboxUnavailableError(
            f"sandbox uid {uid} belongs to the account {entry.pw_name!r}; set "
            "PARETOBOARD_SANDBOX_UID_BASE to a range of uids no account uses"
        )


def ensure_dir(path: Path, mode: int) -> Path:
    """Create a root-owned folder with exactly `mode`; refuse one owned by someone else."""
    path.mkdir(parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise SandboxUnavailableError(f"{path} must be a folder owned by uid {os.geteuid()}")
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
    return path


@contextlib.contextmanager
def acquire_identity(wait_seconds: float = 600.0) -> Iterator[HostIdentity]:
    """Hold one host identity for one run; sweeps its processes before and after."""
    if not is_root():
        yield HostIdentity(uid=os.getuid(), gid=os.getgid(), switch=False)
        return
    check_pool()
    locks = ensure_dir(state_dir() / "locks", 0o700)
    deadline = time.monotonic() + wait_seconds
    uids = list(pool_uids())
    while True:
        for uid in uids:
            fd = os.open(locks / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                sweep_uid(uid)
                yield HostIdentity(uid=uid, gid=uid, switch=True)
            finally:
                try:
                    sweep_uid(uid)
                finally:
                    os.close(fd)  # releases the flock
            return
        if time.monotonic() > deadline:
            raise SandboxUnavailableError(
                f"all {len(uids)} sandbox uids stayed busy for {wait_seconds:.0f} s; raise "
                "PARETOBOARD_SANDBOX_UID_COUNT or run fewer sandboxes at once"
            )
        time.sleep(0.05)


def _parse_status(text: str) -> tuple[str, list[int]]:
    """(state letter, [real, effective, saved, fs uid]) from a /proc/PID/status text."""
    state = "?"
    uids: list[int] = []
    for line in text.splitlines():
        fields = line.split()
        if line.startswith("State:") and len(fields) > 1:
            state = fields[1]
        elif line.startswith("Uid:"):
            uids = [int(x) for x in fields[1:]]
            break
    return state, uids


def _read_status(pid: int | str) -> tuple[str, list[int]] | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            return _parse_status(f.read().decode("ascii", "replace"))
    except (OSError, ValueError):
        return None


def processes_of_uid(uid: int) -> list[tuple[int, str]]:
    """(pid, state letter) of every process whose real, effective, saved or fs uid is `uid`."""
    found: list[tuple[int, str]] = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (status := _read_status(entry.name)) and uid in status[1]:
            found.append((int(entry.name), status[0]))
    return found


def sweep_uid(uid: int, wait_seconds: float = 5.0) -> list[int]:
    """SIGKILL every process of the dedicated sandbox uid and wait until they are gone.

    Returns the pids still present after `wait_seconds` (zombies whose parent does not reap).
    Only ever called for a pool uid that no account owns.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        procs = processes_of_uid(uid)
        if not procs:
            return []
        for pid, state in procs:
            if state != "Z":
                _kill_if_uid(pid, uid)
        if time.monotonic() > deadline:
            return [pid for pid, _ in procs]
        time.sleep(0.02)


def _kill_if_uid(pid: int, uid: int) -> None:
    """SIGKILL `pid` only if it still belongs to `uid` (a pidfd pins it against pid reuse)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        status = _read_status(pid)
        if status is not None and uid in status[1]:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)
