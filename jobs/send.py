"""The one place that sends messages to the broker: the web, the workers, the reconciler, the CLI.

Every job is recorded as queued in the broker's Redis (`jobs.records.mark_queued`) just before
its message goes out, so the reconciler sees it waiting however long the queue is. `send`
raises when the broker cannot be reached (a worker's stage is then retried); `send_score` and
`send_count` log it and answer False instead, for callers that committed the row already: a
lost send loses nothing, the submission stays in its state and the reconciler
(`worker/reconcile.py`) re-sends it once it looks stuck.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import redis

from core.settings import Settings
from jobs import records
from jobs.app import PREFLIGHT_TASK, app_for
from jobs.messages import CostRequest, CountJob, Job, ScoreJob

log = logging.getLogger(__name__)
# Fail fast when the broker is down: the reconciler is the safety net, not the sender.
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
COMPRESSION = "zlib"  # cost jobs and reports carry token ids and per-sample costs
PREFLIGHT_ALIVE_KEY = "paretoboard:preflight-worker:{}"  # set by worker.preflight.announce


def send(settings: Settings, job: Job) -> None:
    """Record `job` as queued and send it (raises when the broker cannot be reached)."""
    records.mark_queued(settings, job.submission_id, job.job_id, job.STAGE)
    options: dict[str, Any] = {}
    if job.COMPRESSED:
        options["compression"] = COMPRESSION
    if isinstance(job, CostRequest):
        options["queue"] = settings.worker.cost_queue
    app_for(settings).send_task(
        job.TASK,
        args=job.args(),
        argsrepr=job.argsrepr(),
        ignore_result=True,  # else it subscribes to the result backend too (and waits on it)
        retry=True,
        retry_policy=RETRY_POLICY,
        **options,
    )


def send_or_leave(settings: Settings, job: Job) -> bool:
    """Send `job` after its row was committed; False (logged) if the broker is down."""
    try:
        send(settings, job)
    except Exception as exc:
        log.warning(
            "submission %s: could not reach the broker (%s); left for the reconciler",
            job.submission_id,
            exc,
        )
        return False
    return True


def send_score(settings: Settings, submission_id: int, job_id: str) -> bool:
    """Send stages 1-2 of a committed submission; False (logged) if the broker is down."""
    return send_or_leave(settings, ScoreJob(submission_id=submission_id, job_id=job_id))


def send_count(settings: Settings, submission_id: int, job_id: str) -> bool:
    """Send stage 3 (a score worker prepares the cost job); False (logged) if the broker is down."""
    return send_or_leave(settings, CountJob(submission_id=submission_id, job_id=job_id))


def preflight_worker_alive(settings: Settings) -> bool:
    """Whether a worker consuming the pre-flight queue announced itself (worker/preflight.py)."""
    try:
        for _key in records.client(settings).scan_iter(
            match=PREFLIGHT_ALIVE_KEY.format("*"), count=100
        ):
            return True
    except (redis.RedisError, OSError):
        return False
    return False


def preflight_available(settings: Settings) -> bool:
    """Whether a pre-flight check would be sent now (enabled, and a worker is alive)."""
    return settings.limits.preflight_wait_seconds > 0 and preflight_worker_alive(settings)


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
    wait = settings.limits.preflight_wait_seconds
    if wait <= 0 or not preflight_worker_alive(settings):
        return None
    request = {
        "model_b64": base64.b64encode(model).decode("ascii"),
        "weights": weights,
        "samples": samples or [],
        "paths": paths or [],
    }
    try:
        pending = app_for(settings).send_task(
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
