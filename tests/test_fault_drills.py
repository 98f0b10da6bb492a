"""Fault drills (docs/reliability.md): real Redis, real Celery workers, real PostgreSQL.

Each drill runs a score worker (with the reconciler schedule) and a cost worker on default
recovery settings, breaks something, and checks that every accepted submission reaches done or
a clear failed state exactly once. The recovery time of each is printed (`-s` shows it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine, func, select, text

from core.db import migrate
from core.db.session import make_engine, transaction
from core.models import Result, ResultCost, Submission, SubmissionState
from core.settings import BrokerSettings, LimitsSettings, Settings, StorageSettings
from core.storage import BlobStore
from core.submissions.service import SubmissionDraft, UploadedFile, create_submission
from core.tasks import service as task_service
from core.tokenizers import registered_tokenizers
from tests.helpers import noisy_predictions, raw_gold, write_predictions
from tests.processes import free_port, stop
from worker import attempts
from worker.celery_app import SCORE_TASK, configure
from worker.pipeline import queue_submission

pytestmark = pytest.mark.slow
MODELS = Path(__file__).parent / "models"
PB = Path(sys.executable).with_name("paretoboard")
FINAL = {SubmissionState.DONE, SubmissionState.FAILED}


@dataclass
class RedisServer:
    """A redis-server of this test's own, with an append-only file, that it can crash."""

    port: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ],
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port).ping():
                    return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def crash(self) -> None:
        assert self.proc is not None
        stop(self.proc, signal.SIGKILL)


@dataclass
class Drill:
    settings: Settings
    engine: Engine
    env: dict[str, str]
    celery: Celery
    tmp: Path
    redis: RedisServer
    predictions: Path
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, kind: str) -> None:
        """Start the `score` worker (with the reconciler schedule) or the `cost` worker."""
        extra = ["--beat"] if kind == "score" else []
        self.workers[kind] = subprocess.Popen(
            [str(PB), "worker", "--queues", kind, "--loglevel", "INFO", *extra],
            env=self.env,
            stdout=(self.tmp / f"{kind}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, kind: str) -> None:
        """SIGKILL a whole worker (main process, pool, sandbox)."""
        stop(self.workers.pop(kind), signal.SIGKILL)

    def submit(self, model: str, name: str) -> int:
        with transaction(self.engine) as session:
            sub = create_submission(
                session,
                BlobStore(self.settings.storage.uploads_dir),
                owner_id=None,
                draft=SubmissionDraft(name=name),
                model=UploadedFile(model, MODELS / model),
                predictions=[UploadedFile("SST-2.tsv", self.predictions)],
                limits=self.settings.limits,
                tokenizers=registered_tokenizers(self.settings.storage.tokenizers_dir),
            )
            job_id = queue_submission(sub)
            sid = sub.id
        attempts.mark_queued(self.settings, sid, job_id, attempts.Stage.SCORE)
        self.celery.send_task(SCORE_TASK, args=[sid, job_id])
        return sid

    def record(self, sid: int) -> dict[str, object]:
        raw = redis.Redis(port=self.redis.port).get(attempts.KEY.format(sid))
        return json.loads(raw) if raw else {}

    def wait_record(self, sid: int, stage: str, phase: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rec = self.record(sid)
            if (rec.get("stage"), rec.get("state"), rec.get("phase")) == (stage, "running", phase):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"submission {sid} never ran {stage}/{phase}: {rec}\n{self.logs()}")
            time.sleep(0.2)

    def wait_final(self, sids: list[int], timeout: float) -> dict[int, Submission]:
        deadline = time.monotonic() + timeout
        while True:
            with transaction(self.engine) as session:
                subs = {sid: session.get(Submission, sid) for sid in sids}
            if all(s is not None and s.state in FINAL for s in subs.values()):
                return {sid: s for sid, s in subs.items() if s is not None}
            if time.monotonic() > deadline:
                states = {sid: (s.state, s.state_message) for sid, s in subs.items() if s}
                pytest.fail(f"not final: {states}\n{self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log")
        )

    def check_once(self, sub: Submission, state: SubmissionState) -> None:
        """Final exactly once: one final timeline entry, one result and cost at most."""
        assert sub.state is state, (sub.state_message, sub.error_detail)
        finals = [e["state"] for e in sub.timeline if e["state"] in ("done", "failed")]
        assert finals == [state.value]
        with transaction(self.engine) as session:
            results = session.scalar(select(func.count()).where(Result.submission_id == sub.id))
            costs = session.scalar(
                select(func.count())
                .select_from(ResultCost)
                .join(Result, Result.id == ResultCost.result_id)
                .where(Result.submission_id == sub.id)
            )
        assert results == 1
        assert costs == (1 if state is SubmissionState.DONE else 0)


@pytest.fixture
def drill(
    tmp_path: Path, pg_databases: object, sandbox_jobs_dir: Path, elue_dir: Path
) -> Iterator[Drill]:
    url = pg_databases.create()  # type: ignore[attr-defined]
    migrate.upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        for data in task_service.read_task_folders(elue_dir / "SST-2"):
            task_service.import_task(session, data)
    server = RedisServer(free_port(), tmp_path / "redis")
    server.folder.mkdir()
    server.start()
    broker = f"redis://127.0.0.1:{server.port}"
    data = tmp_path / "var"
    data.mkdir()
    settings = Settings(
        db={"url": url},  # type: ignore[arg-type]
        broker=BrokerSettings(url=f"{broker}/0", result_backend=f"{broker}/1"),  # type: ignore[arg-type]
        storage=StorageSettings(data_dir=data, jobs_dir=sandbox_jobs_dir),
        limits=LimitsSettings(),  # the default recovery settings
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_DB__URL=url,
        PARETOBOARD_BROKER__URL=f"{broker}/0",
        PARETOBOARD_BROKER__RESULT_BACKEND=f"{broker}/1",
        PARETOBOARD_STORAGE__DATA_DIR=str(data),
        PARETOBOARD_STORAGE__JOBS_DIR=str(sandbox_jobs_dir),
    )
    gold = raw_gold(elue_dir, "SST-2")
    preds = write_predictions(tmp_path / "SST-2.tsv", noisy_predictions(gold, "SST-2", seed=3))
    d = Drill(settings, engine, env, configure(Celery("drill"), settings), tmp_path, server, preds)
    try:
        yield d
    finally:
        for proc in d.workers.values():
            stop(proc)
        if server.proc is not None:
            stop(server.proc)
        engine.dispose()


def _report(name: str, seconds: float) -> None:
    print(f"\nDRILL {name}: recovered in {seconds:.1f} s")


def test_cost_worker_killed_mid_count(drill: Drill) -> None:
    drill.start("score")
    drill.start("cost")
    sid = drill.submit("slow_static.py", "slow")
    drill.wait_record(sid, "cost", "model")
    time.sleep(2)
    drill.kill("cost")
    killed = time.monotonic()
    drill.start("cost")  # a supervisor restarts it; its old message stays unacked
    sub = drill.wait_final([sid], timeout=300)[sid]
    _report("cost worker SIGKILL mid-count -> done", time.monotonic() - killed)
    drill.check_once(sub, SubmissionState.DONE)
    assert any("after its worker stopped (in cost: model)" in e["message"] for e in sub.timeline)


def test_score_worker_killed_mid_score(drill: Drill) -> None:
    drill.start("cost")
    drill.start("score")
    with drill.engine.connect() as blocker:
        # Hold scoring mid-stage: its writes wait on this lock, its lease is running.
        blocker.execute(text("LOCK TABLE results IN ACCESS EXCLUSIVE MODE"))
        sid = drill.submit("tiny_static.py", "tiny")
        drill.wait_record(sid, "score", "scoring")
        time.sleep(1)
        drill.kill("score")
        killed = time.monotonic()
        blocker.rollback()
    drill.start("score")
    sub = drill.wait_final([sid], timeout=300)[sid]
    _report("score worker SIGKILL mid-score -> done", time.monotonic() - killed)
    drill.check_once(sub, SubmissionState.DONE)
    assert any("after its worker stopped (in score" in e["message"] for e in sub.timeline)


def test_redis_restart_with_jobs_queued(drill: Drill) -> None:
    sids = [drill.submit("tiny_static.py", f"queued-{i}") for i in range(3)]  # no worker yet
    time.sleep(2)  # past the append-only file's one-second fsync
    drill.redis.crash()
    drill.redis.start()
    restarted = time.monotonic()
    drill.start("score")
    drill.start("cost")
    subs = drill.wait_final(sids, timeout=300)
    _report("Redis crash and restart with 3 jobs queued -> all done", time.monotonic() - restarted)
    for sub in subs.values():
        drill.check_once(sub, SubmissionState.DONE)


def test_poison_job_fails_after_n_attempts(drill: Drill) -> None:
    """A job that kills its worker's process every time (as the OOM killer would) ends failed,
    as the submitter's fault, after `max_attempts`; the worker goes on serving others."""
    drill.start("score")
    drill.start("cost")
    sid = drill.submit("slow_static.py", "poison")
    kills: list[int] = []
    done = threading.Event()

    def oom_killer() -> None:
        while not done.is_set():
            rec = drill.record(sid)
            pid = rec.get("pid")
            running = (rec.get("stage"), rec.get("state"), rec.get("phase")) == (
                "cost",
                "running",
                "model",
            )
            if running and isinstance(pid, int) and pid not in kills:
                time.sleep(1)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # the pool process running the job
                    kills.append(pid)
            time.sleep(0.1)

    killer = threading.Thread(target=oom_killer, daemon=True)
    killer.start()
    started = time.monotonic()
    try:
        sub = drill.wait_final([sid], timeout=400)[sid]
    finally:
        done.set()
        killer.join()
    _report("poison job killing its worker every time -> failed", time.monotonic() - started)
    max_attempts = drill.settings.limits.max_attempts
    assert len(kills) == max_attempts
    drill.check_once(sub, SubmissionState.FAILED)
    assert sub.fault == "user"
    assert f"Your model stopped its cost worker {max_attempts} times" in sub.state_message
    assert sub.attempts > max_attempts  # every delivery counted
    good = drill.submit("tiny_static.py", "after-poison")
    drill.check_once(drill.wait_final([good], timeout=300)[good], SubmissionState.DONE)
