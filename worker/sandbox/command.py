"""The command line that starts a sandbox: [cgexec], prlimit, then setpriv (root only), bwrap.

Pure: everything host-dependent (tool paths, file descriptor numbers, device nodes, host
identity, mounts) comes in through `CommandSpec`, so the argv can be unit-tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from worker.sandbox.identity import HostIdentity
from worker.sandbox.types import SandboxLimits

SANDBOX_UID = 65534
SANDBOX_GID = 65534
SANDBOX_HOSTNAME = "sandbox"

# `bash -c` shim, the first thing run inside: it proves that bubblewrap finished setting up
# (one byte on the marker fd), closes that fd so the program cannot use it, then execs the
# program. No byte on the marker pipe = the sandbox failed before running anything.
SHIM = 'printf 1 >&{fd} && exec {fd}>&- && exec "$@"'


@dataclass(frozen=True)
class Tools:
    prlimit: str
    setpriv: str
    bwrap: str
    bash: str


@dataclass(frozen=True)
class CommandSpec:
    argv: Sequence[str]
    limits: SandboxLimits
    identity: HostIdentity
    tools: Tools
    ro_binds: Sequence[tuple[str, str]]
    """(host source, inside target), in mount order."""
    data_files: Sequence[tuple[int, str]]
    """(fd, inside path): read-only files bwrap fills from the fd (passwd, pyvenv.cfg...)."""
    symlinks: Sequence[tuple[str, str]]
    """(link text, inside path)."""
    env: Mapping[str, str]
    seccomp_fd: int
    status_fd: int
    marker_fd: int
    gpu: bool = False
    gpu_devices: Sequence[str] = field(default_factory=tuple)
    cgroup_exec: Sequence[str] = field(default_factory=tuple)
    """`cgexec -g ...:GROUP --sticky`: the first words, so every process is in the run's cgroup."""


def prlimit_argv(tools: Tools, limits: SandboxLimits, *, gpu: bool) -> list[str]:
    """rlimits set by util-linux prlimit on itself, inherited through exec by everything after.

    CUDA reserves far more address space than it uses, so with a GPU the data segment
    (RLIMIT_DATA) is bounded instead of the address space (RLIMIT_AS).
    """
    memory = f"--data={limits.memory_bytes}" if gpu else f"--as={limits.memory_bytes}"
    return [
        tools.prlimit,
        f"--cpu={limits.cpu_seconds}",
        memory,
        f"--fsize={limits.fsize_bytes}",
        f"--nofile={limits.nofile}",
        f"--nproc={limits.nproc}",
        "--core=0",
        "--",
    ]


def setpriv_argv(tools: Tools, identity: HostIdentity) -> list[str]:
    """Drop from root to the dedicated host uid, so that RLIMIT_NPROC applies (root is exempt)."""
    if not identity.switch:
        return []
    return [
        tools.setpriv,
        f"--reuid={identity.uid}",
        f"--regid={identity.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def bwrap_argv(spec: CommandSpec) -> list[str]:
    tools = spec.tools
    args = [
        tools.bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        # The program itself is the namespace's pid 1, a child of the bwrap monitor outside,
        # which reaps it: with bwrap's own init as pid 1 the monitor exits first and that init
        # lingers as a zombie until the host's init reaps it. When pid 1 exits, the kernel
        # kills every other process of the namespace.
        "--as-pid-1",
        "--new-session",
        "--clearenv",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
        "--hostname",
        SANDBOX_HOSTNAME,
        "--cap-drop",
        "ALL",
    ]
    for source, target in spec.ro_binds:
        args += ["--ro-bind", source, target]
    for text, path in spec.symlinks:
        args += ["--symlink", text, path]
    for fd, path in spec.data_files:
        args += ["--perms", "0444", "--ro-bind-data", str(fd), path]
    args += ["--size", str(spec.limits.tmpfs_bytes), "--tmpfs", "/tmp"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if spec.gpu:
        for node in spec.gpu_devices:
            args += ["--dev-bind", node, node]
    # The root tmpfs bwrap builds is writable and unbounded by default: make it read-only.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"]
    for key, value in spec.env.items():
        args += ["--setenv", key, value]
    args += [
        "--seccomp",
        str(spec.seccomp_fd),
        "--json-status-fd",
        str(spec.status_fd),
        "--",
        tools.bash,
        "-c",
        SHIM.format(fd=spec.marker_fd),
        "sandbox",
        *spec.argv,
    ]
    return args


def build_command(spec: CommandSpec) -> list[str]:
    """[cgexec ...] prlimit ... -- [setpriv ... --] bwrap ... -- bash -c SHIM sandbox ARGV..."""
    return (
        list(spec.cgroup_exec)
        + prlimit_argv(spec.tools, spec.limits, gpu=spec.gpu)
        + setpriv_argv(spec.tools, spec.identity)
        + bwrap_argv(spec)
    )
