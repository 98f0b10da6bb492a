"""Which cost job is current for a submission, recorded in the broker's Redis.

Cost workers have no database, so they cannot see in the submission row that a job was
superseded (re-run, re-sent by the reconciler). The trusted side records the current job id
here when it sends a job; a cost worker skips a job that is no longer current and marks the one
it starts as running. The reconciler reads it too: a cost job still waiting in the queue, or
running for less than the task's hard time limit, is not stuck, however long the queue is.

A lost record (Redis restarted without its data) reads as "unknown": the job runs, and the
reconciler treats the submission as stuck, which is right (its message is gone as well).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import redis

from core.settings import Settings

log = logging.getLogger(__name__)
KEY = "paretoboard:cost-job:{}"
TTL_SECONDS = 14 * 24 * 3600
QUEUED_MAX_SECONDS = 24 * 3600
RUNNING_GRACE_SECONDS = 300  # past the task's hard time limit
_ERRORS = (redis.RedisError, OSError)
# Set the record to "running" only if it still names this job (or there is none).
_MARK_RUNNING = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['job_id'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def _client(settings: Settings) -> redis.Redis:
    url = settings.broker.url.get_secret_value()
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=5, socket_connect_timeout=5
            )
        return client


def _record(job_id: str, state: str, **extra: Any) -> str:
    return json.dumps({"job_id": job_id, "state": state, "at": time.time(), **extra})


def mark_sent(settings: Settings, submission_id: int, job_id: str) -> None:
    """Record `job_id` as the submission's current cost job, waiting in a queue."""
    try:
        _client(settings).set(KEY.format(submission_id), _record(job_id, "queued"), ex=TTL_SECONDS)
    except _ERRORS as exc:
        log.warning("could not record cost job %s: %s", job_id, exc)


def start(settings: Settings, submission_id: int, job_id: str, worker: str) -> bool:
    """Mark the job running; False when a newer job superseded it (then skip it)."""
    try:
        marked = _client(settings).eval(
            _MARK_RUNNING,
            1,
            KEY.format(submission_id),
            job_id,
            _record(job_id, "running", worker=worker),
            str(TTL_SECONDS),
        )
    except _ERRORS as exc:
        log.warning("could not check cost job %s (running it): %s", job_id, exc)
        return True
    return bool(marked)


def is_alive(settings: Settings, submission_id: int, job_id: str) -> bool:
    """Whether the job is waiting in a queue, or running within its time limit."""
    try:
        raw = _client(settings).get(KEY.format(submission_id))
    except _ERRORS as exc:
        log.warning("could not read cost job %s: %s", job_id, exc)
        return False
    if raw is None:
        return False
    try:
        record = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(record, dict) or record.get("job_id") != job_id:
        return False
    at = record.get("at")
    if not isinstance(at, int | float):
        return False
    # A queued job waits as long as the queue is; a purged queue must not hide it forever.
    if record.get("state") == "queued":
        limit = QUEUED_MAX_SECONDS
    else:
        limit = settings.limits.task_hard_seconds + RUNNING_GRACE_SECONDS
    return time.time() - at < limit
