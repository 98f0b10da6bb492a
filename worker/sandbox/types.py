"""Value types of the sandbox API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from core.settings import Settings

SandboxKind = Literal["capture", "preflight", "verify"]

# Paths inside the sandbox reserved by the sandbox itself; `Bind.target` may not touch them.
RESERVED_TARGETS: tuple[str, ...] = (
    "/bin",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt/python",
    "/opt/venv",
    "/proc",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
)


@dataclass(frozen=True)
class SandboxLimits:
    """Resource bounds of one sandboxed run.

    rlimits (`cpu_seconds`, `memory_bytes`, `fsize_bytes`, `nofile`) bound each process; `nproc`
    bounds the number of processes (and threads) of the sandbox's host uid; `tmpfs_bytes` caps the
    writable /tmp; `wall_seconds`, `stdout_bytes` and `stderr_bytes` are enforced by the parent,
    which kills the sandbox when one is exceeded.

    Totals of all the sandbox's processes together (the run's cgroup, worker/sandbox/cgroup.py):
    `total_memory_bytes` (default `memory_bytes`), `total_cpu_seconds` (default `cpu_seconds`)
    and `total_processes` (default `nproc`). `require_cgroup` refuses to run (nothing runs,
    SandboxUnavailableError) where no cgroup of its own can bound them.
    """

    wall_seconds: float = 300.0
    cpu_seconds: int = 600
    memory_bytes: int = 6 * 2**30
    fsize_bytes: int = 64 * 2**20
    nofile: int = 256
    nproc: int = 256
    tmpfs_bytes: int = 64 * 2**20
    stdout_bytes: int = 8 * 2**20
    stderr_bytes: int = 256 * 2**10
    total_memory_bytes: int | None = None
    total_cpu_seconds: float | None = None
    total_processes: int | None = None
    require_cgroup: bool = False

    @property
    def memory_total(self) -> int:
        return self.total_memory_bytes or self.memory_bytes

    @property
    def cpu_total(self) -> float:
        return self.total_cpu_seconds or self.cpu_seconds

    @property
    def processes_total(self) -> int:
        return self.total_processes or self.nproc

    @classmethod
    def for_(cls, kind: SandboxKind, settings: Settings) -> SandboxLimits:
        """The limits of one of the three sandboxed programs, from the settings.

        capture: the cost job's graph capture (a graph without weights, BERT-base: 150 KB; one
        graph per length for models whose length does not export, up to 600 of them);
        preflight: the same capture while the upload request waits; verify: the runner that
        checks the weights against the counted graph. CPU time is the wall-clock limit times the
        torch threads (plus a margin) where no setting names it; it bounds each process and all
        of them together.
        """
        lim = settings.limits
        threads = max(1, lim.sandbox_threads)
        if kind == "capture":
            wall, cpu = lim.sandbox_wall_seconds, lim.sandbox_cpu_seconds
            stdout, stderr = 64 * 2**20, 2**20
        elif kind == "preflight":
            wall, cpu = lim.preflight_seconds, int(lim.preflight_seconds * threads) + 10
            stdout, stderr = 64 * 2**20, 256 * 2**10
        elif kind == "verify":
            wall, cpu = lim.verify_wall_seconds, int(lim.verify_wall_seconds * threads + 60)
            stdout, stderr = 256 * 2**20, 2**20
        else:
            raise ValueError(f"unknown sandbox kind {kind!r}")
        return cls(
            wall_seconds=wall,
            cpu_seconds=cpu,
            memory_bytes=lim.sandbox_memory_bytes,
            nproc=lim.sandbox_processes,
            stdout_bytes=stdout,
            stderr_bytes=stderr,
            total_memory_bytes=lim.sandbox_total_memory_bytes,
            require_cgroup=lim.sandbox_require_cgroup,
        )

    def __post_init__(self) -> None:
        if not self.wall_seconds > 0:
            raise ValueError("wall_seconds must be > 0")
        for name in (
            "cpu_seconds",
            "memory_bytes",
            "fsize_bytes",
            "nofile",
            "nproc",
            "tmpfs_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("stdout_bytes", "stderr_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("total_memory_bytes", "total_cpu_seconds", "total_processes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0")


@dataclass(frozen=True)
class Bind:
    """A host path mounted read-only at `target` inside the sandbox.

    `/proc/self/mountinfo` inside shows `source`: give host job folders random names
    (`make_job_dir`). `source` and its parents must be reachable by the sandbox's host uid.
    """

    source: Path
    target: str

    def __post_init__(self) -> None:
        target = PurePosixPath(self.target)
        if not target.is_absolute() or ".." in target.parts or str(target) != self.target:
            raise ValueError(f"bind target must be a normalised absolute path: {self.target!r}")
        if self.target == "/":
            raise ValueError("bind target may not be /")
        for reserved in RESERVED_TARGETS:
            if self.target == reserved or self.target.startswith(reserved + "/"):
                raise ValueError(f"bind target {self.target!r} is reserved by the sandbox")
        if reserved_ancestor := next(
            (r for r in RESERVED_TARGETS if r.startswith(self.target + "/")), None
        ):
            raise ValueError(f"bind target {self.target!r} would hide {reserved_ancestor}")


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run produced.

    `returncode` is the program's exit status as bubblewrap reports it (128+N when it died of
    signal N), None when the parent killed the sandbox (`timed_out` or an output cap). Output
    beyond a cap is dropped and the sandbox killed (`*_truncated`). `killed_reason` is
    "wall_timeout", "stdout_limit" or "stderr_limit" when the parent killed it,
    "sandbox_memory" or "sandbox_cpu" when all its processes together went past
    `total_memory_bytes` (the kernel's OOM killer acted in its cgroup) or `total_cpu_seconds`
    (these come from the cgroup's own counters: trusted), else
    "signal:NAME" when the exit status says the program died of a signal: SIGKILL for the CPU
    limit (the program is its pid namespace's init, which ignores SIGXCPU, so the kernel's
    SIGKILL at the hard limit ends it), SIGSEGV, ... That last form comes from the untrusted
    program's exit status (exit(137) looks the same) and is informative only. Everything
    else in the result (output, return code) is untrusted data.
    """

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    stdout_truncated: bool
    stderr_truncated: bool
    killed_reason: str | None
    wall_seconds: float
    cpu_seconds_total: float | None = None
    """CPU time of all the sandbox's processes together (its cgroup; None without one)."""
    memory_peak_bytes: int | None = None
    """Most memory all its processes held at once (its cgroup; None without one)."""
    forks_refused: int = 0
    """Forks its cgroup's process limit refused."""
