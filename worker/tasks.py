"""Celery tasks: thin wrappers that take ids (or a cost job) and call the pipeline.

Queue `score` (database access): score, count (prepare a cost job), cost_report, reconcile.
Queue `cost` / `cost-cpu` (no database, no uploads): cost, which runs the sandbox and sends
its report back to `score`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from celery import Task, signals
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session

from core.db.session import engine_for, transaction
from core.leftovers import clean_leftovers
from core.logging_setup import reset_submission, set_submission
from core.models import Submission, SubmissionState
from core.settings import Settings, get_settings
from core.storage import blob_store
from core.submissions import cost_queue
from worker import attempts, metrics, pipeline
from worker.attempts import Stage, Status
from worker.celery_app import (
    COST_TASK,
    COUNT_TASK,
    LEFTOVERS_TASK,
    PREFLIGHT_TASK,
    RECONCILE_TASK,
    REPORT_TASK,
    SCORE_TASK,
    app,
)
from worker.cost_messages import CostReport, CostRequest
from worker.device import detect_device
from worker.reconcile import reconcile
from worker.sandbox import SandboxUnavailableError

log = logging.getLogger(__name__)
INFRA_ERRORS = (OperationalError, ConnectionError, OSError)
# The database refused what a stage wrote (a value it cannot store): no retry fixes that.
REFUSED = (DataError, IntegrityError, StatementError, ValueError)
RETRY_SECONDS = 30
MAX_RETRIES = 5
# Cost jobs and reports carry token ids and per-sample costs: compressed on the wire.
COMPRESSION = "zlib"
_SCORING = {SubmissionState.QUEUED, SubmissionState.VALIDATING, SubmissionState.SCORING}


def _env() -> tuple[Settings, Engine]:
    settings = get_settings()
    return settings, engine_for(settings.database_url)


@lru_cache(maxsize=1)
def _device() -> str:
    return detect_device(get_settings().limits.cost_device)


def send_score(submission_id: int, job_id: str) -> None:
    """Enqueue stage 1-2 of a submission (call after the row is committed)."""
    from worker.celery_app import get_app

    attempts.mark_queued(get_settings(), submission_id, job_id, Stage.SCORE)
    get_app().send_task(SCORE_TASK, args=[submission_id, job_id], ignore_result=True)


def send_count(submission_id: int, job_id: str) -> None:
    """Enqueue stage 3 of a submission: a score worker prepares the cost job and sends it."""
    from worker.celery_app import get_app

    attempts.mark_queued(get_settings(), submission_id, job_id, Stage.COUNT)
    get_app().send_task(COUNT_TASK, args=[submission_id, job_id], ignore_result=True)


def send_cost_job(settings: Settings, request: CostRequest) -> None:
    """Send a prepared cost job to the cost queue (`worker.cost_queue`)."""
    from worker.celery_app import get_app

    attempts.mark_queued(settings, request.submission_id, request.job_id, Stage.COST)
    get_app().send_task(
        COST_TASK,
        args=[request.submission_id, request.job_id, request.model_dump(mode="json")],
        argsrepr=f"({request.submission_id}, {request.job_id!r}, <cost job>)",
        queue=settings.worker.cost_queue,
        compression=COMPRESSION,
        ignore_result=True,
    )


def send_report(report: CostReport) -> None:
    """Send a cost worker's report back to the score queue."""
    from worker.celery_app import get_app

    attempts.mark_queued(get_settings(), report.submission_id, report.job_id, Stage.REPORT)
    get_app().send_task(
        REPORT_TASK,
        args=[report.submission_id, report.job_id, report.model_dump(mode="json")],
        argsrepr=f"({report.submission_id}, {report.job_id!r}, <cost report>)",
        compression=COMPRESSION,
        ignore_result=True,
    )


def _retry_or_fail(
    task: Task[Any, Any], submission_id: int, job_id: str, exc: Exception, stage: str
) -> None:
    """Infrastructure faults are retried; after the last retry the submission fails (service)."""
    engine = _env()[1]
    if task.request.retries < MAX_RETRIES:
        log.warning("submission %s: %s fault, retrying: %s", submission_id, stage, exc)
        raise task.retry(exc=exc, countdown=RETRY_SECONDS)
    _fail(engine, submission_id, job_id, exc, stage)


def _fail(engine: Engine, submission_id: int, job_id: str, exc: Exception, stage: str) -> None:
    pipeline.fail_for_service(
        engine,
        submission_id,
        job_id,
        pipeline.SERVICE_FAULT_MESSAGE,
        f"{stage}: {type(exc).__name__}: {getattr(exc, 'message', exc)}",
    )


def _has_share(settings: Settings) -> Callable[[Session, Submission], bool]:
    """A count delivery that will only wait for its owner's share is not an attempt."""

    def has(session: Session, sub: Submission) -> bool:
        return cost_queue.has_share(session, sub, per_user=settings.limits.cost_jobs_per_user)

    return has


def _begin_db_stage(
    settings: Settings,
    engine: Engine,
    submission_id: int,
    job_id: str,
    stage: Stage,
    expected: set[SubmissionState],
) -> attempts.Delivery | None:
    """Count the delivery in the row (own transaction) and take the stage's lease; None: skip."""
    if not pipeline.start_attempt(
        engine,
        settings,
        submission_id,
        job_id,
        expected,
        skip=cost_queue.is_sent if stage is Stage.COUNT else None,
        counts=_has_share(settings) if stage is Stage.COUNT else None,
    ):
        return None
    delivery = attempts.begin(settings, submission_id, job_id, stage, authoritative=True)
    if delivery.status is not Status.RUN:
        log.info("submission %s: %s delivery skipped (%s)", submission_id, stage, delivery.status)
        return None
    return delivery


@app.task(name=SCORE_TASK, bind=True, max_retries=MAX_RETRIES)
def score_submission(self: Task[Any, Any], submission_id: int, job_id: str) -> None:
    settings, engine = _env()
    outcome = pipeline.Outcome.STOP
    try:
        delivery = _begin_db_stage(settings, engine, submission_id, job_id, Stage.SCORE, _SCORING)
        if delivery is None:
            return
        with attempts.lease(settings, delivery) as held:
            held.phase("scoring")
            try:
                outcome = pipeline.run_scoring(engine, settings, submission_id, job_id)
            except INFRA_ERRORS as exc:
                _retry_or_fail(self, submission_id, job_id, exc, "scoring")
                return
            except REFUSED as exc:  # a database refusal is not retried
                _fail(engine, submission_id, job_id, exc, "scoring")
                return
    except INFRA_ERRORS as exc:  # the database was away when the delivery began
        _retry_or_fail(self, submission_id, job_id, exc, "scoring")
        return
    if outcome == pipeline.Outcome.CONTINUE:
        send_count(submission_id, job_id)


@app.task(name=COUNT_TASK, bind=True, max_retries=MAX_RETRIES)
def prepare_cost_job(self: Task[Any, Any], submission_id: int, job_id: str) -> None:
    """Build the cost job from the database and uploads, and send it to a cost worker."""
    settings, engine = _env()
    try:
        delivery = _begin_db_stage(
            settings, engine, submission_id, job_id, Stage.COUNT, {SubmissionState.COUNTING}
        )
        if delivery is None:
            return
        with attempts.lease(settings, delivery) as held:
            held.phase("preparing")
            try:
                request = pipeline.prepare_counting(engine, settings, submission_id, job_id)
                if request is not None:
                    send_cost_job(settings, request)
            except INFRA_ERRORS as exc:
                _retry_or_fail(self, submission_id, job_id, exc, "counting")
            except REFUSED as exc:
                _fail(engine, submission_id, job_id, exc, "counting")
    except INFRA_ERRORS as exc:
        _retry_or_fail(self, submission_id, job_id, exc, "counting")


def _gave_up_report(delivery: attempts.Delivery, worker: str) -> CostReport:
    """The report of a cost job whose deliveries kept dying: whose fault it was, and why."""
    lost = delivery.number - 1
    base = CostReport(
        submission_id=delivery.submission_id,
        job_id=delivery.job_id,
        device=_device(),
        worker=worker,
        deliveries=delivery.number,
    )
    if delivery.previous_phase == "model":
        message = pipeline.MODEL_KILLED_MESSAGE.format(n=lost)
        return base.model_copy(update={"failure": message, "reason": "worker_lost"})
    where = delivery.previous_phase or "unknown"
    detail = f"the cost worker stopped {lost} times while running this job (last in: {where})"
    return base.model_copy(update={"service_error": detail})


@app.task(name=COST_TASK, bind=True, max_retries=MAX_RETRIES)
def count_submission(
    self: Task[Any, Any], submission_id: int, job_id: str, request: dict[str, Any]
) -> None:
    """Run a cost job in the sandbox and report back; never touches the database."""
    settings = get_settings()
    job = CostRequest.model_validate(request)
    if (job.submission_id, job.job_id) != (submission_id, job_id):
        log.error("cost job %s: its arguments and its body disagree; dropped", job_id)
        return
    worker = socket.gethostname()
    delivery = attempts.begin(settings, submission_id, job_id, Stage.COST)
    if delivery.status is not Status.RUN:
        log.info("cost job %s skipped: %s", job_id, delivery.status)
        return
    if delivery.exhausted(settings):
        log.warning("cost job %s: delivery %s, giving up", job_id, delivery.number)
        metrics.record_cost_job(_device(), "worker_lost")
        send_report(_gave_up_report(delivery, worker))
        return
    with attempts.lease(settings, delivery) as held:
        # From here the submitted model runs (and its capture is read): a worker that dies now
        # was most likely killed by it (out of memory, time limit).
        held.phase("model")
        try:
            report = pipeline.execute_counting(settings, job, device=_device(), worker=worker)
        except SoftTimeLimitExceeded:
            report = CostReport(
                submission_id=submission_id,
                job_id=job_id,
                device=_device(),
                worker=worker,
                failure="The cost job took longer than the worker's time limit "
                f"({settings.limits.task_soft_seconds} s)",
                reason="timeout",
            )
        except (SandboxUnavailableError, OSError) as exc:
            held.phase("sandbox-unavailable")
            if self.request.retries < MAX_RETRIES:
                log.warning("cost job %s: sandbox fault, retrying: %s", job_id, exc)
                raise self.retry(exc=exc, countdown=RETRY_SECONDS) from exc
            metrics.record_cost_job(_device(), "unavailable")
            report = CostReport(
                submission_id=submission_id,
                job_id=job_id,
                device=_device(),
                worker=worker,
                service_error=f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"[:20_000],
            )
        held.phase("report")
        send_report(report.model_copy(update={"deliveries": delivery.number}))


@app.task(name=REPORT_TASK, bind=True, max_retries=MAX_RETRIES)
def store_cost_report(
    self: Task[Any, Any], submission_id: int, job_id: str, report: dict[str, Any]
) -> None:
    """Check a cost worker's report against the job and store it (or the failure)."""
    settings, engine = _env()
    delivery = attempts.begin(settings, submission_id, job_id, Stage.REPORT)
    if delivery.status is not Status.RUN:
        log.info("cost report %s skipped: %s", job_id, delivery.status)
        return
    try:
        if delivery.exhausted(settings):
            detail = f"storing the cost report stopped its worker {delivery.number - 1} times"
            _fail(engine, submission_id, job_id, RuntimeError(detail), "counting")
            return
        with attempts.lease(settings, delivery) as held:
            held.phase("storing")
            try:
                parsed = CostReport.model_validate(report)
            except ValidationError as exc:  # refused at once: a retry would get the same
                _fail(engine, submission_id, job_id, _invalid_report(exc), "counting")
                return
            if (parsed.submission_id, parsed.job_id) != (submission_id, job_id):
                log.error("cost report %s: its arguments and its body disagree; dropped", job_id)
                return
            try:
                pipeline.finish_counting(engine, settings, parsed)
            except INFRA_ERRORS as exc:
                _retry_or_fail(self, submission_id, job_id, exc, "counting")
            except REFUSED as exc:
                _fail(engine, submission_id, job_id, exc, "counting")
    except INFRA_ERRORS as exc:
        _retry_or_fail(self, submission_id, job_id, exc, "counting")
        return
    release_waiting(settings, engine)


def release_waiting(settings: Settings, engine: Engine) -> int:
    """Send the cost jobs that waited for their owner's share of the cost queue, if any is free."""
    try:
        with transaction(engine) as session:
            ready = cost_queue.releasable(session, per_user=settings.limits.cost_jobs_per_user)
        for submission_id, job_id in ready:
            send_count(submission_id, job_id)
            log.info("submission %s: cost job released from waiting", submission_id)
    except INFRA_ERRORS as exc:  # the next report or reconciler run releases them
        log.warning("could not release waiting cost jobs: %s", exc)
        return 0
    return len(ready)


def _invalid_report(exc: ValidationError) -> ValueError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]
    )
    return ValueError(f"the cost worker sent a report this service cannot store: {problems}")


@app.task(name=RECONCILE_TASK)
def reconcile_submissions() -> int:
    settings, engine = _env()
    done = reconcile(
        engine,
        settings,
        send_score=send_score,
        send_count=send_count,
        records=lambda ids: attempts.read_records(settings, ids),
    )
    release_waiting(settings, engine)
    return len(done)


@app.task(name=LEFTOVERS_TASK)
def clean_leftovers_task() -> int:
    """What killed uploads left: staging folders of dead requests, blobs nothing uses."""
    settings, engine = _env()
    cleaned = clean_leftovers(
        settings.storage.data_dir,
        engine,
        blob_store(settings),
        grace_seconds=settings.storage.orphan_grace_seconds,
    )
    return len(cleaned.staging) + len(cleaned.blobs)


# --------------------------------------------------------------------------------------
# every log line of a task carries its submission; pool processes that die are forgotten


@signals.task_prerun.connect
def _enter_submission(task: Task[Any, Any] | None = None, args: Any = None, **_: Any) -> None:
    sid = args[0] if args and isinstance(args[0], int) else None
    job = args[1] if args and len(args) > 1 and isinstance(args[1], str) else None
    if task is not None:
        task.request.paretoboard_log_token = set_submission(sid, job)


@signals.task_postrun.connect
def _leave_submission(task: Task[Any, Any] | None = None, **_: Any) -> None:
    token = getattr(task.request, "paretoboard_log_token", None) if task is not None else None
    if token is not None:
        reset_submission(token)


@signals.worker_process_shutdown.connect
def _forget_process(**_: Any) -> None:
    metrics.mark_process_dead(os.getpid())


@app.task(name=PREFLIGHT_TASK, ignore_result=False, acks_late=False)
def preflight(request: dict[str, Any]) -> dict[str, Any]:
    """Capture a model file and match weights against its graph, while the web waits.

    No database, nothing stored; the web gives up waiting after `limits.preflight_wait_seconds`
    and then checks the weights when the submission is counted instead.
    """
    from worker.preflight import PreflightRequest, run_preflight

    settings = get_settings()
    result = run_preflight(PreflightRequest.model_validate(request), settings, device=_device())
    return result.model_dump()
