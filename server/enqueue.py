"""Sending pipeline jobs from the web process, after the rows are committed.

The Celery app is configured from the web app's own settings (so tests and the site send to the
broker they were given). A broker outage loses nothing: the submission stays queued in the
database and the reconciler (`worker/reconcile.py`) re-sends it once it looks stuck.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any

from celery import Celery

from core.db.outbox import Message, ScoreJob
from core.db.session import engine_for, transaction
from core.settings import Settings
from core.storage import BlobStore
from core.submissions.blobs import collect_blobs

log = logging.getLogger(__name__)
_apps: dict[tuple[str, str], Celery] = {}
_lock = threading.Lock()
# Fail fast when the broker is down: the reconciler is the safety net, not the web request.
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def celery_for(settings: Settings) -> Celery:
    """One configured Celery app per broker (created on first use)."""
    from worker.celery_app import configure

    key = (
        settings.broker.url.get_secret_value(),
        settings.broker.result_backend.get_secret_value(),
    )
    with _lock:
        app = _apps.get(key)
        if app is None:
            app = _apps[key] = configure(Celery("paretoboard-web"), settings)
            app.conf.broker_connection_timeout = 3
        return app


def send_score(settings: Settings, submission_id: int, job_id: str) -> bool:
    """Enqueue stages 1-2 of a committed submission; False (logged) if the broker is down."""
    from worker import attempts
    from worker.celery_app import SCORE_TASK

    try:
        # the reconciler then sees it waiting in the queue, however long the queue is
        attempts.mark_queued(settings, submission_id, job_id, attempts.Stage.SCORE)
        celery_for(settings).send_task(
            SCORE_TASK,
            args=[submission_id, job_id],
            ignore_result=True,  # else it subscribes to the result backend too (and waits on it)
            retry=True,
            retry_policy=RETRY_POLICY,
        )
    except Exception as exc:
        log.warning(
            "submission %s: could not reach the broker (%s); left queued for the reconciler",
            submission_id,
            exc,
        )
        return False
    return True


def deliver(settings: Settings, message: Message) -> bool:
    """Send one message a committed unit of work recorded (`core.db.outbox`)."""
    if isinstance(message, ScoreJob):
        return send_score(settings, message.submission_id, message.job_id)
    try:
        with transaction(engine_for(settings.database_url)) as fresh:
            collect_blobs(fresh, BlobStore(settings.storage.uploads_dir), message.shas)
    except Exception:  # the withdrawal stands; an unreferenced blob is only wasted space
        log.exception("could not remove unreferenced blobs %s", ", ".join(message.shas[:3]))
        return False
    return True


def _preflight_worker_alive(settings: Settings) -> bool:
    """Whether a worker consuming the pre-flight queue announced itself (worker/preflight.py)."""
    import redis

    try:
        client = redis.Redis.from_url(
            settings.broker.url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
        )
        for _key in client.scan_iter(match="paretoboard:preflight-worker:*", count=100):
            return True
    except (redis.RedisError, OSError):
        return False
    return False


def preflight_available(settings: Settings) -> bool:
    """Whether a pre-flight check would be sent now (enabled, and a worker is alive)."""
    return settings.limits.preflight_wait_seconds > 0 and _preflight_worker_alive(settings)


def preflight(
    settings: Settings,
    model: bytes,
    weights: dict[str, dict[str, tuple[list[int], str]]],
    *,
    samples: list[dict[str, Any]] | None = None,
    paths: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Ask a pre-flight worker to capture `model`, match `weights`, run the model on
    `samples` (real test inputs) and match `paths` (the files' module paths); None if none
    answered.

    Blocks up to `limits.preflight_wait_seconds` (call it from a thread, never holding a lock).
    """
    from worker.celery_app import PREFLIGHT_TASK

    wait = settings.limits.preflight_wait_seconds
    if wait <= 0 or not _preflight_worker_alive(settings):
        return None
    request = {
        "model_b64": base64.b64encode(model).decode("ascii"),
        "weights": weights,
        "samples": samples or [],
        "paths": paths or [],
    }
    try:
        pending = celery_for(settings).send_task(
            PREFLIGHT_TASK,
            args=[request],
            ignore_result=False,
            expires=wait,  # a check nobody waits for any more is not run
            retry=True,
            retry_policy=RETRY_POLICY,
        )
        answer = pending.get(timeout=wait, propagate=False)
    except Exception as exc:  # broker down, no worker in time: checked when counted
        log.warning("pre-flight check not made (%s: %s)", type(exc).__name__, str(exc)[:300])
        return None
    return answer if isinstance(answer, dict) else None
