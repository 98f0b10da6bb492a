"""Whole-sandbox limits: one cgroup per sandboxed run bounds all its processes together.

rlimits bound each process: four children each under a 3 GiB RLIMIT_AS held 3,968 MB in all.
So every run gets a cgroup of its own, made with libcgroup's tools (Debian `cgroup-tools`,
cgroup v1 and v2): `cgcreate` makes `paretoboard-sandbox/run-<random>` with the memory and pids
controllers (plus cpuacct on v1), `cgset` sets the totals, and `cgexec --sticky` is the first
word of the sandbox's command line, so the group holds the sandbox's first process and every
descendant. The totals:

- memory: memory.max + memory.swap.max=0 + memory.oom.group=1 (v2), memory.limit_in_bytes +
  memory.memsw.limit_in_bytes (v1): the kernel's OOM killer acts inside the group; the runner
  sees the kill in the group's counter and kills the whole sandbox;
- processes: pids.max (fork fails with EAGAIN past it, whatever uid the processes have);
- CPU time: no cgroup knob bounds a total, so the runner reads the group's usage (cpu.stat
  usage_usec on v2, cpuacct.usage on v1) every POLL_SECONDS and kills the sandbox past it.

Files of the group are *read* here directly (the counters, its process list): libcgroup's
`cgget` would fork a process on every poll, and it has no command that kills a group's processes
(cgroup.kill on v2, each pid of cgroup.procs on v1), needed before `cgdelete` can remove it.

Where no usable cgroup exists (cgroup-tools missing, no controller mounted, no permission: a
non-root worker or a container whose /sys/fs/cgroup is read-only), the sandboxes run without
one and the totals fall back to the worker's own cgroup (a container's mem_limit/pids_limit):
`startup_report` says which totals are then unbounded, and `limits.sandbox_require_cgroup`
refuses to start instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from worker.sandbox.errors import SandboxUnavailableError
from worker.sandbox.types import SandboxLimits

log = logging.getLogger(__name__)

DEFAULT_PARENT = "paretoboard-sandbox"
POLL_SECONDS = 0.1
"""How often the runner reads the group's CPU time and OOM kills while a sandbox runs."""
TOTALS = ("memory", "pids", "cpu")
_TOOLS = ("cgcreate", "cgset", "cgexec", "cgdelete")
_TOOL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_V1_CONTROLLER = {"memory": "memory", "pids": "pids", "cpu": "cpuacct"}
_UNBOUNDED = 2**62  # v1 writes "no limit" as 9223372036854771712
_TOTAL_NAMES = {"memory": "memory", "pids": "process count", "cpu": "CPU time"}


def parent() -> str:
    """Folder, under each hierarchy's root, that holds the runs' groups."""
    name = os.environ.get("PARETOBOARD_SANDBOX_CGROUP", DEFAULT_PARENT).strip("/")
    if not name or ".." in name.split("/"):
        raise SandboxUnavailableError("PARETOBOARD_SANDBOX_CGROUP must be a relative folder name")
    return name


@dataclass(frozen=True)
class CgroupSupport:
    """What this host offers for whole-sandbox limits (found once per process by `probe`)."""

    version: int | None  # 1 or 2; None: no usable hierarchy
    mounts: dict[str, Path] = field(default_factory=dict)  # total -> hierarchy mount point
    tools: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why there is no cgroup per run (None: there is one)

    @property
    def usable(self) -> bool:
        return self.problem is None and bool(self.mounts)

    @property
    def unbounded(self) -> list[str]:
        """The totals no cgroup of the sandbox's own bounds."""
        return [t for t in TOTALS if not self.usable or t not in self.mounts]

    def controllers(self) -> str:
        """The `-g` controller list for libcgroup ("memory,pids,cpuacct" on v1)."""
        if self.version == 1:
            names = {_V1_CONTROLLER[t] for t in self.mounts}
        else:  # v2: cpu.stat (usage_usec) is in every group, without the cpu controller
            names = {t for t in self.mounts if t != "cpu"}
        return ",".join(sorted(names))


def _mounts_table() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of every cgroup mount, from /proc/self/mounts."""
    found: list[tuple[str, str, set[str]]] = []
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            point = parts[1].replace("\\040", " ")
            found.append((point, parts[2], set(parts[3].split(","))))
    return found


def find_hierarchies() -> tuple[int | None, dict[str, Path]]:
    """The cgroup version whose hierarchies hold the memory controller, and each total's mount.

    A hybrid host (v1 controllers plus an empty v2 `unified` hierarchy) is v1.
    """
    table = _mounts_table()
    v1 = {
        total: Path(point)
        for point, fstype, options in table
        if fstype == "cgroup"
        for total, name in _V1_CONTROLLER.items()
        if name in options
    }
    if v1:
        return 1, v1
    for point, fstype, _ in table:
        if fstype != "cgroup2":
            continue
        try:
            available = set((Path(point) / "cgroup.controllers").read_text().split())
        except OSError:
            continue
        mounts: dict[str, Path] = {t: Path(point) for t in ("memory", "pids") if t in available}
        if mounts:
            mounts["cpu"] = Path(point)  # cpu.stat is always there
            return 2, mounts
    return None, {}


def _find_tools() -> dict[str, str] | str:
    tools = {name: shutil.which(name, path=_TOOL_PATH) for name in _TOOLS}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        return (
            f"{', '.join(missing)} not found: install libcgroup's tools (apt-get install "
            "cgroup-tools; scripts/ensure-bwrap.sh does)"
        )
    return {name: str(path) for name, path in tools.items()}


_probe_lock = threading.Lock()
_probed: CgroupSupport | None = None


def probe(*, refresh: bool = False) -> CgroupSupport:
    """Find the tools and hierarchies, then make and remove one group as a run would."""
    global _probed
    with _probe_lock:
        if _probed is not None and not refresh:
            return _probed
        tools = _find_tools()
        version, mounts = find_hierarchies()
        if isinstance(tools, str):
            support = CgroupSupport(version, mounts, {}, tools)
        elif version is None:
            support = CgroupSupport(
                None,
                {},
                tools,
                "no cgroup hierarchy with the memory or pids controller is mounted",
            )
        else:
            support = CgroupSupport(version, mounts, tools)
            try:
                group = RunGroup(support, SandboxLimits(wall_seconds=1, memory_bytes=2**30))
                group.create()
                group.remove()
            except SandboxUnavailableError as exc:
                support = CgroupSupport(version, mounts, tools, str(exc))
        _probed = support
        return support


def container_limits() -> dict[str, str]:
    """The worker's own cgroup limits (a container's), in words, for the start-up warning."""
    version, mounts = find_hierarchies()
    own = _own_cgroups()
    said: dict[str, str] = {}
    if version == 1:
        files = {"memory": "memory.limit_in_bytes", "pids": "pids.max"}
        for total, name in files.items():
            if total in mounts:
                path = mounts[total] / own.get(_V1_CONTROLLER[total], "/").lstrip("/") / name
                said[total] = _limit_words(_read(path), total)
    elif version == 2:
        base = mounts["memory" if "memory" in mounts else "pids"] / own.get("", "/").lstrip("/")
        for total, name in (("memory", "memory.max"), ("pids", "pids.max")):
            said[total] = _limit_words(_read(base / name), total)
    said.setdefault("memory", "unknown (no memory controller)")
    said.setdefault("pids", "unknown (no pids controller)")
    said["cpu"] = "unbounded (a cgroup bounds the CPU rate, never a total)"
    return said


def _own_cgroups() -> dict[str, str]:
    """controller -> path of this process's group ("" for the v2 hierarchy)."""
    found: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                found[name] = parts[2]
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _limit_words(value: str, total: str) -> str:
    if not value:
        return "unknown (unreadable)"
    if value == "max" or (value.isdigit() and int(value) >= _UNBOUNDED):
        return "unbounded"
    if total == "memory" and value.isdigit():
        return f"{int(value) / 2**30:.3g} GiB"
    return f"{value} processes" if total == "pids" else value


def startup_report(*, require: bool) -> CgroupSupport:
    """At worker start: log which totals no cgroup bounds (once), or refuse when required."""
    support = probe()
    if not support.unbounded:
        log.info(
            "sandbox totals: one cgroup v%s per sandbox run bounds memory, processes and CPU "
            "time of all its processes together",
            support.version,
        )
        return support
    message = fallback_message(support)
    if require:
        raise SandboxUnavailableError(
            message + " limits.sandbox_require_cgroup is set: refusing to run sandboxes"
        )
    log.warning("%s", message)
    return support


def fallback_message(support: CgroupSupport) -> str:
    limits = container_limits()
    unbounded = ", ".join(_TOTAL_NAMES[t] for t in support.unbounded)
    return (
        f"SANDBOX TOTALS NOT BOUNDED BY A CGROUP: {unbounded} of all of a sandbox's processes "
        f"together ({support.problem or 'controller not mounted'}). Each process is still "
        "bounded by its rlimits; all sandboxes together only by the worker's own cgroup: "
        f"memory {limits['memory']}, processes {limits['pids']}, CPU time {limits['cpu']}."
    )


class RunGroup:
    """One sandbox run's cgroup: created before its first process, removed after its last."""

    def __init__(self, support: CgroupSupport, limits: SandboxLimits) -> None:
        self.support = support
        self.limits = limits
        self.name = f"{parent()}/run-{secrets.token_hex(8)}"
        self.created = False

    def path(self, total: str) -> Path:
        return self.support.mounts[total] / self.name

    def _tool(self, name: str, *args: str) -> None:
        done = subprocess.run(
            [self.support.tools[name], *args],
            capture_output=True,
            env={"PATH": _TOOL_PATH, "LANG": "C.UTF-8"},
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[-500:]
            raise SandboxUnavailableError(f"{name} {' '.join(args)} failed: {detail}")

    def settings(self) -> list[str]:
        """The `cgset -r` values: the totals of `limits`."""
        memory = self.limits.memory_total
        values: list[str] = []
        # swap accounting is a kernel option: where it is off, swap is not a way out either
        if self.support.version == 1:
            if "memory" in self.support.mounts:
                values.append(f"memory.limit_in_bytes={memory}")
                if (self.path("memory") / "memory.memsw.limit_in_bytes").exists():
                    values.append(f"memory.memsw.limit_in_bytes={memory}")
        elif "memory" in self.support.mounts:
            values += [f"memory.max={memory}", "memory.oom.group=1"]
            if (self.path("memory") / "memory.swap.max").exists():
                values.append("memory.swap.max=0")
        if "pids" in self.support.mounts:
            values.append(f"pids.max={self.limits.processes_total}")
        return values

    def create(self) -> None:
        controllers = self.support.controllers()
        self._tool("cgcreate", "-g", f"{controllers}:{self.name}")
        self.created = True
        try:
            args: list[str] = []
            for value in self.settings():
                args += ["-r", value]
            if args:
                self._tool("cgset", *args, self.name)
        except BaseException:
            self.remove()
            raise

    def exec_argv(self) -> list[str]:
        """Command words that start the rest of the command line inside the group."""
        controllers = self.support.controllers()
        return [self.support.tools["cgexec"], "-g", f"{controllers}:{self.name}", "--sticky"]

    def cpu_seconds(self) -> float | None:
        if "cpu" not in self.support.mounts:
            return None
        if self.support.version == 1:
            value = _read(self.path("cpu") / "cpuacct.usage")
            return int(value) / 1e9 if value.isdigit() else None
        return _keyed(self.path("cpu") / "cpu.stat", "usage_usec", 1e-6)

    def oom_kills(self) -> int:
        if "memory" not in self.support.mounts:
            return 0
        name = "memory.oom_control" if self.support.version == 1 else "memory.events"
        return int(_keyed(self.path("memory") / name, "oom_kill", 1) or 0)

    def memory_peak(self) -> int | None:
        if "memory" not in self.support.mounts:
            return None
        name = "memory.max_usage_in_bytes" if self.support.version == 1 else "memory.peak"
        value = _read(self.path("memory") / name)
        return int(value) if value.isdigit() else None

    def pids_refused(self) -> int:
        """How many forks pids.max refused."""
        if "pids" not in self.support.mounts:
            return 0
        return int(_keyed(self.path("pids") / "pids.events", "max", 1) or 0)

    def exceeded(self) -> str | None:
        """`sandbox_memory` / `sandbox_cpu` once a total was exceeded, else None."""
        if self.oom_kills():
            return "sandbox_memory"
        used = self.cpu_seconds()
        if used is not None and used > self.limits.cpu_total:
            return "sandbox_cpu"
        return None

    def _members(self) -> set[int]:
        pids: set[int] = set()
        for total in self.support.mounts:
            for line in _read(self.path(total) / "cgroup.procs").split():
                if line.isdigit():
                    pids.add(int(line))
        return pids

    def remove(self, wait_seconds: float = 5.0) -> None:
        """Kill whatever is left in the group, then remove it; raise if it stays."""
        if not self.created:
            return
        deadline = time.monotonic() + wait_seconds
        while members := self._members():
            kill = self.path("memory" if "memory" in self.support.mounts else "pids")
            if self.support.version == 2 and (kill / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (kill / "cgroup.kill").write_text("1")
            else:
                for pid in members:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        # One cgdelete per controller: libcgroup 2.0.2 given "-g cpuacct,memory,pids:G" on a
        # host with one hierarchy per controller removes the first one and reports success.
        for total in self.support.mounts:
            controller = _V1_CONTROLLER[total] if self.support.version == 1 else total
            while self.path(total).exists():
                if time.monotonic() > deadline:
                    raise SandboxUnavailableError(
                        f"the sandbox's cgroup {self.path(total)} could not be removed"
                    )
                with contextlib.suppress(SandboxUnavailableError):  # busy: tried again
                    self._tool("cgdelete", "-g", f"{controller}:{self.name}")
                if self.path(total).exists():
                    time.sleep(0.05)
            if self.support.version == 2:
                break  # one hierarchy: one folder
        self.created = False


def _keyed(path: Path, key: str, scale: float) -> float | None:
    """The value of `key` in a "key value" per line file, times `scale`."""
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1]) * scale
    return None


def leftover_groups() -> list[Path]:
    """Run groups present on the host (none once every run has ended)."""
    _, mounts = find_hierarchies()
    found: set[Path] = set()
    for mount in set(mounts.values()):
        folder = mount / parent()
        if folder.is_dir():
            found.update(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("run-"))
    return sorted(found)
