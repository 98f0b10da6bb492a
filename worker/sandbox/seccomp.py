"""The seccomp filter loaded by bubblewrap (`--seccomp FD`) in front of the sandboxed program.

Default action: allow. Denied with EPERM: debugging, mounting, namespaces, kernel keyrings, BPF,
perf, io_uring, module and kexec loading, root changes, new-mount-API calls, fd theft from other
processes, and `socket()` for every family except AF_UNIX (no network even if a namespace leaked).
`clone3` answers ENOSYS so that glibc falls back to `clone`, whose flags a classic BPF filter can
inspect (clone3 passes them in memory): `clone` with any namespace flag is denied. Syscalls of any
architecture other than the native one (e.g. i386 `int 0x80` on x86_64) kill the process.
"""

from __future__ import annotations

import errno
import socket
import tempfile
import threading

from worker.sandbox.errors import SandboxUnavailableError

DENIED_SYSCALLS: tuple[str, ...] = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "mount",
    "umount2",
    "mount_setattr",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "syslog",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "quotactl",
    # Memory held in memfds is not bounded by RLIMIT_AS: refuse them (nothing legitimate in a
    # cost job needs one; /dev/shm is read-only inside too).
    "memfd_create",
    "memfd_secret",
)
"""Syscalls that fail with EPERM inside the sandbox, whatever their arguments."""

CLONE_NAMESPACE_FLAGS: tuple[int, ...] = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
"""`clone` fails with EPERM when any of these flags is set (flags are argument 0 on x86_64 and
aarch64)."""

_lock = threading.Lock()
_cached: bytes | None = None


def seccomp_bpf() -> bytes:
    """The compiled classic-BPF program (what `bwrap --seccomp FD` reads); built once, cached.

    Raises SandboxUnavailableError when pyseccomp or libseccomp is missing.
    """
    global _cached
    with _lock:
        if _cached is None:
            _cached = _build()
        return _cached


def _build() -> bytes:
    try:
        import pyseccomp as sc  # type: ignore[import-untyped]
    except (ImportError, RuntimeError, OSError) as exc:
        raise SandboxUnavailableError(
            "the sandbox needs seccomp: install libseccomp (`apt-get install libseccomp2`) and the "
            f"Python binding (`pip install pyseccomp==0.1.2`); import failed: {exc}"
        ) from exc

    eperm = sc.ERRNO(errno.EPERM)
    try:
        filt = sc.SyscallFilter(sc.ALLOW)
        # Any non-native architecture (i386 int 0x80, x32) kills the whole process.
        filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        for name in DENIED_SYSCALLS:
            filt.add_rule(eperm, name)
        filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        for flag in CLONE_NAMESPACE_FLAGS:
            filt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        filt.add_rule(eperm, "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
        with tempfile.TemporaryFile() as out:
            filt.export_bpf(out)
            out.seek(0)
            program: bytes = out.read()
    except OSError as exc:
        raise SandboxUnavailableError(
            f"could not build the sandbox's seccomp filter with libseccomp: {exc}"
        ) from exc
    if not program or len(program) % 8:
        raise SandboxUnavailableError("libseccomp produced an empty or malformed BPF program")
    return program
