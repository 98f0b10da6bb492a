"""Leases, counted deliveries and the reconciler, on the real Redis and PostgreSQL (fast).

The drills with real worker processes are in tests/test_fault_drills.py (slow).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from pydantic import ValidationError
from sqlalchemy import Engine

from core.db import migrate
from core.db.session import make_engine, transaction
from core.models import Submission, SubmissionState
from core.settings import BrokerSettings, LimitsSettings, Settings
from core.submissions.state import new_job_id, set_state
from jobs import records
from jobs.cost_output import SandboxOutputError, check_cost_output, parse_cost_output
from jobs.messages import CostReport
from jobs.records import JobStage, Status
from worker import pipeline
from worker.reconcile import reconcile

REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BROKER = f"{REDIS_URL}/12"


def _settings(url: str = "sqlite://", **limits: float) -> Settings:
    return Settings(
        db={"url": url},  # type: ignore[arg-type]
        broker=BrokerSettings(url=BROKER, result_backend=BROKER),  # type: ignore[arg-type]
        limits=LimitsSettings(**limits),  # type: ignore[arg-type]
    )


def _sid() -> int:
    """A submission id no other test (or helper running tests) records in Redis."""
    return random.randint(10**9, 2 * 10**9)


def _record(sid: int) -> dict[str, object]:
    raw = redis.Redis.from_url(BROKER).get(records.KEY.format(sid))
    assert raw is not None
    record = json.loads(raw)
    assert isinstance(record, dict)
    return record


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_every_delivery_counts_and_a_dead_holder_is_taken_over() -> None:
    settings, sid = _settings(), _sid()
    records.mark_queued(settings, sid, "job-a", JobStage.COST)
    first = records.begin(settings, sid, "job-a", JobStage.COST)
    assert (first.status, first.number, first.previous_phase) == (Status.RUN, 1, None)

    def die_in_model() -> None:
        with records.lease(settings, first) as held:
            held.phase("model")
            assert _record(sid)["phase"] == "model"
            raise MemoryError  # the job died in the model: the record says where

    with pytest.raises(MemoryError):
        die_in_model()
    assert _record(sid)["state"] == "stopped"
    second = records.begin(settings, sid, "job-a", JobStage.COST)
    assert (second.status, second.number, second.previous_phase) == (Status.RUN, 2, "model")

    # A pool process killed mid-job (its lease still fresh): its redelivery takes over.
    client = redis.Redis.from_url(BROKER)
    record = _record(sid) | {"pid": _dead_pid()}
    client.set(records.KEY.format(sid), json.dumps(record))
    third = records.begin(settings, sid, "job-a", JobStage.COST)
    assert (third.status, third.number, third.previous_phase) == (Status.RUN, 3, "start")
    assert not third.exhausted(settings)
    fourth_holder = _record(sid) | {"pid": _dead_pid()}
    client.set(records.KEY.format(sid), json.dumps(fourth_holder))
    fourth = records.begin(settings, sid, "job-a", JobStage.COST)
    assert fourth.number == 4
    assert fourth.exhausted(settings)


def test_live_holder_superseded_and_finished_jobs_are_skipped() -> None:
    settings, sid = _settings(), _sid()
    records.mark_queued(settings, sid, "job-a", JobStage.SCORE)
    first = records.begin(settings, sid, "job-a", JobStage.SCORE)
    client = redis.Redis.from_url(BROKER)
    # held by a live worker on another host, fresh lease: a second copy is not run
    client.set(records.KEY.format(sid), json.dumps(_record(sid) | {"worker": "elsewhere"}))
    assert records.begin(settings, sid, "job-a", JobStage.SCORE).status is Status.BUSY
    client.set(
        records.KEY.format(sid), json.dumps(_record(sid) | {"worker": first.worker, "pid": 1})
    )
    assert records.begin(settings, sid, "job-a", JobStage.SCORE).status is Status.BUSY
    # a newer job replaced it: an old copy is skipped, unless the database says it is current
    records.mark_queued(settings, sid, "job-b", JobStage.SCORE)
    assert records.begin(settings, sid, "job-a", JobStage.SCORE).status is Status.SUPERSEDED
    forced = records.begin(settings, sid, "job-a", JobStage.SCORE, authoritative=True)
    assert (forced.status, forced.number) == (Status.RUN, 1)
    with records.lease(settings, forced):
        pass
    assert _record(sid)["state"] == "done"
    assert records.begin(settings, sid, "job-a", JobStage.SCORE).status is Status.FINISHED


def test_heartbeats_renew_the_lease_until_the_block_ends() -> None:
    settings, sid = _settings(heartbeat_seconds=0.2, lease_seconds=1.0), _sid()
    delivery = records.begin(settings, sid, "job-a", JobStage.COST)
    with records.lease(settings, delivery):
        started = _record(sid)["beat"]
        deadline = time.monotonic() + 30
        while _record(sid)["beat"] == started:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        record = records.read_records(settings, [sid])[sid]
        assert record is not None
        assert record.liveness("job-a", settings, time.time()) is records.Liveness.RUNNING
    record = records.read_records(settings, [sid])[sid]
    assert record is not None
    assert record.state == "done"
    # a running record whose heartbeats stopped reads as dead once the lease is over
    stale = _record(sid) | {"state": "running", "beat": time.time() - 5}
    redis.Redis.from_url(BROKER).set(records.KEY.format(sid), json.dumps(stale))
    record = records.read_records(settings, [sid])[sid]
    assert record is not None
    assert record.liveness("job-a", settings, time.time()) is records.Liveness.DEAD
    assert record.liveness("job-b", settings, time.time()) is records.Liveness.MISSING


# ----------------------------------------------------------------------------- reconciler


@dataclass
class Db:
    url: str
    engine: Engine


@pytest.fixture(scope="module")
def pg(pg_databases: object) -> Iterator[Db]:
    url = pg_databases.create()  # type: ignore[attr-defined]
    migrate.upgrade(url)
    engine = make_engine(url)
    yield Db(url, engine)
    engine.dispose()


def _row(
    db: Db,
    state: SubmissionState,
    *,
    attempts_made: int = 0,
    age: float = 0.0,
) -> tuple[int, str]:
    with transaction(db.engine) as session:
        sub = Submission(name=f"s{random.getrandbits(48)}", job_id=new_job_id())
        session.add(sub)
        set_state(sub, state, "test")
        sub.attempts = attempts_made
        sub.state_changed_at = sub.state_changed_at - dt.timedelta(seconds=age)
        session.flush()
        assert sub.job_id is not None
        return sub.id, sub.job_id


def _write(sid: int, job_id: str, stage: str, state: str, *, beat_age: float, phase: str) -> None:
    now = time.time()
    record = {"job_id": job_id, "stage": stage, "state": state, "at": now - beat_age}
    record |= {"beat": now - beat_age, "deliveries": 1, "phase": phase, "worker": "w", "pid": 1}
    redis.Redis.from_url(BROKER).set(records.KEY.format(sid), json.dumps(record))


def test_reconciler_resends_dead_and_lost_jobs_and_names_the_fault(pg: Db) -> None:
    settings = _settings(pg.url)
    dead, dead_job = _row(pg, SubmissionState.COUNTING, attempts_made=1)
    _write(dead, dead_job, JobStage.COST, "running", beat_age=60, phase="model")
    waiting, waiting_job = _row(pg, SubmissionState.QUEUED, age=3600)
    _write(waiting, waiting_job, JobStage.SCORE, "queued", beat_age=3600, phase="")
    running, running_job = _row(pg, SubmissionState.SCORING, age=3600)
    _write(running, running_job, JobStage.SCORE, "running", beat_age=5, phase="scoring")
    fresh_lost, _ = _row(pg, SubmissionState.QUEUED, age=10)
    old_lost, _ = _row(pg, SubmissionState.QUEUED, age=600)
    poison, poison_job = _row(pg, SubmissionState.COUNTING, attempts_made=3)
    _write(poison, poison_job, JobStage.COST, "running", beat_age=60, phase="model")
    broken, broken_job = _row(pg, SubmissionState.SCORING, attempts_made=3)
    _write(broken, broken_job, JobStage.SCORE, "stopped", beat_age=0, phase="scoring")

    sent: list[tuple[str, int, str]] = []
    done = reconcile(
        pg.engine,
        settings,
        send_score=lambda s, j: sent.append(("score", s, j)),
        send_count=lambda s, j: sent.append(("count", s, j)),
        records=lambda ids: records.read_records(settings, ids),
    )
    ids = {r.submission_id for r in done}
    assert {dead, old_lost, poison, broken} <= ids
    assert not {waiting, running, fresh_lost} & ids
    with transaction(pg.engine) as session:
        subs = {s: session.get(Submission, s) for s in (dead, old_lost, poison, broken)}
    assert all(sub is not None for sub in subs.values())
    moved = subs[dead]
    assert moved is not None
    assert ("count", dead, moved.job_id) in sent
    assert moved.job_id != dead_job
    assert moved.state is SubmissionState.COUNTING
    assert "worker stopped" in moved.state_message
    assert ("score", old_lost, subs[old_lost].job_id) in sent  # type: ignore[union-attr]
    killer, failed = subs[poison], subs[broken]
    assert killer is not None
    assert failed is not None
    assert (killer.state, killer.fault) == (SubmissionState.FAILED, "user")
    assert "Your model stopped its cost worker 3 times" in killer.state_message
    assert (failed.state, failed.fault) == (SubmissionState.FAILED, "service")
    assert "Gave up after 3 attempts" in failed.state_message
    # each is handled once: a second round finds nothing more of these to do
    again = reconcile(
        pg.engine,
        settings,
        send_score=lambda s, j: None,
        send_count=lambda s, j: None,
        records=lambda ids: records.read_records(settings, ids),
    )
    assert not {dead, poison, broken, waiting, running} & {r.submission_id for r in again}


def test_start_attempt_is_committed_and_bounded(pg: Db) -> None:
    settings = _settings(pg.url)
    sid, job = _row(pg, SubmissionState.QUEUED)
    expected = {SubmissionState.QUEUED, SubmissionState.VALIDATING, SubmissionState.SCORING}
    for n in (1, 2, 3):
        assert pipeline.start_attempt(pg.engine, settings, sid, job, expected)
        with transaction(pg.engine) as session:
            sub = session.get(Submission, sid)
            assert sub is not None
            assert sub.attempts == n
    assert not pipeline.start_attempt(pg.engine, settings, sid, "other-job", expected)
    assert not pipeline.start_attempt(pg.engine, settings, sid, job, expected)
    with transaction(pg.engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert (sub.state, sub.fault) == (SubmissionState.FAILED, "service")
        assert sub.state_message.startswith("Gave up after 3 attempts")


def test_stored_text_is_storable_on_postgresql(pg: Db) -> None:
    sid, _ = _row(pg, SubmissionState.COUNTING)
    with transaction(pg.engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        set_state(
            sub,
            SubmissionState.FAILED,
            "bad\x00message " * 500,
            failed_stage="counting-stage-with-a-name-too-long-for-its-column",
            error_detail="line\x00\n" * 10_000,
        )
    with transaction(pg.engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert "\x00" not in sub.state_message
        assert len(sub.state_message) <= 2000
        assert sub.error_detail is not None
        assert len(sub.error_detail) <= 20_000
        assert sub.error_detail.endswith("line\ufffd\n")  # the tail is kept
        assert sub.failed_stage is not None
        assert len(sub.failed_stage) <= 32


# ----------------------------------------------------------------------------- reports


def _report(**entry_fields: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "per_sample_flops": [10, 20],
        "per_sample_flops_without_norm": [10, 20],
        "per_operator": {"aten.mm": 30.0},
        "per_module": {},
        "uncounted": {},
        "n_counts": 2,
        "all_agree": True,
        "disagreements": [],
        "seconds": 0.5,
        "content_dependent": False,
        "per_sample_counted": True,
        "n_traces": 1,
    }
    return {"ok": True, "params": 5, "device": "cpu", "entries": {"SST-2": entry | entry_fields}}


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_costs_are_refused_with_a_message(bad: str) -> None:
    raw = json.dumps(_report()).replace("30.0", bad).encode()
    with pytest.raises(SandboxOutputError, match="finite"):
        parse_cost_output(raw, {"SST-2": 2})
    cross = json.dumps(_report(cross_check={"ratio": 1.5})).replace("1.5", bad).encode()
    with pytest.raises(SandboxOutputError, match="finite"):
        parse_cost_output(cross, {"SST-2": 2})
    report = {"submission_id": 1, "job_id": "j", "device": "cpu", "seconds": float(bad)}
    with pytest.raises(ValidationError, match="finite"):
        CostReport.model_validate(report)


def test_cost_report_text_is_storable() -> None:
    report = CostReport.model_validate(
        {"submission_id": 1, "job_id": "j", "device": "cpu", "log": "a\x00b", "failure": "\x00"}
    )
    assert (report.log, report.failure) == ("a\ufffdb", "\ufffd")
    with pytest.raises(ValidationError, match="at most 64 characters"):
        CostReport.model_validate({"submission_id": 1, "job_id": "j", "device": "x" * 65})


def test_reports_hold_only_what_the_job_asked_for() -> None:
    out = parse_cost_output(json.dumps(_report(incomplete=["a\x00b"])).encode(), {"SST-2": 2})
    assert out.entries["SST-2"].incomplete == ["a\ufffdb"]
    extra = _report()
    extra["entries"] = {**extra["entries"], "SNLI": extra["entries"]["SST-2"]}  # type: ignore[dict-item]
    with pytest.raises(SandboxOutputError, match="1 entries the job did not ask for"):
        parse_cost_output(json.dumps(extra).encode(), {"SST-2": 2})
    with pytest.raises(SandboxOutputError, match="expected 3"):
        check_cost_output(out, {"SST-2": 3})
    huge = b" " * (9 * 1024 * 1024) + json.dumps(_report()).encode()
    with pytest.raises(SandboxOutputError, match="bytes, more than"):
        parse_cost_output(huge, {"SST-2": 2})
    long_device = _report() | {"device": "x" * 65}  # results.device holds 64 characters
    with pytest.raises(SandboxOutputError, match="device"):
        parse_cost_output(json.dumps(long_device).encode(), {"SST-2": 2})
    deep: dict[str, object] = {}
    node = deep
    for _ in range(30):
        node["k"] = {}
        node = node["k"]  # type: ignore[assignment]
    with pytest.raises(SandboxOutputError, match="nested deeper"):
        parse_cost_output(json.dumps(_report(cross_check=deep)).encode(), {"SST-2": 2})


# ------------------------------------------------------------- Celery's retries (autoretry_for)


@pytest.fixture
def stage_env(pg: Db, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The tasks run in this process (Celery's `apply`: retries at once, no countdown) on `pg`;
    `max_attempts` high, so that Celery's own retry limit is what ends a stage."""
    from worker import tasks

    settings = _settings(pg.url, max_attempts=50)
    monkeypatch.setattr(tasks, "_env", lambda: (settings, pg.engine))
    monkeypatch.setattr(tasks, "get_settings", lambda: settings)
    monkeypatch.setattr(tasks, "_device", lambda: "cpu")
    return settings


def test_a_database_fault_is_retried_by_celery_then_fails_as_the_service(
    pg: Db, stage_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from worker import tasks

    calls: list[int] = []

    def away(*_args: object) -> str:
        record = _record(sid)
        calls.append(int(record["deliveries"]))  # type: ignore[call-overload]
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("the database is away"))

    found: list[object] = []  # the record's state as each delivery begins
    begin = records.begin

    def spy(settings: Settings, sid: int, *args: object, **kwargs: object) -> records.Delivery:
        found.append(_record(sid)["state"] if calls else None)
        return begin(settings, sid, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tasks.pipeline, "run_scoring", away)
    monkeypatch.setattr(tasks.records, "begin", spy)
    sid, job = _row(pg, SubmissionState.QUEUED)
    result = tasks.score_submission.apply(args=[sid, job])
    assert result.failed()
    # the first delivery and every retry ran the stage (each one counted in the record), and
    # each retry found the record queued, not stopped: the reconciler leaves it to the retry
    assert calls == list(range(1, tasks.MAX_RETRIES + 2))
    assert found == [None] + ["queued"] * tasks.MAX_RETRIES
    assert _record(sid)["state"] == "stopped"  # the last one gave up
    with transaction(pg.engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert (sub.state, sub.fault, sub.failed_stage) == (
            SubmissionState.FAILED,
            "service",
            "queued",
        )
        assert sub.state_message == pipeline.SERVICE_FAULT_MESSAGE
        assert sub.error_detail is not None
        assert "scoring: OperationalError" in sub.error_detail


def test_a_stage_that_recovers_on_a_retry_goes_on(
    pg: Db, stage_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from jobs import send
    from worker import tasks

    calls: list[str] = []
    sent: list[tuple[int, str]] = []

    def flaky(*_args: object) -> str:
        calls.append("run")
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("away"))
        return pipeline.Outcome.CONTINUE

    monkeypatch.setattr(tasks.pipeline, "run_scoring", flaky)
    monkeypatch.setattr(send, "send_count", lambda _s, sid, job: sent.append((sid, job)) or True)
    sid, job = _row(pg, SubmissionState.QUEUED)
    assert tasks.score_submission.apply(args=[sid, job]).successful()
    assert (len(calls), sent) == (3, [(sid, job)])
    assert _record(sid)["state"] == "done"
    with transaction(pg.engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert sub.state is SubmissionState.QUEUED  # untouched by the (replaced) stage


def test_a_refused_write_fails_at_once_without_a_retry(
    pg: Db, stage_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import tasks

    calls: list[str] = []

    def refused(*_args: object) -> str:
        calls.append("run")
        raise ValueError("a value the database cannot store")

    monkeypatch.setattr(tasks.pipeline, "run_scoring", refused)
    sid, job = _row(pg, SubmissionState.QUEUED)
    assert tasks.score_submission.apply(args=[sid, job]).successful()
    assert calls == ["run"]
    with transaction(pg.engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert (sub.state, sub.fault) == (SubmissionState.FAILED, "service")


def test_a_sandbox_fault_is_retried_then_reported_as_the_service(
    stage_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs import send
    from jobs.messages import CostRequest
    from worker import tasks
    from worker.sandbox import SandboxUnavailableError

    runs: list[str] = []
    reports: list[CostReport] = []

    def unavailable(*_args: object, **_kwargs: object) -> CostReport:
        runs.append("run")
        raise SandboxUnavailableError("bubblewrap is not installed")

    def capture(_settings: Settings, message: object) -> None:
        assert isinstance(message, CostReport)
        reports.append(message)

    monkeypatch.setattr(tasks.pipeline, "execute_counting", unavailable)
    monkeypatch.setattr(send, "send", capture)
    sid = _sid()
    job = CostRequest.build(submission_id=sid, job_id="job-a", model=b"", entries=[], sizes={})
    result = tasks.count_submission.apply(args=[sid, "job-a", job.model_dump(mode="json")])
    assert result.failed()
    assert len(runs) == tasks.MAX_RETRIES + 1
    assert len(reports) == 1
    report = reports[0]
    assert (report.submission_id, report.job_id, report.failure) == (sid, "job-a", None)
    assert report.service_error == "SandboxUnavailableError: bubblewrap is not installed"
    assert report.deliveries == tasks.MAX_RETRIES + 1
