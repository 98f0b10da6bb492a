"""Celery tasks: thin wrappers that take ids (or a cost job) and call the pipeline.

Queue `score` (database access): score, count (prepare a cost job), cost_report, reconcile.
Queue `cost` / `cost-cpu` (no database, no uploads): cost, which runs the sandbox and sends
its report back to `score`.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from celery import Task, shared_task, signals
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
from core.submissions.states import Stage
from jobs import records, send
from jobs.app import (
    COST_TASK,
    COUNT_TASK,
    LEFTOVERS_TASK,
    PREFLIGHT_TASK,
    RECONCILE_TASK,
    REPORT_TASK,
    SCORE_TASK,
)
from jobs.messages import CostReport, CostRequest, PreflightRequest
from jobs.records import JobStage, Status
from worker import metrics, pipeline
from worker.device import detect_device
from worker.reconcile import reconcile
from worker.sandbox import SandboxUnavailableError

log = logging.getLogger(__name__)
# Infrastructure faults: Celery retries the task (`autoretry_for`), and after the last retry
# the submission fails as the service's fault (`_DatabaseStage.on_failure`).
INFRA_ERRORS = (OperationalError, ConnectionError, OSError)
SANDBOX_ERRORS = (SandboxUnavailableError, OSError)
# The database refused what a stage wrote (a value it cannot store): no retry fixes that.
REFUSED = (DataError, IntegrityError, StatementError, ValueError)
MAX_RETRIES = 5
RETRY_OPTIONS: dict[str, Any] = {
    "max_retries": MAX_RETRIES,
    "retry_backoff": 10,  # 10, 20, 40, 80, 120 s: about 4.5 minutes before giving up
    "retry_backoff_max": 120,
    "retry_jitter": False,  # a jittered retry may come at once and spend an attempt in vain
}
_SCORING = {SubmissionState.QUEUED, SubmissionState.VALIDATING, SubmissionState.SCORING}


def _env() -> tuple[Settings, Engine]:
    settings = get_settings()
    return settings, engine_for(settings.database_url)


@lru_cache(maxsize=1)
def _device() -> str:
    return detect_device(get_settings().limits.cost_device)


def _retried(
    task: Task[Any, Any], errors: tuple[type[BaseException], ...]
) -> tuple[type[BaseException], ...]:
    """The errors that Celery will retry for this delivery (none after the last retry)."""
    return errors if task.request.retries < (task.max_retries or 0) else ()


def _fail(engine: Engine, submission_id: int, job_id: str, exc: BaseException, stage: str) -> None:
    pipeline.fail_for_service(
        engine,
        submission_id,
        job_id,
        pipeline.SERVICE_FAULT_MESSAGE,
        f"{stage}: {type(exc).__name__}: {getattr(exc, 'message', exc)}",
    )


class _DatabaseStage(Task):  # type: ignore[misc]
    """A score-queue stage: after Celery's last retry of an infrastructure fault, the
    submission fails as the service's fault (user faults fail at once, inside the stage)."""

    stage_label: str = Stage.SCORING  # named in the failure's detail

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not isinstance(exc, INFRA_ERRORS) or len(args) < 2:
            return  # a bug: the row stays as it is, and the reconciler re-sends the job
        log.warning("submission %s: %s fault, giving up: %s", args[0], self.stage_label, exc)
        try:
            _fail(_env()[1], args[0], args[1], exc, self.stage_label)
        except INFRA_ERRORS as again:  # still away: the reconciler fails it later
            log.warning("submission %s: could not record the failure: %s", args[0], again)


class _CountingStage(_DatabaseStage):
    stage_label = Stage.COUNTING


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
    stage: JobStage,
    expected: set[SubmissionState],
) -> records.Delivery | None:
    """Count the delivery in the row (own transaction) and take the stage's lease; None: skip."""
    if not pipeline.start_attempt(
        engine,
        settings,
        submission_id,
        job_id,
        expected,
        skip=cost_queue.is_sent if stage is JobStage.COUNT else None,
        counts=_has_share(settings) if stage is JobStage.COUNT else None,
    ):
        return None
    delivery = records.begin(settings, submission_id, job_id, stage, authoritative=True)
    if delivery.status is not Status.RUN:
        log.info("submission %s: %s delivery skipped (%s)", submission_id, stage, delivery.status)
        return None
    return delivery


@shared_task(
    name=SCORE_TASK, bind=True, base=_DatabaseStage, autoretry_for=INFRA_ERRORS, **RETRY_OPTIONS
)
def score_submission(self: Task[Any, Any], submission_id: int, job_id: str) -> None:
    settings, engine = _env()
    outcome = pipeline.Outcome.STOP
    # the database away when the delivery begins, or while it scores: retried by Celery
    delivery = _begin_db_stage(settings, engine, submission_id, job_id, JobStage.SCORE, _SCORING)
    if delivery is None:
        return
    with records.lease(settings, delivery, retried=_retried(self, INFRA_ERRORS)) as held:
        held.phase("scoring")
        try:
            outcome = pipeline.run_scoring(engine, settings, submission_id, job_id)
        except INFRA_ERRORS:
            raise  # Celery retries it (`autoretry_for`); OperationalError is a StatementError
        except REFUSED as exc:  # a database refusal is not retried
            _fail(engine, submission_id, job_id, exc, Stage.SCORING)
            return
    if outcome == pipeline.Outcome.CONTINUE:
        send.send_count(settings, submission_id, job_id)


@shared_task(
    name=COUNT_TASK, bind=True, base=_CountingStage, autoretry_for=INFRA_ERRORS, **RETRY_OPTIONS
)
def prepare_cost_job(self: Task[Any, Any], submission_id: int, job_id: str) -> None:
    """Build the cost job from the database and uploads, and send it to a cost worker."""
    settings, engine = _env()
    delivery = _begin_db_stage(
        settings, engine, submission_id, job_id, JobStage.COUNT, {SubmissionState.COUNTING}
    )
    if delivery is None:
        return
    with records.lease(settings, delivery, retried=_retried(self, INFRA_ERRORS)) as held:
        held.phase("preparing")
        try:
            request = pipeline.prepare_counting(engine, settings, submission_id, job_id)
            if request is not None:
                send.send(settings, request)
        except INFRA_ERRORS:
            raise  # Celery retries it (`autoretry_for`); OperationalError is a StatementError
        except REFUSED as exc:
            _fail(engine, submission_id, job_id, exc, Stage.COUNTING)


def _gave_up_report(delivery: records.Delivery, worker: str) -> CostReport:
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


class _CostStage(Task):  # type: ignore[misc]
    """A cost job: after Celery's last retry of a sandbox fault, its report says the service
    could not run it (the submission then fails as the service's fault)."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not isinstance(exc, SANDBOX_ERRORS) or len(args) < 2:
            return
        log.warning("cost job %s: sandbox fault, giving up: %s", args[1], exc)
        settings = get_settings()
        metrics.record_cost_job(_device(), "unavailable")
        try:
            record = records.read_records(settings, [args[0]]).get(args[0])
        except records.ERRORS:
            record = None
        deliveries = record.deliveries if record is not None else self.request.retries + 1
        report = CostReport(
            submission_id=args[0],
            job_id=args[1],
            device=_device(),
            worker=socket.gethostname(),
            service_error=f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"[:20_000],
            deliveries=min(max(deliveries, 1), 1000),
        )
        send.send(settings, report)


@shared_task(
    name=COST_TASK, bind=True, base=_CostStage, autoretry_for=SANDBOX_ERRORS, **RETRY_OPTIONS
)
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
    delivery = records.begin(settings, submission_id, job_id, JobStage.COST)
    if delivery.status is not Status.RUN:
        log.info("cost job %s skipped: %s", job_id, delivery.status)
        return
    if delivery.exhausted(settings):
        log.warning("cost job %s: delivery %s, giving up", job_id, delivery.number)
        metrics.record_cost_job(_device(), "worker_lost")
        send.send(settings, _gave_up_report(delivery, worker))
        return
    with records.lease(settings, delivery, retried=_retried(self, SANDBOX_ERRORS)) as held:
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
        except SANDBOX_ERRORS:
            held.phase("sandbox-unavailable")
            raise  # Celery retries it; after the last retry `_CostStage.on_failure` reports
        held.phase("report")
        send.send(settings, report.model_copy(update={"deliveries": delivery.number}))


@shared_task(
    name=REPORT_TASK, bind=True, base=_CountingStage, autoretry_for=INFRA_ERRORS, **RETRY_OPTIONS
)
def store_cost_report(
    self: Task[Any, Any], submission_id: int, job_id: str, report: dict[str, Any]
) -> None:
    """Check a cost worker's report against the job and store it (or the failure)."""
    settings, engine = _env()
    delivery = records.begin(settings, submission_id, job_id, JobStage.REPORT)
    if delivery.status is not Status.RUN:
        log.info("cost report %s skipped: %s", job_id, delivery.status)
        return
    if delivery.exhausted(settings):
        detail = f"storing the cost report stopped its worker {delivery.number - 1} times"
        _fail(engine, submission_id, job_id, RuntimeError(detail), Stage.COUNTING)
        return
    with records.lease(settings, delivery, retried=_retried(self, INFRA_ERRORS)) as held:
        held.phase("storing")
        try:
            parsed = CostReport.model_validate(report)
        except ValidationError as exc:  # refused at once: a retry would get the same
            _fail(engine, submission_id, job_id, _invalid_report(exc), Stage.COUNTING)
            return
        if (parsed.submission_id, parsed.job_id) != (submission_id, job_id):
            log.error("cost report %s: its arguments and its body disagree; dropped", job_id)
            return
        try:
            pipeline.finish_counting(engine, settings, parsed)
        except INFRA_ERRORS:
            raise  # Celery retries it (`autoretry_for`); OperationalError is a StatementError
        except REFUSED as exc:
            _fail(engine, submission_id, job_id, exc, Stage.COUNTING)
    release_waiting(settings, engine)


def release_waiting(settings: Settings, engine: Engine) -> int:
    """Send the cost jobs that waited for their owner's share of the cost queue, if any is free."""
    try:
        with transaction(engine) as session:
            ready = cost_queue.releasable(session, per_user=settings.limits.cost_jobs_per_user)
        for submission_id, job_id in ready:
            send.send_count(settings, submission_id, job_id)
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


@shared_task(name=RECONCILE_TASK)
def reconcile_submissions() -> int:
    settings, engine = _env()
    done = reconcile(
        engine,
        settings,
        send_score=functools.partial(send.send_score, settings),
        send_count=functools.partial(send.send_count, settings),
        records=lambda ids: records.read_records(settings, ids),
    )
    release_waiting(settings, engine)
    return len(done)


@shared_task(name=LEFTOVERS_TASK)
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


@shared_task(name=PREFLIGHT_TASK, ignore_result=False, acks_late=False)
def preflight(request: dict[str, Any]) -> dict[str, Any]:
    """Capture a model file and match weights against its graph, while the web waits.

    No database, nothing stored; the web gives up waiting after `limits.preflight_wait_seconds`
    and then checks the weights when the submission is counted instead.
    """
    from worker.preflight import run_preflight

    settings = get_settings()
    result = run_preflight(PreflightRequest.model_validate(request), settings, device=_device())
    return result.model_dump()
