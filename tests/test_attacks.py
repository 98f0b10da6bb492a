"""Sandbox attacks through the whole pipeline: each hostile model file ends as `failed`.

One model file per attack (tests/models/attack_*.py), submitted and evaluated like any other,
with the real sandbox and small limits. Every attack must end with the submission FAILED in
the counting stage, a state message that says what happened in plain words, and nothing secret
in what the owner is shown (`error_detail`: the attacks that are not killed raise an exception
reporting what they observed). After each one the worker (this test process) is alive and
unchanged, the database intact, the host's code and upload files untouched and no process of
the sandbox's uid pool left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

if shutil.which("bwrap") is None:
    pytest.skip(
        "bubblewrap (bwrap) is not installed: run scripts/ensure-bwrap.sh",
        allow_module_level=True,
    )

from core.db.session import make_engine
from core.models import Submission, SubmissionState
from core.settings import REPO_ROOT, LimitsSettings, Settings, StorageSettings
from core.storage import DERIVED
from tests.helpers import noisy_predictions, raw_gold, write_predictions
from tests.test_pipeline import Env
from worker import pipeline
from worker.counting_stage import _stop_reason
from worker.sandbox import SandboxLimits, SandboxResult, cgroup
from worker.sandbox.identity import is_root, pool_uids, processes_of_uid

MODELS = Path(__file__).parent / "models"
GIB = 2**30
SECRET = "s3cr3t-7d0e5b21-never-visible"
# The tables no evaluation writes to; compared row by row before and after each attack.
EVALUATION_TABLES = {
    "submissions",
    "submission_files",
    "results",
    "result_costs",
    "task_uncertainty",  # scoring: the bootstrap intervals
    "submission_uncertainty",
}
# Host files the sandbox must not change (the runner code it runs, the sandbox itself).
RUNNER_FILES = [
    REPO_ROOT / "worker" / "cost_job.py",
    REPO_ROOT / "worker" / "sandbox" / "runner.py",
    REPO_ROOT / "core" / "__init__.py",
]
WALL = "ran longer than the wall-clock limit of {wall} s"


@pytest.fixture(scope="module", autouse=True)
def private_uid_range() -> Iterator[None]:
    """Sandbox uids of this module only, so that the leftover check is exact even while other
    sandboxes (another worker, another test session) run on the host."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARETOBOARD_SANDBOX_UID_BASE", str(61000 + (os.getpid() % 200) * 16))
        mp.setenv("PARETOBOARD_SANDBOX_UID_COUNT", "4")
        mp.setenv("PARETOBOARD_SANDBOX_CGROUP", f"paretoboard-attack-test-{os.getpid()}")
        yield
        _, mounts = cgroup.find_hierarchies()
        for mount in set(mounts.values()):
            with contextlib.suppress(OSError):
                (mount / cgroup.parent()).rmdir()


def leftover_processes() -> list[tuple[int, str]]:
    if not is_root():
        return []
    return [p for uid in pool_uids() for p in processes_of_uid(uid)]


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _digest_files(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _db_tables(db: Path) -> dict[str, str]:
    """sha256 of every table's rows, read without SQLAlchemy."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: hashlib.sha256(
                repr(sorted(map(repr, conn.execute(f'SELECT * FROM "{name}"')))).encode()
            ).hexdigest()
            for name in names
        }


@dataclass
class Attack:
    """What one attack run left: the submission row and the wall time of the evaluation."""

    sub: Submission
    seconds: float
    settings: Settings

    @property
    def message(self) -> str:
        return self.sub.state_message or ""

    @property
    def detail(self) -> str:
        return self.sub.error_detail or ""

    @property
    def wall(self) -> str:
        return f"{self.settings.limits.sandbox_wall_seconds:g}"


@dataclass
class Lab:
    tmp: Path
    template: Path
    jobs_dir: Path
    predictions: Path

    def run(self, model: Path, **limits: float) -> Attack:
        """Submit `model`, evaluate it in the foreground, check the host is unaffected."""
        data = self.tmp / "var"
        data.mkdir()
        shutil.copyfile(self.template, data / "paretoboard.db")
        values: dict[str, float] = {
            "sandbox_wall_seconds": 20,
            "sandbox_cpu_seconds": 15,
            "sandbox_memory_bytes": 3 * GIB,
            **limits,
        }
        settings = Settings(
            storage=StorageSettings(data_dir=data, jobs_dir=self.jobs_dir),
            limits=LimitsSettings.model_validate(values),
        )
        engine = make_engine(settings.database_url)
        env = Env(settings, engine, self.tmp)
        sentinel = subprocess.Popen(["/bin/sleep", "300"])
        try:
            sid = env.submit(model, {"SST-2.tsv": self.predictions})
            pids = (os.getpid(), os.getppid())
            environ, cwd = dict(os.environ), os.getcwd()
            tables = _db_tables(data / "paretoboard.db")
            uploads = _digest_tree(settings.storage.uploads_dir)
            runner = _digest_files(RUNNER_FILES)
            jobs = sorted(os.listdir(self.jobs_dir))
            started = time.monotonic()
            pipeline.evaluate(engine, settings, sid)
            seconds = time.monotonic() - started
            sub = env.submission(sid)
            after_tables = _db_tables(data / "paretoboard.db")
            # The worker is alive and unchanged; so is a neighbour process of the host.
            assert (os.getpid(), os.getppid()) == pids
            assert dict(os.environ) == environ
            assert os.getcwd() == cwd
            assert sentinel.poll() is None
            assert leftover_processes() == []
            assert cgroup.leftover_groups() == []  # the run's cgroup is gone with it
            # The database: integrity checked, every table no evaluation writes unchanged.
            assert set(after_tables) == set(tables)
            for name, digest in tables.items():
                if name not in EVALUATION_TABLES:
                    assert after_tables[name] == digest, name
            with sqlite3.connect(f"file:{data / 'paretoboard.db'}?mode=ro", uri=True) as conn:
                assert conn.execute("SELECT id FROM submissions").fetchall() == [(sid,)]
            # Host files: uploads, runner code; the job folder is gone.
            # The blobs are unchanged; derived data (`core.storage.DERIVED`) may only gain what
            # the trusted evaluation computes (token lengths, parsed forms), never lose or change.
            after = _digest_tree(settings.storage.uploads_dir)
            blobs = {k: v for k, v in after.items() if not k.startswith(f"{DERIVED}/")}
            assert blobs == {k: v for k, v in uploads.items() if not k.startswith(f"{DERIVED}/")}
            assert uploads.items() <= after.items()
            new = after.keys() - uploads.keys()
            added = {k.rsplit("/", 1)[-1].split(".", 1)[1].split("-", 1)[0] for k in new}
            assert added <= {"tokens", "parsed"}, added
            assert _digest_files(RUNNER_FILES) == runner
            assert not (REPO_ROOT / "worker" / "sitecustomize.py").exists()
            assert sorted(os.listdir(self.jobs_dir)) == jobs
        finally:
            sentinel.kill()
            sentinel.wait()
            engine.dispose()
        # Every attack fails in the counting stage, as the submitter's fault, quickly.
        assert sub.state is SubmissionState.FAILED, (sub.state_message, sub.error_detail)
        assert sub.failed_stage == "counting"
        assert sub.fault == "user"
        assert (sub.state_message or "").startswith("Counting failed: ")
        assert sub.error_detail
        assert seconds < settings.limits.sandbox_wall_seconds + 15
        return Attack(sub, seconds, settings)


@pytest.fixture
def lab(tmp_path: Path, sqlite_seeded_template: Path, elue_dir: Path) -> Iterator[Lab]:
    jobs = Path(tempfile.mkdtemp(prefix="pb-attack-jobs-", dir="/tmp"))
    jobs.chmod(0o755)
    gold = raw_gold(elue_dir, "SST-2")
    predictions = write_predictions(
        tmp_path / "SST-2.tsv", noisy_predictions(gold, "SST-2", seed=3)
    )
    try:
        yield Lab(tmp_path, sqlite_seeded_template, jobs, predictions)
    finally:
        shutil.rmtree(jobs, ignore_errors=True)


def _model_with(tmp: Path, name: str, targets: list[str]) -> Path:
    """A copy of tests/models/`name` whose `TARGETS = ...` line lists the concrete `targets`."""
    source = (MODELS / name).read_text()
    path = tmp / name
    path.write_text(re.sub(r"^TARGETS\b.*$", f"TARGETS = {targets!r}", source, count=1, flags=re.M))
    assert repr(targets) in path.read_text()
    return path


# --------------------------------------------------------------------------------------
# reading secrets


def test_read_etc_passwd_sees_only_the_sandbox_account(lab: Lab) -> None:
    attack = lab.run(MODELS / "attack_read_passwd.py")
    assert "read /etc/passwd: b'sandbox:x:65534:65534:" in attack.detail
    host_accounts = [
        line.split(":", 1)[0] + ":x:"
        for line in Path("/etc/passwd").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert "root:x:" in host_accounts
    leaked = [account for account in host_accounts if account in attack.detail]
    assert leaked == []
    for account in ("postgres", "redis", "root"):
        assert f"{account}:" not in attack.detail


def test_read_gold_labels_finds_nothing(lab: Lab, elue_dir: Path) -> None:
    gold_files = [str(elue_dir / task / "test_full.tsv") for task in ("SST-2", "MRPC")]
    default = "/work/shared/data/elue/SST-2/test_full.tsv"
    model = _model_with(
        lab.tmp,
        "attack_read_gold.py",
        [*gold_files, default, "/job/../SST-2/test_full.tsv", "/opt/paretoboard/../shared"],
    )
    attack = lab.run(model)
    for path in [*gold_files, default]:
        assert f"{path}: FileNotFoundError" in attack.detail, attack.detail
    assert "READ" not in attack.detail
    header = (elue_dir / "SST-2" / "test_full.tsv").read_text().splitlines()[0]
    assert header.replace("\t", "\\t") not in attack.detail
    assert header not in attack.detail


def test_read_database_file_finds_nothing(lab: Lab) -> None:
    db = lab.tmp / "var" / "paretoboard.db"  # where Lab.run puts this test's database
    model = _model_with(
        lab.tmp,
        "attack_read_database.py",
        [str(db), str(db.parent), "/work/main/var/paretoboard.db"],
    )
    attack = lab.run(model)
    assert f"{db}: FileNotFoundError" in attack.detail, attack.detail
    assert "READ" not in attack.detail
    assert "SQLite format" not in attack.detail
    assert "found=[]" in attack.detail


def test_environment_holds_no_worker_secret(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARETOBOARD_SECRET_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://admin:{SECRET}@db/pb")
    attack = lab.run(MODELS / "attack_environ.py")
    assert "environment: environ={" in attack.detail, attack.detail
    assert "/proc/1/environ: b'" in attack.detail  # it read its own (pid 1 is itself)
    assert "'HOME': '/tmp'" in attack.detail
    assert SECRET not in attack.detail
    assert "PARETOBOARD_" not in attack.detail
    assert "DATABASE_URL" not in attack.detail
    assert "/root" not in attack.detail
    assert str(REPO_ROOT) not in attack.detail


# --------------------------------------------------------------------------------------
# everything else: one model file, what the owner is told, what the detail must (not) hold


@dataclass(frozen=True)
class Case:
    model: str
    message: tuple[str, ...] = ()  # in the state message ({wall} is the wall-clock limit)
    detail: tuple[str, ...] = ()  # in error_detail
    absent: tuple[str, ...] = ()  # never in error_detail
    limits: dict[str, float] = field(default_factory=dict)
    check: Callable[[Attack], None] | None = None


def _fill_tmp_stopped_at_the_cap(attack: Attack) -> None:
    found = re.search(r"fill /tmp: OSError (\w+) after (\d+) MiB", attack.message)
    assert found, attack.message
    assert found[1] == "ENOSPC"
    assert int(found[2]) <= 64  # the tmpfs cap of the sandbox (SandboxLimits.tmpfs_bytes)


def _allocated_some_memory_first(attack: Attack) -> None:
    found = re.search(r"refused after (\d+) MiB", attack.message)
    assert found, attack.message
    assert 256 <= int(found[1]) < 2048


def _all_refused(prefix: str, count: int) -> Callable[[Attack], None]:
    """The report line `prefix: what: ERRNO | what: ERRNO ...` lists `count` refusals."""

    def check(attack: Attack) -> None:
        found = re.search(re.escape(prefix) + r": (.*)", attack.detail)
        assert found, attack.detail
        outcomes = [part.rsplit(": ", 1)[-1] for part in found[1].split(" | ")]
        assert len(outcomes) == count, found[0]
        assert set(outcomes) <= {"EROFS", "EACCES"}, found[0]

    return check


CASES = {
    "socket": Case(
        "attack_socket.py",
        message=("socket: ('127.0.0.1', 5432): PermissionError",),
        detail=("[Errno 1] Operation not permitted",),
        absent=("CONNECTED",),
    ),
    "resolve": Case(
        "attack_resolve.py",
        message=("resolve: example.com: gaierror",),
        detail=("postgres: gaierror",),
        absent=("RESOLVED",),
    ),
    "fork_bomb": Case(
        "attack_fork_bomb.py",
        message=("The cost job was stopped: it " + WALL,),
        limits={"sandbox_wall_seconds": 6},
    ),
    "allocate_20gb": Case(
        "attack_allocate_20gb.py",
        message=("MemoryError", "(the memory limit is 3 GiB per process)"),
        absent=("allocated",),
    ),
    "allocate_touching": Case(
        "attack_allocate_touching.py",
        message=("MemoryError: allocation refused after", "the memory limit is 2 GiB"),
        absent=("allocated",),
        limits={"sandbox_memory_bytes": 2 * GIB},  # what torch and the counter leave: ~1 GiB
        check=_allocated_some_memory_first,
    ),
    "busy_loop": Case(
        "attack_busy_loop.py",
        # the kernel's SIGKILL at the per-process limit, or the runner at the sandbox's total
        # (the same 4 s, which also counts bubblewrap's own CPU time): whichever comes first
        message=("The cost job was stopped: ", "the CPU-time limit of 4 s"),
        limits={"sandbox_cpu_seconds": 4, "sandbox_wall_seconds": 30},
    ),
    "sleep_forever": Case(
        "attack_sleep_forever.py",
        message=("The cost job was stopped: it " + WALL,),
        limits={"sandbox_wall_seconds": 6},
    ),
    "print_1gb": Case(
        "attack_print_1gb.py",
        message=("The cost job was stopped: it printed more than 1 MiB of log",),
    ),
    "write_stdout_1gb": Case(
        "attack_write_stdout_1gb.py",
        # fd 1 is the log once the capture starts: the 1 GiB is log, stopped at the log cap.
        message=("The cost job was stopped: it printed more than 1 MiB of log",),
    ),
    "fill_tmp": Case("attack_fill_tmp.py", check=_fill_tmp_stopped_at_the_cap),
    "write_own_code": Case(
        "attack_write_own_code.py",
        message=("write own code: append /job/model.py: ",),
        absent=("DONE",),
        check=_all_refused("write own code", 6),
    ),
    "write_runner": Case(
        "attack_write_runner.py",
        message=("write runner: append cost_job.py: ",),
        absent=("DONE",),
        check=_all_refused("write runner", 6),
    ),
    "syscalls": Case(
        "attack_syscalls.py",
        detail=tuple(
            f"{call}=-1 Operation not permitted"
            for call in (
                "ptrace(ATTACH, 1)",
                "ptrace(TRACEME)",
                "mount(tmpfs, /tmp)",
                "mount(remount /job rw)",
                "unshare(NEWUSER)",
                "unshare(NEWNS)",
                "unshare(NEWNET)",
            )
        ),
        absent=("OK",),
    ),
    "exit_silently": Case(
        "attack_exit_silently.py",
        message=("The model process exited with code 0 without a capture of its graph",),
    ),
    "segfault": Case(
        "attack_segfault.py",
        message=("The cost job was stopped: it crashed with SIGSEGV",),
    ),
    "kill_parent": Case(
        "attack_kill_parent.py",
        # The model is pid 1 of its own pid namespace: no parent in sight, and SIGKILL sent
        # from inside to the namespace's init is ignored. The worker is out of reach.
        message=("kill parent: still alive: pid=1 ppid=0",),
        detail=("shell-survived",),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_attack_fails_cleanly(lab: Lab, name: str) -> None:
    case = CASES[name]
    attack = lab.run(MODELS / case.model, **case.limits)
    for part in case.message:
        assert part.format(wall=attack.wall) in attack.message, (attack.message, attack.detail)
    for part in case.detail:
        assert part in attack.detail, attack.detail
    for part in case.absent:
        assert part not in attack.detail, attack.detail
    if case.check is not None:
        case.check(attack)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (
            "signal:SIGXCPU",
            "it was killed by SIGXCPU: it used more than the CPU-time limit of 15 s",
        ),
        ("signal:SIGXFSZ", "it wrote a file larger than the limit of 64 MiB"),
        ("signal:SIGABRT", "it crashed with SIGABRT (in native code; this often follows a failed"),
        ("signal:SIGTERM", "it was killed by SIGTERM"),
        (
            "sandbox_memory",
            "the sandbox as a whole used more than 3 GiB of memory (the limit for all its "
            "processes together)",
        ),
        ("sandbox_cpu", "the sandbox as a whole used more than the CPU-time limit of 15 s"),
        (None, None),
    ],
)
def test_stop_reasons_in_plain_words(reason: str | None, expected: str | None) -> None:
    result = SandboxResult(
        returncode=None if reason else 0,
        stdout=b"",
        stderr=b"",
        timed_out=False,
        stdout_truncated=False,
        stderr_truncated=False,
        killed_reason=reason,
        wall_seconds=1.0,
    )
    limits = SandboxLimits(wall_seconds=20, cpu_seconds=15, memory_bytes=3 * GIB)
    said = _stop_reason(result, limits)
    if expected is None:
        assert said is None
    else:
        assert said is not None
        assert expected in said


# --------------------------------------------------------------------------------------
# whole-sandbox totals: children each under the per-process limits, together past the totals

TOTALS = {
    "children_memory": Case(
        "attack_children_memory.py",
        message=(
            "The cost job was stopped: the sandbox as a whole used more than 1 GiB of memory",
        ),
        absent=("nothing stopped them",),
        # 400 MiB per child, far under the 3 GiB per process
        limits={"sandbox_total_memory_bytes": GIB},
    ),
    "children_cpu": Case(
        "attack_children_cpu.py",
        message=(
            "The cost job was stopped: the sandbox as a whole used more than the CPU-time limit "
            "of 8 s",
        ),
        # four children share the 8 s: none reaches the per-process 8 s first
        limits={"sandbox_cpu_seconds": 8, "sandbox_wall_seconds": 60},
    ),
}


@pytest.mark.slow  # each one imports torch in the sandbox; the default run keeps 15 min
@pytest.mark.parametrize("name", list(TOTALS))
def test_totals_stop_the_sandbox_as_a_whole(lab: Lab, name: str) -> None:
    if cgroup.probe().unbounded:
        pytest.skip(f"no cgroup per sandbox run on this host: {cgroup.probe().problem}")
    case = TOTALS[name]
    attack = lab.run(MODELS / case.model, **case.limits)
    for part in case.message:
        assert part in attack.message, (attack.message, attack.detail)
    for part in case.absent:
        assert part not in attack.detail, attack.detail
