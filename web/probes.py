"""Is the database reachable, is the broker, how long are the queues: asked live, bounded in time.

Used by `/readyz` and by `/metrics` at scrape time. Every probe runs in a small thread pool and
is given up after `TIMEOUT_SECONDS`, so a hung connection attempt (a firewalled host) makes the
answer "down", never a hung request.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from sqlalchemy import func, select, text

from core.db.session import engine_for, session_factory
from core.models import Submission
from core.settings import Settings
from jobs import records
from jobs.app import COST_QUEUES, SCORE_QUEUE

TIMEOUT_SECONDS = 3.0
QUEUES = (SCORE_QUEUE, *COST_QUEUES)
# kombu's Redis transport keeps messages sent with a priority in extra lists named
# queue + "\x06\x16" + priority (default steps 3, 6, 9); plain messages in the queue's own key.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)

log = logging.getLogger(__name__)
T = TypeVar("T")
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")


@dataclass(frozen=True)
class Probe:
    ok: bool
    error: str | None = None


def _bounded(fn: Callable[[], T]) -> T:
    """Run `fn` with a deadline (TimeoutError past it)."""
    return _pool.submit(fn).result(timeout=TIMEOUT_SECONDS)


def _describe(what: str, exc: BaseException) -> str:
    """A short public reason (the details, host names included, go to the log only)."""
    if isinstance(exc, concurrent.futures.TimeoutError | TimeoutError):
        reason = f"no answer within {TIMEOUT_SECONDS:g} s"
    else:
        reason = type(exc).__name__
    log.warning("%s probe failed: %s: %s", what, type(exc).__name__, str(exc).strip()[:500])
    return reason


def _redis(settings: Settings) -> redis.Redis:
    return records.client(settings)  # the process's one client for the broker


def database(settings: Settings) -> Probe:
    """`SELECT 1` on the application's database."""

    def ping() -> None:
        with engine_for(settings.database_url).connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        _bounded(ping)
    except Exception as exc:
        return Probe(False, _describe("database", exc))
    return Probe(True)


def broker(settings: Settings) -> Probe:
    """`PING` on the broker (Redis)."""
    try:
        _bounded(_redis(settings).ping)
    except Exception as exc:
        return Probe(False, _describe("broker", exc))
    return Probe(True)


def queue_depths(settings: Settings) -> dict[str, int] | None:
    """Messages waiting in each queue (`LLEN`), or None when the broker does not answer."""

    def read() -> dict[str, int]:
        pipe = _redis(settings).pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(queue)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{queue}{_PRIORITY_SEP}{step}")
        counts = pipe.execute()
        per = 1 + len(_PRIORITY_STEPS)
        return {q: int(sum(counts[i * per : (i + 1) * per])) for i, q in enumerate(QUEUES)}

    try:
        return _bounded(read)
    except Exception:
        return None


def submissions_by_state(settings: Settings) -> dict[str, int] | None:
    """How many submissions are in each state, or None when the database does not answer."""

    def read() -> dict[str, int]:
        with session_factory(engine_for(settings.database_url))() as session:
            rows = session.execute(
                select(Submission.state, func.count()).group_by(Submission.state)
            ).all()
        return {state.value: int(n) for state, n in rows}

    try:
        return _bounded(read)
    except Exception:
        return None
