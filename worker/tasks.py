"""Celery tasks: thin wrappers that take ids and call the pipeline."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import Task
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.db.session import engine_for
from core.settings import Settings, get_settings
from worker import pipeline
from worker.celery_app import COUNT_TASK, RECONCILE_TASK, SCORE_TASK, app
from worker.device import detect_device
from worker.reconcile import reconcile
from worker.sandbox import SandboxUnavailableError

log = logging.getLogger(__name__)
INFRA_ERRORS = (OperationalError, ConnectionError, OSError)
RETRY_SECONDS = 30
MAX_RETRIES = 5


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
    from worker.celery_app import get_app

    get_app().send_task(COUNT_TASK, args=[submission_id, job_id], ignore_result=True)


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
        "The service could not finish this evaluation (our fault, not yours); an operator will re-run it.",
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
def count_submission(self: Task[Any, Any], submission_id: int, job_id: str) -> None:
    settings, engine = _env()
    try:
        pipeline.run_counting(engine, settings, submission_id, job_id, device=_device())
    except (SandboxUnavailableError, *INFRA_ERRORS) as exc:
        _retry_or_fail(self, submission_id, job_id, exc, "counting")


@app.task(name=RECONCILE_TASK)
def reconcile_submissions() -> int:
    settings, engine = _env()
    return len(reconcile(engine, settings, send_score=send_score, send_count=send_count))
