"""The worker sandbox against real bubblewrap: each attack fails and the host is unaffected.

No mocks for the sandbox itself: every attack is a small Python program run inside with the
real interpreter (torch importable). Skipped as a whole only where `bwrap` is not installed
(scripts/ensure-bwrap.sh installs it).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

if shutil.which("bwrap") is None:
    pytest.skip(
        "bubblewrap (bwrap) is not installed: run scripts/ensure-bwrap.sh",
        allow_module_level=True,
    )

from cli.worker_commands import _check_sandbox_totals
from core.settings import LimitsSettings, Settings
from worker.sandbox import (
    Bind,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailableError,
    cgroup,
    check_sandbox,
    make_job_dir,
    run_sandboxed,
    sandbox_python,
)
from worker.sandbox import runner as runner_module
from worker.sandbox.command import CommandSpec, Tools, build_command
from worker.sandbox.identity import HostIdentity, is_root, pool_uids, processes_of_uid

SECRET = "s3cr3t-4f1c2a9e-never-visible"
SMALL = SandboxLimits(
    wall_seconds=20,
    cpu_seconds=15,
    memory_bytes=2 * 2**30,
    fsize_bytes=32 * 2**20,
    nofile=128,
    nproc=64,
    tmpfs_bytes=8 * 2**20,
    stdout_bytes=1 * 2**20,
    stderr_bytes=64 * 2**10,
)


@pytest.fixture(scope="module", autouse=True)
def private_uid_range() -> Iterator[None]:
    """Sandbox uids of this test session only, so that the leftover checks below are exact
    even while other sandboxes (another worker, another test session) run on the host."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARETOBOARD_SANDBOX_UID_BASE", str(60000 + (os.getpid() % 240) * 16))
        mp.setenv("PARETOBOARD_SANDBOX_UID_COUNT", "8")
        # and a cgroup folder of their own, for the same reason (the groups left behind)
        mp.setenv("PARETOBOARD_SANDBOX_CGROUP", f"paretoboard-sandbox-test-{os.getpid()}")
        yield
        remove_cgroup_parent()


def remove_cgroup_parent() -> None:
    """The (empty) folder of this session's run groups, in each hierarchy."""
    _, mounts = cgroup.find_hierarchies()
    for mount in set(mounts.values()):
        with contextlib.suppress(OSError):
            (mount / cgroup.parent()).rmdir()


@pytest.fixture(autouse=True)
def no_cgroup_left() -> Iterator[None]:
    """Every run's cgroup is removed once its last process is gone."""
    yield
    assert cgroup.leftover_groups() == []


@pytest.fixture
def cgroups() -> cgroup.CgroupSupport:
    support = cgroup.probe()
    if not support.usable:
        pytest.skip(f"no cgroup per sandbox run on this host: {support.problem}")
    return support


@pytest.fixture(scope="module")
def base_dir() -> Iterator[Path]:
    """A world-traversable folder (pytest's tmp_path is 0700, unreachable by the sandbox uid)."""
    path = Path(tempfile.mkdtemp(prefix="pb-sandbox-test-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def job(base_dir: Path) -> Path:
    """A job folder with a gold file and a fake database right next to it on the host."""
    check_sandbox()
    job = make_job_dir(base_dir)
    (base_dir / "gold_labels.tsv").write_text(f"id\tlabel\n1\t{SECRET}-gold\n")
    (base_dir / "paretoboard.sqlite").write_text(f"postgresql://admin:{SECRET}-db@db/pb\n")
    (job / "input.json").write_text('{"token_ids": [[1, 2, 3]]}\n')
    return job


def run_py(
    job: Path,
    code: str,
    limits: SandboxLimits = SMALL,
    *,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    name: str = "attack.py",
) -> SandboxResult:
    script = job / name
    script.write_text(textwrap.dedent(code))
    os.chmod(script, 0o644)
    return run_sandboxed(
        [sandbox_python(), f"/job/{name}"],
        binds=[Bind(job, "/job")],
        limits=limits,
        env=env,
        stdin=stdin,
    )


def out(result: SandboxResult) -> str:
    return result.stdout.decode() + result.stderr.decode()


def leftover_processes() -> list[tuple[int, str]]:
    if not is_root():
        return []
    return [p for uid in pool_uids() for p in processes_of_uid(uid)]


# --------------------------------------------------------------------------------------
# files


def test_host_files_and_neighbours_are_invisible(job: Path, base_dir: Path, tmp_path: Path) -> None:
    host_secret = tmp_path / "host-secret.txt"
    host_secret.write_text(SECRET + "-tmp")
    paths = [
        str(host_secret),
        str(base_dir / "gold_labels.tsv"),
        str(base_dir / "paretoboard.sqlite"),
        "/job/../gold_labels.tsv",
        "/etc/shadow",
        "/root/.bashrc",
        "/work/main/pyproject.toml",
        "/proc/1/root/etc/hostname",
    ]
    result = run_py(
        job,
        f"""
        import os
        for p in {paths!r}:
            try:
                print(p, "READ", open(p).read())
            except OSError as e:
                print(p, "DENIED", type(e).__name__)
        print("PASSWD", open("/etc/passwd").read())
        print("JOB", sorted(os.listdir("/job")))
        print("ROOT", sorted(os.listdir("/")))
        print("MOUNTS", open("/proc/self/mountinfo").read())
        """,
    )
    text = out(result)
    assert result.returncode == 0, text
    assert SECRET not in text
    assert " READ " not in text
    assert "root:" not in text  # the host's /etc/passwd is not there, only the sandbox's
    assert "PASSWD sandbox:x:65534:65534:" in text
    assert "JOB ['attack.py', 'input.json']" in text
    assert "gold_labels" not in text.split("MOUNTS")[1]
    assert host_secret.read_text() == SECRET + "-tmp"


def test_code_dirs_and_system_are_read_only(job: Path) -> None:
    before = hashlib.sha256((job / "input.json").read_bytes()).hexdigest()
    targets = [
        "/job/input.json",
        "/job/new-file",
        "/opt/venv/lib/python3.11/site-packages/torch/__init__.py",
        "/opt/python/bin/python3.11",
        "/opt/venv/pyvenv.cfg",
        "/usr/bin/new-file",
        "/etc/passwd",
        "/new-at-root",
        "/dev/new-device-file",
    ]
    result = run_py(
        job,
        f"""
        import errno
        for p in {targets!r}:
            try:
                with open(p, "a") as f:
                    f.write("owned")
                print(p, "WROTE")
            except OSError as e:
                print(p, errno.errorcode[e.errno])
        """,
    )
    text = out(result)
    assert result.returncode == 0, text
    assert "WROTE" not in text
    for line in text.strip().splitlines():
        assert line.split()[-1] in ("EROFS", "EACCES"), line
    assert hashlib.sha256((job / "input.json").read_bytes()).hexdigest() == before
    assert not (job / "new-file").exists()


def test_tmp_is_capped(job: Path) -> None:
    result = run_py(
        job,
        """
        import errno
        written = 0
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(b"x" * 2**20)
                    f.flush()
                    written += 2**20
        except OSError as e:
            print("ERR", errno.errorcode[e.errno], written)
        """,
    )
    text = out(result)
    assert "ERR ENOSPC" in text, text
    assert int(text.split()[-1]) <= SMALL.tmpfs_bytes


def test_file_size_limit(job: Path) -> None:
    limits = SandboxLimits(**{**SMALL.__dict__, "fsize_bytes": 2**20})
    result = run_py(
        job,
        """
        import errno
        try:
            with open("/tmp/big", "wb") as f:
                f.write(b"x" * (3 * 2**20))
        except OSError as e:
            print("ERR", errno.errorcode[e.errno])
        """,
        limits,
    )
    assert "ERR EFBIG" in out(result), out(result)


# --------------------------------------------------------------------------------------
# network, environment, syscalls


def test_no_network(job: Path) -> None:
    result = run_py(
        job,
        """
        import socket
        for family, addr in ((socket.AF_INET, ("127.0.0.1", 6379)), (socket.AF_INET6, ("::1", 6379))):
            try:
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(2)
                s.connect(addr)
                print("CONNECTED", addr)
            except OSError as e:
                print("NOCONNECT", type(e).__name__, e.errno)
        for family in (socket.AF_NETLINK, socket.AF_PACKET):
            try:
                socket.socket(family, socket.SOCK_RAW)
                print("OPENED", family)
            except OSError as e:
                print("NOSOCKET", e.errno)
        try:
            print("RESOLVED", socket.getaddrinfo("example.com", 80))
        except OSError as e:
            print("NORESOLVE", type(e).__name__)
        a, b = socket.socketpair()  # AF_UNIX stays allowed
        a.send(b"ok")
        print("UNIX", b.recv(2))
        """,
    )
    text = out(result)
    assert result.returncode == 0, text
    assert "CONNECTED" not in text
    assert "OPENED" not in text
    assert "RESOLVED" not in text
    assert text.count("NOCONNECT PermissionError 1") == 2
    assert text.count("NOSOCKET 1") == 2
    assert "NORESOLVE gaierror" in text
    assert "UNIX b'ok'" in text


def test_environment_is_minimal(job: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARETOBOARD_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://x:{SECRET}@db/pb")
    result = run_py(
        job,
        """
        import os
        print(dict(os.environ))
        for pid in ("1", "self"):
            print(pid, open(f"/proc/{pid}/environ", "rb").read())
            print(pid, open(f"/proc/{pid}/cmdline", "rb").read())
        """,
        env={"JOB_KIND": "flops"},
    )
    text = out(result)
    assert result.returncode == 0, text
    assert SECRET not in text
    assert "PARETOBOARD_SECRET" not in text
    assert "DATABASE_URL" not in text
    assert "'JOB_KIND': 'flops'" in text
    assert "'HOME': '/tmp'" in text


def test_dangerous_syscalls_fail_with_eperm(job: Path) -> None:
    result = run_py(
        job,
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        SYS = {"ptrace": 101, "mount": 165, "unshare": 272, "setns": 308, "bpf": 321,
               "perf_event_open": 298, "keyctl": 250, "io_uring_setup": 425, "clone": 56,
               "clone3": 435, "chroot": 161, "pivot_root": 155, "init_module": 175,
               "open_tree": 428, "fsopen": 430, "memfd_create": 319}
        calls = {
            "ptrace": (16, 1, 0, 0),            # PTRACE_ATTACH to pid 1
            "mount": (b"none", b"/tmp", b"tmpfs", 0, 0),
            "unshare": (0x10000000,),          # CLONE_NEWUSER
            "setns": (0, 0),
            "bpf": (0, 0, 0),
            "perf_event_open": (0, 0, -1, -1, 0),
            "keyctl": (0, 0),
            "io_uring_setup": (8, 0),
            "clone": (0x10000000 | 17, 0, 0, 0, 0),   # CLONE_NEWUSER | SIGCHLD
            "clone3": (0, 0),
            "chroot": (b"/tmp",),
            "pivot_root": (b"/tmp", b"/tmp"),
            "init_module": (0, 0, b""),
            "open_tree": (-100, b"/", 0),
            "fsopen": (b"tmpfs", 0),
            "memfd_create": (b"hoard", 0),      # memfd pages escape RLIMIT_AS
        }
        for name, args in calls.items():
            ctypes.set_errno(0)
            res = libc.syscall(ctypes.c_long(SYS[name]), *args)
            if res == 0 and name == "clone":
                os._exit(0)  # would be the child: must never happen
            print(name, res, os.strerror(ctypes.get_errno()) if res == -1 else "")
        libc.unshare.restype = ctypes.c_int
        print("libc-unshare-newns", libc.unshare(0x20000), ctypes.get_errno())
        """,
    )
    text = out(result)
    assert result.returncode == 0, text
    lines = dict(line.split(" ", 1) for line in text.strip().splitlines())
    for name in (
        "ptrace",
        "mount",
        "unshare",
        "setns",
        "bpf",
        "perf_event_open",
        "keyctl",
        "io_uring_setup",
        "clone",
        "chroot",
        "pivot_root",
        "init_module",
        "open_tree",
        "fsopen",
        "memfd_create",
    ):
        assert lines[name] == "-1 Operation not permitted", (name, text)
    assert lines["clone3"] == "-1 Function not implemented", text
    assert lines["libc-unshare-newns"] == f"-1 {errno.EPERM}", text


def test_threads_and_fork_still_work(job: Path) -> None:
    result = run_py(
        job,
        """
        import os, threading, subprocess
        t = threading.Thread(target=lambda: None); t.start(); t.join()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        print(subprocess.run(["/bin/echo", "spawned"], capture_output=True).stdout)
        """,
    )
    assert result.returncode == 0, out(result)
    assert "child 7" in out(result)
    assert "spawned" in out(result)


# --------------------------------------------------------------------------------------
# resources


def test_fork_bomb_is_contained(job: Path) -> None:
    limits = SandboxLimits(**{**SMALL.__dict__, "wall_seconds": 4.0, "nproc": 32})
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(leftover_processes()))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        result = run_py(
            job,
            """
            import os
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
            """,
            limits,
        )
    finally:
        stop.set()
        watcher.join()
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert result.returncode is None
    assert result.killed_reason == "wall_timeout"
    assert elapsed < limits.wall_seconds + 8
    if is_root():  # processes of the dedicated uid: bounded by RLIMIT_NPROC (+ bwrap's own)
        assert 0 < peak[0] <= limits.nproc + 2, peak[0]
    assert leftover_processes() == []
    assert subprocess.run(["/bin/true"], check=False).returncode == 0  # the host still forks


# --------------------------------------------------------------------------------------
# whole-sandbox totals (the run's cgroup): small limits, so that they are quick

TOTALS = SandboxLimits(
    **{
        **SMALL.__dict__,
        "total_memory_bytes": 256 * 2**20,
        "total_cpu_seconds": 2.0,
        "total_processes": 32,
    }
)


def test_children_together_past_the_memory_total_are_killed(
    job: Path, cgroups: cgroup.CgroupSupport
) -> None:
    # each child holds 100 MiB, far under the 2 GiB per-process limit; 400 MiB in all
    result = run_py(
        job,
        """
        import os, time
        children = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                block = b"\\x01" * 100 * 2**20
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        print("ALL HELD")
        """,
        TOTALS,
    )
    assert result.killed_reason == "sandbox_memory", result
    assert result.returncode is None
    assert "ALL HELD" not in out(result)
    assert result.memory_peak_bytes is not None
    assert result.memory_peak_bytes <= TOTALS.memory_total
    assert leftover_processes() == []


@pytest.mark.slow  # a few seconds of CPU on a shared machine
def test_children_together_past_the_cpu_total_are_killed(
    job: Path, cgroups: cgroup.CgroupSupport
) -> None:
    # 4 spinning children: each far under the 15 s per-process limit, 2 s in all
    result = run_py(
        job,
        """
        import os
        for _ in range(3):
            if os.fork() == 0:
                break
        while True:
            pass
        """,
        TOTALS,
    )
    assert result.killed_reason == "sandbox_cpu", result
    assert result.returncode is None
    assert not result.timed_out
    assert result.cpu_seconds_total is not None
    assert TOTALS.cpu_total < result.cpu_seconds_total < SMALL.cpu_seconds
    assert leftover_processes() == []


@pytest.mark.slow  # hundreds of forks on a shared machine
def test_fork_bomb_is_bounded_by_the_group_even_as_root(
    job: Path, cgroups: cgroup.CgroupSupport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host root is exempt from RLIMIT_NPROC; the group's pids.max still holds."""
    if "pids" not in cgroups.mounts or not is_root():
        pytest.skip("needs the pids controller and a root worker")

    @contextlib.contextmanager
    def as_root() -> Iterator[HostIdentity]:
        yield HostIdentity(uid=0, gid=0, switch=False)  # no setpriv: host root, mapped

    monkeypatch.setattr(runner_module, "acquire_identity", as_root)
    # Self-limiting (a binary tree of 9 generations: at most 511 children without a bound):
    # every child adds a byte to a file, then waits for pid 1 to end the namespace.
    result = run_py(
        job,
        """
        import os, time
        for _ in range(9):
            try:
                if os.fork() == 0:
                    with open("/tmp/count", "ab") as f:
                        f.write(b"x")
            except OSError:
                pass
        if os.getpid() != 1:
            time.sleep(60)
        time.sleep(2)
        print("host uid 0:", os.getuid(), "children", os.path.getsize("/tmp/count"))
        """,
        TOTALS,
    )
    assert result.returncode == 0, result
    said = out(result).split()
    children = int(said[said.index("children") + 1])
    # pids.max counts the bwrap monitor and pid 1 too
    assert 0 < children <= TOTALS.processes_total - 2, out(result)
    assert result.forks_refused > 0


def test_without_a_cgroup_the_worker_warns_and_can_refuse(
    job: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(cgroup, "_TOOL_PATH", str(tmp_path))  # no cgroup-tools here
    try:
        support = cgroup.probe(refresh=True)
        assert not support.usable
        assert support.unbounded == ["memory", "pids", "cpu"]
        with caplog.at_level("WARNING", logger=cgroup.__name__):
            cgroup.startup_report(require=False)
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 1
        assert "memory, process count, CPU time of all of a sandbox's processes" in warned[0]
        assert "cgcreate, cgset, cgexec, cgdelete not found" in warned[0]
        assert "CPU time unbounded" in warned[0]
        with pytest.raises(SandboxUnavailableError, match="sandbox_require_cgroup is set"):
            cgroup.startup_report(require=True)
        # `paretoboard worker`: refuses to start a sandboxing worker; a score worker starts
        strict = Settings(limits=LimitsSettings(sandbox_require_cgroup=True))
        with pytest.raises(typer.Exit):
            _check_sandbox_totals(strict, ["score", "preflight"])
        _check_sandbox_totals(strict, ["score"])
        required = SandboxLimits(**{**SMALL.__dict__, "require_cgroup": True})
        with pytest.raises(SandboxUnavailableError, match="requires a cgroup: nothing ran"):
            run_py(job, "print('RAN')", required)
        # the fallback: runs, bounded per process only (and by the worker's own cgroup)
        result = run_py(job, "print('RAN')")
        assert out(result) == "RAN\n"
        assert result.cpu_seconds_total is None
    finally:
        monkeypatch.undo()
        cgroup.probe(refresh=True)


def test_huge_allocation_fails(job: Path) -> None:
    result = run_py(
        job,
        """
        try:
            block = bytearray(20 * 2**30)
            print("ALLOCATED", len(block))
        except MemoryError:
            print("MemoryError")
        """,
    )
    assert "ALLOCATED" not in out(result)
    assert "MemoryError" in out(result) or result.returncode != 0


def test_busy_loop_hits_cpu_limit(job: Path) -> None:
    limits = SandboxLimits(**{**SMALL.__dict__, "cpu_seconds": 1, "wall_seconds": 20})
    result = run_py(job, "while True:\n    pass\n", limits)
    # the per-process limit, or the sandbox's total (the same 1 s, bubblewrap's CPU included)
    assert result.killed_reason in ("signal:SIGXCPU", "signal:SIGKILL", "sandbox_cpu"), result
    assert not result.timed_out
    assert result.wall_seconds < 15


def test_busy_loop_hits_wall_limit(job: Path) -> None:
    limits = SandboxLimits(**{**SMALL.__dict__, "cpu_seconds": 60, "wall_seconds": 2})
    result = run_py(job, "while True:\n    pass\n", limits)
    assert result.timed_out
    assert result.killed_reason == "wall_timeout"
    assert result.wall_seconds < 12
    assert leftover_processes() == []


def test_sleep_forever_and_daemons_are_killed(job: Path) -> None:
    limits = SandboxLimits(**{**SMALL.__dict__, "wall_seconds": 2})
    result = run_py(
        job,
        """
        import os, time
        if os.fork() == 0:      # a daemon that tries to outlive the sandbox
            os.setsid()
            if os.fork() == 0:
                time.sleep(10**6)
            os._exit(0)
        print("sleeping", flush=True)
        time.sleep(10**6)
        """,
        limits,
    )
    assert result.timed_out
    assert result.returncode is None
    assert result.stdout == b"sleeping\n"
    assert result.wall_seconds < 12
    assert leftover_processes() == []


def test_orphans_die_when_the_program_exits(job: Path) -> None:
    result = run_py(
        job,
        """
        import os, subprocess
        subprocess.Popen(["/bin/sleep", "1000"], start_new_session=True)
        print("bye")
        """,
    )
    assert result.returncode == 0, out(result)
    assert result.stdout == b"bye\n"
    assert result.wall_seconds < 10
    assert leftover_processes() == []


def test_stdout_flood_is_truncated_and_killed(job: Path) -> None:
    result = run_py(
        job,
        """
        import sys
        chunk = b"x" * 2**20
        for _ in range(1024):   # 1 GiB
            sys.stdout.buffer.write(chunk)
        """,
    )
    assert result.stdout_truncated
    assert result.killed_reason == "stdout_limit"
    assert len(result.stdout) == SMALL.stdout_bytes
    assert result.returncode is None
    assert result.wall_seconds < 15
    assert leftover_processes() == []


def test_stderr_flood_is_truncated(job: Path) -> None:
    result = run_py(job, "import sys\nwhile True:\n    sys.stderr.write('e' * 4096)\n")
    assert result.stderr_truncated
    assert result.killed_reason == "stderr_limit"
    assert len(result.stderr) == SMALL.stderr_bytes


def test_killing_parents_does_not_reach_the_host(job: Path) -> None:
    sentinel = subprocess.Popen(["/bin/sleep", "60"])
    host_pids = [os.getpid(), os.getppid(), sentinel.pid]
    try:
        result = run_py(
            job,
            f"""
            import os, signal, subprocess
            print("pid", os.getpid(), "ppid", os.getppid(), flush=True)
            for target in [os.getppid(), 1, -1, *{host_pids!r}]:
                try:
                    os.kill(target, signal.SIGKILL)
                    print("sent", target, flush=True)
                except OSError as e:
                    print("refused", target, e.errno, flush=True)
            subprocess.run(["/bin/sh", "-c", "kill -9 -1; kill -9 1; kill -9 0"])
            print("still here", flush=True)
            """,
        )
        # The program is pid 1 of its own pid namespace: host pids do not exist there and the
        # namespace's init ignores SIGKILL sent from inside.
        assert "pid 1 ppid 0" in out(result), out(result)
        assert "still here" in out(result), out(result)
        assert result.returncode == 0
        assert sentinel.poll() is None  # host processes untouched, this test process alive
        assert leftover_processes() == []
    finally:
        sentinel.kill()
        sentinel.wait()


# --------------------------------------------------------------------------------------
# python, torch, plumbing


def test_torch_imports_and_computes(job: Path) -> None:
    limits = SandboxLimits(**{**SMALL.__dict__, "wall_seconds": 120, "memory_bytes": 4 * 2**30})
    result = run_py(
        job,
        """
        import json, sys, torch
        x = torch.ones(3, 3)
        print(json.dumps({"sum": (x @ x).sum().item(), "prefix": sys.prefix,
                          "threads": torch.get_num_threads()}))
        """,
        limits,
    )
    assert result.returncode == 0, out(result)
    assert result.stdout.strip() == b'{"sum": 27.0, "prefix": "/opt/venv", "threads": 1}'


def test_stdin_exit_code_and_bwrap_lookalike_output(job: Path) -> None:
    data = os.urandom(300_000)
    result = run_py(
        job,
        """
        import sys, hashlib
        data = sys.stdin.buffer.read()
        print(hashlib.sha256(data).hexdigest())
        sys.stderr.write("bwrap: Can't find source path /x: No such file or directory\\n")
        sys.exit(1)
        """,
        stdin=data,
    )
    # A program that imitates a bwrap setup error is still just a failing program.
    assert result.returncode == 1
    assert result.killed_reason is None
    assert result.stdout.strip().decode() == hashlib.sha256(data).hexdigest()


def test_missing_program_is_a_program_failure(job: Path) -> None:
    result = run_sandboxed(["/job/does-not-exist"], binds=[Bind(job, "/job")], limits=SMALL)
    assert result.returncode == 127


def test_setup_failure_raises_instead_of_running(job: Path) -> None:
    limits = SandboxLimits(**{**SMALL.__dict__, "memory_bytes": 2**20})  # bwrap cannot start
    with pytest.raises(SandboxUnavailableError, match="failed to start"):
        run_py(job, "print('ran')", limits)


def test_unreachable_bind_source_is_refused(tmp_path: Path) -> None:
    if not is_root():
        pytest.skip("only the dedicated uid (root worker) lacks access to pytest's tmp_path")
    os.chmod(tmp_path, 0o700)
    with pytest.raises(SandboxUnavailableError, match="not reachable"):
        run_sandboxed(["/bin/true"], binds=[Bind(tmp_path, "/job")], limits=SMALL)


def test_make_job_dir_is_random_and_readable(base_dir: Path) -> None:
    a, b = make_job_dir(base_dir), make_job_dir(base_dir)
    assert a != b
    assert a.parent == base_dir
    assert len(a.name) == 32
    assert stat.S_IMODE(a.stat().st_mode) == 0o755


def test_bind_targets_are_validated() -> None:
    for target in ("relative", "/usr/lib", "/tmp/x", "/opt", "/", "/job/../etc"):
        with pytest.raises(ValueError, match="bind target"):
            Bind(Path("/"), target)
    Bind(Path("/"), "/job")


def test_concurrent_sandboxes_get_separate_uids(job: Path) -> None:
    if not is_root():
        pytest.skip("the uid pool is used only when the worker runs as root")
    results: list[SandboxResult] = []
    busiest = [0]
    stop = threading.Event()

    def watch() -> None:  # how many pool uids have processes at the same moment
        while not stop.is_set():
            busiest[0] = max(busiest[0], sum(1 for u in pool_uids() if processes_of_uid(u)))
            time.sleep(0.05)

    def one() -> None:
        results.append(
            run_py(job, "import os, time\ntime.sleep(2)\nprint(os.getuid())\n", name="uid.py")
        )

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert [r.stdout for r in results] == [b"65534\n"] * 3
    assert busiest[0] >= 2  # side by side, each under its own host uid
    assert leftover_processes() == []


def test_check_sandbox_explains_a_missing_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "_checked", False)
    monkeypatch.setattr(runner_module, "_tools_cache", None)
    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k),
    )
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap"):
        check_sandbox()


# --------------------------------------------------------------------------------------
# argv construction (no sandbox needed)

TOOLS = Tools(
    prlimit="/usr/bin/prlimit",
    setpriv="/usr/bin/setpriv",
    bwrap="/usr/bin/bwrap",
    bash="/usr/bin/bash",
)


def spec(*, gpu: bool, switch: bool = True) -> CommandSpec:
    return CommandSpec(
        argv=["/opt/venv/bin/python", "/job/run.py"],
        limits=SandboxLimits(),
        identity=HostIdentity(uid=64900, gid=64900, switch=switch),
        tools=TOOLS,
        ro_binds=[("/usr", "/usr"), ("/srv/jobs/abc", "/job")],
        data_files=[(5, "/etc/passwd")],
        symlinks=[("usr/bin", "/bin")],
        env={"HOME": "/tmp"},
        seccomp_fd=6,
        status_fd=7,
        marker_fd=8,
        gpu=gpu,
        gpu_devices=["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"],
    )


def test_argv_cpu() -> None:
    argv = build_command(spec(gpu=False))
    limits = SandboxLimits()
    assert argv[: argv.index("--") + 1] == [
        "/usr/bin/prlimit",
        f"--cpu={limits.cpu_seconds}",
        f"--as={limits.memory_bytes}",
        f"--fsize={limits.fsize_bytes}",
        f"--nofile={limits.nofile}",
        f"--nproc={limits.nproc}",
        "--core=0",
        "--",
    ]
    assert argv[8:17] == [
        "/usr/bin/setpriv",
        "--reuid=64900",
        "--regid=64900",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        "/usr/bin/bwrap",
    ]
    for flag in (
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--disable-userns",
    ):
        assert flag in argv
    joined = " ".join(argv)
    assert "--uid 65534 --gid 65534" in joined
    assert "--ro-bind /srv/jobs/abc /job" in joined
    assert f"--size {limits.tmpfs_bytes} --tmpfs /tmp" in joined
    assert "--proc /proc --dev /dev --remount-ro /dev --remount-ro /" in joined
    assert "--seccomp 6 --json-status-fd 7 -- /usr/bin/bash -c" in joined
    assert argv[-3:] == ["sandbox", "/opt/venv/bin/python", "/job/run.py"]
    assert "--dev-bind" not in argv
    assert not any(a.startswith("--data=") for a in argv)


def test_argv_gpu_binds_devices_before_dev_is_read_only_and_bounds_data() -> None:
    argv = build_command(spec(gpu=True))
    assert f"--data={SandboxLimits().memory_bytes}" in argv
    assert not any(a.startswith("--as=") for a in argv)
    dev = argv.index("--dev")
    ro = argv.index("--remount-ro")
    assert argv[ro + 1] == "/dev"
    binds = [i for i, a in enumerate(argv) if a == "--dev-bind"]
    assert len(binds) == 3
    assert all(dev < i < ro for i in binds)
    assert argv[binds[0] : binds[0] + 3] == ["--dev-bind", "/dev/nvidia0", "/dev/nvidia0"]


def test_argv_starts_inside_the_run_cgroup() -> None:
    argv = build_command(
        CommandSpec(**{**spec(gpu=False).__dict__, "cgroup_exec": ["/usr/bin/cgexec", "-g", "x"]})
    )
    assert argv[:4] == ["/usr/bin/cgexec", "-g", "x", "/usr/bin/prlimit"]


def test_limits_for_each_sandboxed_program() -> None:
    settings = Settings(
        limits=LimitsSettings(
            sandbox_wall_seconds=100,
            sandbox_cpu_seconds=150,
            sandbox_memory_bytes=3 * 2**30,
            sandbox_threads=2,
            preflight_seconds=60,
            verify_wall_seconds=200,
            sandbox_processes=64,
        )
    )
    capture = SandboxLimits.for_("capture", settings)
    preflight = SandboxLimits.for_("preflight", settings)
    verify = SandboxLimits.for_("verify", settings)
    assert (capture.wall_seconds, capture.cpu_total) == (100, 150)
    assert (preflight.wall_seconds, preflight.cpu_total) == (60, 130)
    assert (verify.wall_seconds, verify.cpu_total) == (200, 460)
    for limits in (capture, preflight, verify):
        assert limits.memory_total == limits.memory_bytes == 3 * 2**30
        assert limits.processes_total == limits.nproc == 64
        assert not limits.require_cgroup
    strict = Settings(
        limits=LimitsSettings(sandbox_total_memory_bytes=2**30, sandbox_require_cgroup=True)
    )
    assert SandboxLimits.for_("verify", strict).memory_total == 2**30
    assert SandboxLimits.for_("verify", strict).require_cgroup


def test_cgroup_v2_and_hybrid_hosts_are_read_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values, counters and fallback limits on a cgroup v2 host (files laid out as the kernel's
    cgroupfs: this machine has v1, where the tests above run real groups)."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "memory.max").write_text("25769803776\n")
    (root / "pids.max").write_text("512\n")
    monkeypatch.setattr(cgroup, "_mounts_table", lambda: [(str(root), "cgroup2", {"rw"})])
    monkeypatch.setattr(cgroup, "_own_cgroups", lambda: {"": "/"})
    version, mounts = cgroup.find_hierarchies()
    assert version == 2
    assert mounts == {"memory": root, "pids": root, "cpu": root}
    support = cgroup.CgroupSupport(2, mounts, {"cgexec": "/usr/bin/cgexec"})
    assert support.usable
    assert support.unbounded == []
    assert support.controllers() == "memory,pids"  # cpu.stat needs no controller
    group = cgroup.RunGroup(support, TOTALS)
    folder = root / group.name
    folder.mkdir(parents=True)
    (folder / "memory.swap.max").write_text("max\n")
    assert group.settings() == [
        f"memory.max={256 * 2**20}",
        "memory.oom.group=1",
        "memory.swap.max=0",
        "pids.max=32",
    ]
    assert group.exec_argv() == ["/usr/bin/cgexec", "-g", f"memory,pids:{group.name}", "--sticky"]
    (folder / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2400000\n")
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    (folder / "pids.events").write_text("max 7\n")
    assert group.cpu_seconds() == 2.5
    assert group.pids_refused() == 7
    assert group.exceeded() == "sandbox_cpu"  # 2.5 s > 2 s
    (folder / "memory.events").write_text("oom 2\noom_kill 1\n")
    assert group.exceeded() == "sandbox_memory"
    said = cgroup.container_limits()
    assert (said["memory"], said["pids"]) == ("24 GiB", "512 processes")
    assert said["cpu"].startswith("unbounded")
    # a hybrid host (v1 controllers, an empty v2 `unified`) is v1
    monkeypatch.setattr(
        cgroup,
        "_mounts_table",
        lambda: [
            ("/sys/fs/cgroup/unified", "cgroup2", {"rw"}),
            ("/sys/fs/cgroup/memory", "cgroup", {"rw", "memory"}),
            ("/sys/fs/cgroup/pids", "cgroup", {"rw", "pids"}),
            ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", {"rw", "cpu", "cpuacct"}),
        ],
    )
    version, mounts = cgroup.find_hierarchies()
    assert version == 1
    assert mounts["cpu"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert cgroup.CgroupSupport(1, mounts).controllers() == "cpuacct,memory,pids"


def test_argv_without_root_has_no_setpriv() -> None:
    argv = build_command(spec(gpu=False, switch=False))
    assert "/usr/bin/setpriv" not in argv
    assert argv[8] == "/usr/bin/bwrap"
