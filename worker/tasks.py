"""Celery tasks: thin wrappers that take ids (or a cost job) and call the pipeline.

Queue `score` (database access): score, count (prepare a cost job), cost_report, reconcile.
Queue `cost` / `cost-cpu` (no database, no uploads): cost, which runs the sandbox and sends
its report back to `score`.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache
from typing import Any

from celery import Task, signals
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.db.session import engine_for, transaction
from core.logging_setup import reset_submission, set_submission
from core.settings import Settings, get_settings
from core.submissions import cost_queue
from worker import cost_jobs, metrics, pipeline
from worker.celery_app import (
    COST_TASK,
    COUNT_TASK,
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
RETRY_SECONDS = 30
MAX_RETRIES = 5
# Cost jobs and reports carry token ids and per-sample costs: compressed on the wire.
COMPRESSION = "zlib"


def _env() -> tuple[Settings, Engine]:
    settings = get_settings()
    return settings, engine_for(settings.database_url)


@lru_cache(maxsize=1)
def _device() -> str:
    return detect_device(get_settings().limits.cost_device)


def send_score(submission_id: int, job_id: str) -> None:
    """Enqueue stage 1-2 of a submission (call after the row is committed)."""
    from worker.celery_app import get_app

    get_app().send_task(SCORE_TASK, args=[submission_id, job_id], ignore_result=True)


def send_count(submission_id: int, job_id: str) -> None:
    """Enqueue stage 3 of a submission: a score worker prepares the cost job and sends it."""
    from worker.celery_app import get_app

    get_app().send_task(COUNT_TASK, args=[submission_id, job_id], ignore_result=True)


def send_cost_job(settings: Settings, request: CostRequest) -> None:
    """Send a prepared cost job to the cost queue (`worker.cost_queue`)."""
    from worker.celery_app import get_app

    cost_jobs.mark_sent(settings, request.submission_id, request.job_id)
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
    pipeline.fail_for_service(
        engine,
        submission_id,
        job_id,
        pipeline.SERVICE_FAULT_MESSAGE,
        f"{stage}: {type(exc).__name__}: {getattr(exc, 'message', exc)}",
    )


@app.task(name=SCORE_TASK, bind=True, max_retries=MAX_RETRIES)
def score_submission(self: Task[Any, Any], submission_id: int, job_id: str) -> None:
    settings, engine = _env()
    try:
        outcome = pipeline.run_scoring(engine, settings, submission_id, job_id)
    except INFRA_ERRORS as exc:
        _retry_or_fail(self, submission_id, job_id, exc, "scoring")
        return
    if outcome == pipeline.Outcome.CONTINUE:
        send_count(submission_id, job_id)


@app.task(name=COUNT_TASK, bind=True, max_retries=MAX_RETRIES)
def prepare_cost_job(self: Task[Any, Any], submission_id: int, job_id: str) -> None:
    """Build the cost job from the database and uploads, and send it to a cost worker."""
    settings, engine = _env()
    try:
        request = pipeline.prepare_counting(engine, settings, submission_id, job_id)
        if request is not None:
            send_cost_job(settings, request)
    except INFRA_ERRORS as exc:
        _retry_or_fail(self, submission_id, job_id, exc, "counting")


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
    if self.request.retries == 0 and not cost_jobs.start(settings, submission_id, job_id, worker):
        log.info("cost job %s superseded by a newer one: skipped", job_id)
        return
    try:
        report = pipeline.execute_counting(settings, job, device=_device(), worker=worker)
    except (SandboxUnavailableError, OSError) as exc:
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
    send_report(report)


@app.task(name=REPORT_TASK, bind=True, max_retries=MAX_RETRIES)
def store_cost_report(
    self: Task[Any, Any], submission_id: int, job_id: str, report: dict[str, Any]
) -> None:
    """Check a cost worker's report against the job and store it (or the failure)."""
    settings, engine = _env()
    parsed = CostReport.model_validate(report)
    if (parsed.submission_id, parsed.job_id) != (submission_id, job_id):
        log.error("cost report %s: its arguments and its body disagree; dropped", job_id)
        return
    try:
        pipeline.finish_counting(engine, settings, parsed)
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


@app.task(name=RECONCILE_TASK)
def reconcile_submissions() -> int:
    settings, engine = _env()
    done = reconcile(
        engine,
        settings,
        send_score=send_score,
        send_count=send_count,
        cost_job_alive=lambda sid, job: cost_jobs.is_alive(settings, sid, job),
    )
    release_waiting(settings, engine)
    return len(done)


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
