"""Run a program on untrusted input inside bubblewrap, with bounded time, memory and output."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from worker.sandbox import cgroup
from worker.sandbox.command import SANDBOX_GID, SANDBOX_UID, CommandSpec, Tools, build_command
from worker.sandbox.errors import SandboxUnavailableError
from worker.sandbox.identity import (
    HostIdentity,
    acquire_identity,
    check_pool,
    is_root,
    pool_uids,
)
from worker.sandbox.runtime import PYTHON_HOME, VENV, PythonRuntime, reachable_by, runtime_for
from worker.sandbox.seccomp import seccomp_bpf
from worker.sandbox.types import Bind, SandboxLimits, SandboxResult

MIN_BWRAP = (0, 8, 0)  # --size, --perms, --disable-userns, --json-status-fd
KILL_GRACE_SECONDS = 2.0
_READ_CHUNK = 65536

# Environment of the host-side helpers (prlimit, setpriv, bwrap): nothing from the worker's
# environment, whose secrets would otherwise show in the sandbox's /proc/1/environ.
_HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

BASE_ENV: Mapping[str, str] = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
"""Sandbox environment before the runtime's PATH/LD_LIBRARY_PATH and the caller's `env`."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHILD_PID = re.compile(rb'"child-pid"\s*:\s*(\d+)')


def sandbox_python() -> str:
    """Path of the Python interpreter inside the sandbox (e.g. /opt/venv/bin/python)."""
    return runtime_for(_probe_identity()).python


def make_job_dir(base: Path) -> Path:
    """Create `base/<random 32 hex>` (mode 0755) for one job's files, readable in the sandbox.

    Bind sources show in the sandbox's /proc/self/mountinfo: the random name leaks nothing.
    Files written inside with the default umask (0644) are readable by the sandbox uid.
    """
    base = Path(os.path.abspath(base))
    identity = _probe_identity()
    if not reachable_by(base, identity):
        raise SandboxUnavailableError(
            f"job base folder {base} is not reachable by the sandbox uid {identity.uid}: "
            "give it and every folder above it o+x (and o+r on itself)"
        )
    path = base / secrets.token_hex(16)
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)  # whatever the umask
    return path


def gpu_device_nodes() -> list[str]:
    """The NVIDIA device nodes to bind when `gpu=True` (nvidiactl, nvidia0..N, nvidia-uvm...)."""
    nodes = sorted(glob.glob("/dev/nvidia*"))
    return [n for n in nodes if os.path.exists(n)]


# --------------------------------------------------------------------------------------
# availability


_check_lock = threading.Lock()
_checked = False


def check_sandbox() -> None:
    """Raise SandboxUnavailableError, saying what to install or enable, unless sandboxes work.

    Runs `python -c ...` inside a sandbox once; the success is cached for the process.
    """
    global _checked
    if _checked:
        return
    with _check_lock:
        if _checked:
            return
        _tools()
        _check_userns()
        check_pool()
        seccomp_bpf()
        cgroup.probe()
        python = sandbox_python()
        probe = (
            "import sys, os; "
            f"sys.exit(0 if sys.prefix == {VENV!r} or sys.prefix == {PYTHON_HOME!r} else 3)"
        )
        result = _run(
            [python, "-c", probe],
            binds=(),
            limits=SandboxLimits(wall_seconds=60, stdout_bytes=4096, stderr_bytes=65536),
            stdin=None,
            gpu=False,
            env=None,
        )
        if result.returncode != 0:
            raise SandboxUnavailableError(
                f"Python does not start inside the sandbox (exit {result.returncode}, "
                f"{result.killed_reason or 'no signal'}): "
                + result.stderr.decode("utf-8", "replace")[-2000:]
            )
        _checked = True


_tools_cache: Tools | None = None


def _tools() -> Tools:
    global _tools_cache
    if _tools_cache is not None:
        return _tools_cache
    bwrap = shutil.which("bwrap", path=_HOST_ENV["PATH"])
    if bwrap is None:
        raise SandboxUnavailableError(
            "bubblewrap is not installed: run scripts/ensure-bwrap.sh (apt-get install bubblewrap)"
        )
    missing = [t for t in ("prlimit", "setpriv") if not shutil.which(t, path=_HOST_ENV["PATH"])]
    if missing:
        raise SandboxUnavailableError(
            f"{' and '.join(missing)} missing: install util-linux (apt-get install util-linux)"
        )
    bash = shutil.which("bash", path="/usr/bin:/bin")
    if bash is None:
        raise SandboxUnavailableError("bash is missing (apt-get install bash)")
    version = subprocess.run(
        [bwrap, "--version"], capture_output=True, env=_HOST_ENV, check=False, timeout=30
    ).stdout.decode("ascii", "replace")
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", version)
    have = tuple(int(x) for x in found.groups()) if found else (0, 0, 0)
    if have < MIN_BWRAP:
        raise SandboxUnavailableError(
            f"bubblewrap {'.'.join(map(str, have))} is too old; the sandbox needs >= "
            f"{'.'.join(map(str, MIN_BWRAP))} (Debian 12's 0.8.0 is fine)"
        )
    _tools_cache = Tools(
        prlimit=str(shutil.which("prlimit", path=_HOST_ENV["PATH"])),
        setpriv=str(shutil.which("setpriv", path=_HOST_ENV["PATH"])),
        bwrap=bwrap,
        bash=bash,
    )
    return _tools_cache


def _check_userns() -> None:
    for knob, bad in (
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        try:
            value = Path(knob).read_text().strip()
        except OSError:
            continue
        if value == bad:
            name = knob.removeprefix("/proc/sys/").replace("/", ".")
            raise SandboxUnavailableError(
                f"unprivileged user namespaces are disabled ({name} = {value}); the sandbox "
                f"(bubblewrap) needs them: sysctl -w {name}={'1' if bad == '0' else '0'}"
                + (" (or a bigger limit)" if "max_user" in knob else "")
            )


def _probe_identity() -> HostIdentity:
    """The identity used to decide reachability (all pool uids are alike: no groups, no files)."""
    if is_root():
        uid = pool_uids()[0]
        return HostIdentity(uid=uid, gid=uid, switch=True)
    return HostIdentity(uid=os.getuid(), gid=os.getgid(), switch=False)


# --------------------------------------------------------------------------------------
# running


def run_sandboxed(
    argv: Sequence[str],
    *,
    binds: Sequence[Bind],
    limits: SandboxLimits,
    stdin: bytes | None = None,
    gpu: bool = False,
    env: Mapping[str, str] | None = None,
) -> SandboxResult:
    """Run `argv` (paths as seen inside) in a fresh sandbox and return its bounded output.

    Never runs anything unsandboxed: raises SandboxUnavailableError if the sandbox could not be
    set up (nothing ran). The program's own failures are in the result. Blocks until the
    sandbox and every process in it are gone.
    """
    check_sandbox()
    return _run(argv, binds=binds, limits=limits, stdin=stdin, gpu=gpu, env=env)


def _run(
    argv: Sequence[str],
    *,
    binds: Sequence[Bind],
    limits: SandboxLimits,
    stdin: bytes | None,
    gpu: bool,
    env: Mapping[str, str] | None,
) -> SandboxResult:
    if isinstance(argv, str | bytes) or not argv:
        raise ValueError("argv must be a non-empty sequence of strings")
    sandbox_env = dict(BASE_ENV)
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key) or "\0" in value:
            raise ValueError(f"invalid environment variable {key!r}")
    tools = _tools()
    bpf = seccomp_bpf()
    support = cgroup.probe()
    if limits.require_cgroup and support.unbounded:
        raise SandboxUnavailableError(
            cgroup.fallback_message(support) + " This run requires a cgroup: nothing ran."
        )
    with acquire_identity() as identity, _run_group(support, limits) as group:
        runtime = runtime_for(identity)
        sandbox_env.update(runtime.env())
        sandbox_env.update(env or {})
        for bind in binds:
            if not bind.source.exists():
                raise ValueError(f"bind source does not exist: {bind.source}")
            if not reachable_by(bind.source, identity):
                raise SandboxUnavailableError(
                    f"bind source {bind.source} is not reachable by the sandbox uid "
                    f"{identity.uid}: every folder above it needs o+x (use make_job_dir)"
                )
        with _Fds() as fds:
            spec = CommandSpec(
                argv=list(argv),
                limits=limits,
                identity=identity,
                tools=tools,
                ro_binds=_system_binds()
                + _runtime_binds(runtime)
                + [(os.path.abspath(b.source), b.target) for b in binds],
                symlinks=_system_symlinks() + _runtime_symlinks(runtime),
                data_files=[
                    (fds.data(_passwd()), "/etc/passwd"),
                    (fds.data(_group()), "/etc/group"),
                ]
                + (
                    [(fds.data(runtime.pyvenv_cfg()), f"{VENV}/pyvenv.cfg")]
                    if runtime.venv_lib is not None
                    else []
                ),
                env=sandbox_env,
                seccomp_fd=fds.data(bpf),
                status_fd=fds.pipe_for_child("status"),
                marker_fd=fds.pipe_for_child("marker"),
                gpu=gpu,
                gpu_devices=gpu_device_nodes() if gpu else (),
                cgroup_exec=group.exec_argv() if group is not None else (),
            )
            command = build_command(spec)
            return _supervise(command, fds, limits, stdin, group)


@contextlib.contextmanager
def _run_group(
    support: cgroup.CgroupSupport, limits: SandboxLimits
) -> Iterator[cgroup.RunGroup | None]:
    """The run's own cgroup (None where the host has none), removed after its last process."""
    if not support.usable:
        yield None
        return
    group = cgroup.RunGroup(support, limits)
    group.create()
    try:
        yield group
    finally:
        group.remove()


def _system_binds() -> list[tuple[str, str]]:
    binds = [("/usr", "/usr")]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.isdir(path) and not os.path.islink(path):
            binds.append((path, path))
    if os.path.exists("/etc/ld.so.cache"):
        binds.append(("/etc/ld.so.cache", "/etc/ld.so.cache"))
    return binds


def _system_symlinks() -> list[tuple[str, str]]:
    """usrmerge: /bin -> usr/bin etc. are recreated as symlinks, not bound."""
    links = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            links.append((os.readlink(path), path))
    return links


def _runtime_binds(runtime: PythonRuntime) -> list[tuple[str, str]]:
    binds = [(str(runtime.base_prefix), PYTHON_HOME)]
    if runtime.venv_lib is not None:
        binds.append((str(runtime.venv_lib), f"{VENV}/lib"))
    return binds


def _runtime_symlinks(runtime: PythonRuntime) -> list[tuple[str, str]]:
    if runtime.venv_lib is None:
        return []
    return [(f"{PYTHON_HOME}/{runtime.executable}", f"{VENV}/bin/python")]


def _passwd() -> bytes:
    return f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:/tmp:/usr/sbin/nologin\n".encode()


def _group() -> bytes:
    return f"sandbox:x:{SANDBOX_GID}:\n".encode()


class _Fds:
    """File descriptors handed to the helpers: memfds with data, pipes read by the parent."""

    def __init__(self) -> None:
        self.child: list[int] = []
        self.readers: dict[str, int] = {}

    def __enter__(self) -> _Fds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_child_ends()
        for fd in self.readers.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.readers.clear()

    def data(self, content: bytes) -> int:
        fd = os.memfd_create("sandbox-data", os.MFD_CLOEXEC)
        self.child.append(fd)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def pipe_for_child(self, name: str) -> int:
        r, w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(r, False)
        self.readers[name] = r
        self.child.append(w)
        return w

    def close_child_ends(self) -> None:
        for fd in self.child:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.child.clear()


class _Killer:
    """Kills one sandbox: its pid 1 first (bwrap then exits and reaps it), then the group."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.child_pidfd: int | None = None

    def learn_child_pid(self, pid: int) -> None:
        """Pin bwrap's child (the sandbox's pid 1), if it really is bwrap's child."""
        if self.child_pidfd is not None:
            return
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return
        if _ppid(pid) == self.proc.pid:
            self.child_pidfd = pidfd
        else:
            os.close(pidfd)

    def kill(self) -> None:
        if self.child_pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.child_pidfd, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(KILL_GRACE_SECONDS)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.child_pidfd is not None:
            os.close(self.child_pidfd)
            self.child_pidfd = None


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


class _Capture:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, data: bytes) -> bool:
        """Keep up to the cap; False once output went past it."""
        room = self.cap - self.size
        if len(data) > room:
            self.chunks.append(data[:room])
            self.size = self.cap
            self.truncated = True
            return False
        self.chunks.append(data)
        self.size += len(data)
        return True

    def value(self) -> bytes:
        return b"".join(self.chunks)


def _supervise(
    command: list[str],
    fds: _Fds,
    limits: SandboxLimits,
    stdin: bytes | None,
    group: cgroup.RunGroup | None = None,
) -> SandboxResult:
    start = time.monotonic()
    deadline = start + limits.wall_seconds
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=tuple(fds.child),
        start_new_session=True,
        close_fds=True,
        env=_HOST_ENV,
        cwd="/",
        bufsize=0,
    )
    fds.close_child_ends()
    killer = _Killer(proc)
    out, err = _Capture(limits.stdout_bytes), _Capture(limits.stderr_bytes)
    started = False
    status = b""
    killed_reason: str | None = None
    try:
        with _selector(proc, fds, stdin) as sel:
            pending = stdin
            while any(k.data in ("stdout", "stderr") for k in sel.get_map().values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    killed_reason = "wall_timeout"
                    break
                if group is not None and (killed_reason := group.exceeded()):
                    break
                poll = min(remaining, cgroup.POLL_SECONDS) if group is not None else remaining
                for key, _ in sel.select(poll):
                    fd = key.fd
                    name = key.data
                    if name == "stdin":
                        assert proc.stdin is not None
                        pending = _feed(sel, proc.stdin, pending)
                        continue
                    try:
                        data = os.read(fd, 1 if name == "marker" else _READ_CHUNK)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(fd)
                    elif name == "marker":
                        started = True
                        sel.unregister(fd)
                    elif name == "status":
                        status += data
                        if found := _CHILD_PID.search(status[:4096]):
                            killer.learn_child_pid(int(found.group(1)))
                        if len(status) > 4096:
                            sel.unregister(fd)
                    elif not (out if name == "stdout" else err).add(data):
                        killed_reason = f"{name}_limit"
                        break
                if killed_reason:
                    break
        while killed_reason is None and proc.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                killed_reason = "wall_timeout"
            elif group is not None and (killed_reason := group.exceeded()):
                break
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(min(remaining, cgroup.POLL_SECONDS) if group else remaining)
    finally:
        if proc.poll() is None:
            killer.kill()
        killer.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
    elapsed = time.monotonic() - start
    if not started:
        started = _marker_written(fds)
    if not started:
        raise SandboxUnavailableError(_setup_failure(proc.returncode, err.value(), killed_reason))
    returncode: int | None = proc.returncode
    if killed_reason is not None:
        returncode = None
    elif returncode is not None and 128 < returncode <= 128 + 64:
        killed_reason = "signal:" + _signal_name(returncode - 128)
    # The OOM killer took a process of the group between two polls (pid 1: exit 137, or a child
    # while the program went on): the group's own counter says so, whatever the exit status.
    # (CPU time past the total is only ever found while it runs: a per-process limit equal to
    # the total, whose SIGKILL comes first, stays the reason.)
    if (
        group is not None
        and (killed_reason is None or killed_reason.startswith("signal:"))
        and group.oom_kills()
    ):
        killed_reason, returncode = "sandbox_memory", None
    return SandboxResult(
        returncode=returncode,
        stdout=out.value(),
        stderr=err.value(),
        timed_out=killed_reason == "wall_timeout",
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        killed_reason=killed_reason,
        wall_seconds=elapsed,
        cpu_seconds_total=group.cpu_seconds() if group is not None else None,
        memory_peak_bytes=group.memory_peak() if group is not None else None,
        forks_refused=group.pids_refused() if group is not None else 0,
    )


@contextlib.contextmanager
def _selector(
    proc: subprocess.Popen[bytes], fds: _Fds, stdin: bytes | None
) -> Iterator[selectors.BaseSelector]:
    sel = selectors.DefaultSelector()
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            os.set_blocking(stream.fileno(), False)
            sel.register(stream.fileno(), selectors.EVENT_READ, name)
        sel.register(fds.readers["marker"], selectors.EVENT_READ, "marker")
        sel.register(fds.readers["status"], selectors.EVENT_READ, "status")
        if stdin is not None:
            assert proc.stdin is not None
            if stdin:
                os.set_blocking(proc.stdin.fileno(), False)
                sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
            else:
                proc.stdin.close()
        yield sel
    finally:
        sel.close()


def _feed(sel: selectors.BaseSelector, stream: IO[bytes], pending: bytes | None) -> bytes:
    """Write what the pipe takes; close stdin when all is written or the reader is gone."""
    pending = pending or b""
    try:
        written = os.write(stream.fileno(), pending[:_READ_CHUNK])
    except BlockingIOError:
        return pending
    except OSError:  # BrokenPipeError: the program closed its stdin or exited
        written = len(pending)
    rest = pending[written:]
    if not rest:
        sel.unregister(stream.fileno())
        with contextlib.suppress(OSError):
            stream.close()  # through the file object, so the fd is never closed twice
    return rest


def _marker_written(fds: _Fds) -> bool:
    fd = fds.readers.get("marker")
    if fd is None:
        return False
    try:
        return bool(os.read(fd, 1))
    except (BlockingIOError, OSError):
        return False


def _setup_failure(returncode: int | None, stderr: bytes, killed_reason: str | None) -> str:
    detail = stderr.decode("utf-8", "replace").strip()[-2000:] or "(no message)"
    hint = ""
    lowered = detail.lower()
    if "no permissions to create new namespace" in lowered or "operation not permitted" in lowered:
        hint = (
            " Enable unprivileged user namespaces (sysctl user.max_user_namespaces, "
            "kernel.unprivileged_userns_clone=1); in a container, allow unshare/clone/mount in "
            "its seccomp profile (Docker's default profile blocks them)."
        )
    when = f" (killed: {killed_reason})" if killed_reason else ""
    return f"the sandbox failed to start (exit {returncode}{when}); nothing ran: {detail}{hint}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"
