"""Deliveries, leases and heartbeats of pipeline jobs, recorded in the broker's Redis.

Every job type uses the same three calls (docs/reliability.md):

    mark_queued(settings, sid, job_id, stage)           # jobs.send, just before send_task
    delivery = begin(settings, sid, job_id, stage)      # first thing a task does (counted)
    with lease(settings, delivery) as held:             # heartbeats while it works
        held.phase("model")                             # what it is doing (names the fault)
        ...                                             # leaving normally marks the stage done

One record per submission (`paretoboard:job:<id>`) names its current job and stage:
`{"job_id", "stage", "state": queued|running|done|stopped, "at", "beat", "deliveries", "phase",
"worker", "pid"}`. Cost workers hold no database, so this record is the only place where they
can count deliveries and be seen alive; score workers use it too, so that the reconciler reads
one thing for every stage (`read_records`) and never waits on a row lock.

`begin` counts the delivery in one atomic Redis transaction before any work: a job whose
deliveries keep killing their worker (out of memory, time limit) is not redelivered forever.
A lost record (a Redis without persistence restarted) reads as "missing": the reconciler then
falls back to the row's age, which is right, since the job's message is gone as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

from core.settings import Settings

log = logging.getLogger(__name__)
KEY = "paretoboard:job:{}"
TTL_SECONDS = 14 * 24 * 3600
QUEUED_MAX_SECONDS = 24 * 3600  # a purged queue must not hide a job forever
ERRORS = (redis.RedisError, OSError)
# Renew / end a lease only while the record still names this delivery.
_UPDATE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec['job_id'] ~= ARGV[1] or rec['stage'] ~= ARGV[2] or rec['worker'] ~= ARGV[3]
   or tostring(rec['pid']) ~= ARGV[4] or rec['state'] ~= 'running' then return 0 end
local upd = cjson.decode(ARGV[5])
for k, v in pairs(upd) do rec[k] = v end
redis.call('SET', KEYS[1], cjson.encode(rec), 'EX', ARGV[6])
return 1
"""
_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


class JobStage(enum.StrEnum):
    """Which task of a submission's pipeline a job record is about."""

    SCORE = "score"  # validate and score (score queue)
    COUNT = "count"  # prepare a cost job (score queue)
    COST = "cost"  # run the cost job in the sandbox (cost queues, no database)
    REPORT = "report"  # store the cost report (score queue)


class Status(enum.StrEnum):
    RUN = "run"  # go ahead: this delivery holds the lease
    SUPERSEDED = "superseded"  # the record names a newer job: skip
    BUSY = "busy"  # another live delivery holds the lease: skip
    FINISHED = "finished"  # this stage already finished: skip


class Liveness(enum.StrEnum):
    WAITING = "waiting"  # queued, within QUEUED_MAX_SECONDS
    RUNNING = "running"  # its lease is fresh
    DEAD = "dead"  # its lease expired, or it stopped on an error: re-send it now
    FINISHED = "finished"  # the stage finished and the next one was not recorded yet
    MISSING = "missing"  # no record of this job (lost, or sent by an older version)


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One delivery of a stage's task, as `begin` counted it."""

    submission_id: int
    job_id: str
    stage: str
    status: Status
    number: int = 0  # 1 for the first delivery of this job's stage, 2 for its redelivery, ...
    previous_phase: str | None = None  # where an earlier delivery was when its worker died
    worker: str = ""
    pid: int = 0

    def exhausted(self, settings: Settings) -> bool:
        """Whether this delivery is past the allowed number of attempts."""
        return self.number > settings.limits.max_attempts


@dataclasses.dataclass(frozen=True)
class Record:
    """A submission's job record as the reconciler reads it."""

    job_id: str
    stage: str
    state: str
    at: float
    beat: float
    deliveries: int
    phase: str | None

    def liveness(self, job_id: str, settings: Settings, now: float) -> Liveness:
        """What the record says about `job_id` at time `now`."""
        if self.job_id != job_id:
            return Liveness.MISSING
        if self.state == "queued":
            return Liveness.WAITING if now - self.at < QUEUED_MAX_SECONDS else Liveness.MISSING
        if self.state == "running":
            fresh = now - self.beat < settings.limits.lease_seconds
            return Liveness.RUNNING if fresh else Liveness.DEAD
        if self.state == "stopped":
            return Liveness.DEAD
        return Liveness.FINISHED


def client(settings: Settings) -> redis.Redis:
    """The process's Redis client for the broker's URL (short timeouts: never hang a task or a
    request); the web's probes and pre-flight check use it too."""
    url = settings.broker.url.get_secret_value()
    with _lock:
        found = _clients.get(url)
        if found is None:
            found = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=5, socket_connect_timeout=3
            )
        return found


def _key(submission_id: int) -> str:
    return KEY.format(submission_id)


def _decode(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("job_id"), str) else None


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def mark_queued(settings: Settings, submission_id: int, job_id: str, stage: str) -> None:
    """Record `job_id`'s `stage` as sent and waiting (before the message goes out)."""
    now = time.time()
    record = {"job_id": job_id, "stage": stage, "state": "queued", "at": now, "beat": now}
    record |= {"deliveries": 0, "phase": None}
    try:
        client(settings).set(_key(submission_id), json.dumps(record), ex=TTL_SECONDS)
    except ERRORS as exc:
        log.warning("could not record job %s (%s) as queued: %s", job_id, stage, exc)


def _holder_alive(record: dict[str, Any], host: str) -> bool:
    """Whether the record's holder still runs (known only on this host)."""
    if record.get("worker") != host:
        return True  # another host: its heartbeats say so
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def begin(
    settings: Settings,
    submission_id: int,
    job_id: str,
    stage: str,
    *,
    authoritative: bool = False,
) -> Delivery:
    """Count a delivery of `job_id`'s `stage` and take its lease, atomically, before any work.

    `authoritative`: the caller checked in the database that `job_id` is current, so a record
    naming another job is stale (it is replaced). A Redis fault lets the job run uncounted.
    """
    host, pid = socket.gethostname(), os.getpid()
    key = _key(submission_id)
    result: list[Delivery] = []

    def attempt(pipe: Any) -> None:
        result.clear()
        now = time.time()
        record = _decode(pipe.get(key))
        same = record is not None and record["job_id"] == job_id
        if record is not None and not same and not authoritative:
            result.append(Delivery(submission_id, job_id, stage, Status.SUPERSEDED))
            return
        number, previous = 1, None
        if record is not None and same and record.get("stage") == stage:
            state = record.get("state")
            if state == "done":
                result.append(Delivery(submission_id, job_id, stage, Status.FINISHED))
                return
            number = int(_number(record.get("deliveries"))) + 1
            if state in ("running", "stopped"):
                previous = record.get("phase") if isinstance(record.get("phase"), str) else None
            fresh = now - _number(record.get("beat")) < settings.limits.lease_seconds
            if state == "running" and fresh and _holder_alive(record, host):
                result.append(Delivery(submission_id, job_id, stage, Status.BUSY))
                return
        updated = {"job_id": job_id, "stage": stage, "state": "running", "at": now, "beat": now}
        updated |= {"deliveries": number, "phase": "start", "worker": host, "pid": pid}
        pipe.multi()
        pipe.set(key, json.dumps(updated), ex=TTL_SECONDS)
        result.append(
            Delivery(submission_id, job_id, stage, Status.RUN, number, previous, host, pid)
        )

    try:
        client(settings).transaction(attempt, key)
    except ERRORS as exc:
        log.warning("could not count the delivery of job %s (%s): %s", job_id, stage, exc)
        return Delivery(submission_id, job_id, stage, Status.RUN, 1, None, host, pid)
    return result[0]


def _update(settings: Settings, delivery: Delivery, **fields: object) -> bool:
    """Change this delivery's record if it still holds the lease; False when it does not."""
    try:
        done = client(settings).eval(
            _UPDATE,
            1,
            _key(delivery.submission_id),
            delivery.job_id,
            delivery.stage,
            delivery.worker,
            str(delivery.pid),
            json.dumps(fields),
            str(TTL_SECONDS),
        )
    except ERRORS as exc:
        log.warning("could not update job %s (%s): %s", delivery.job_id, delivery.stage, exc)
        return False
    return bool(done)


class Lease:
    """A held lease: a thread renews it every `heartbeat_seconds` until the block ends."""

    def __init__(self, settings: Settings, delivery: Delivery) -> None:
        self.settings = settings
        self.delivery = delivery
        self._phase = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{delivery.submission_id}", daemon=True
        )

    def phase(self, name: str) -> None:
        """Say what the job does now (recorded at once, and with every heartbeat)."""
        self._phase = name
        _update(self.settings, self.delivery, phase=name, beat=time.time())

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.limits.heartbeat_seconds):
            if not _update(self.settings, self.delivery, beat=time.time(), phase=self._phase):
                log.info("job %s: lease no longer held", self.delivery.job_id)

    def _end(self, state: str) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        _update(self.settings, self.delivery, state=state, beat=time.time(), phase=self._phase)


@contextlib.contextmanager
def lease(
    settings: Settings,
    delivery: Delivery,
    *,
    retried: tuple[type[BaseException], ...] = (),
) -> Iterator[Lease]:
    """Hold `delivery`'s lease while the block runs.

    Leaving normally marks the stage done; an exception marks it stopped (the reconciler re-sends
    it at once), except a Celery retry, or one of `retried` (the errors Celery will retry this
    delivery for: its `autoretry_for`, until the last retry), which leave it queued for the
    retry's delivery.
    """
    from celery.exceptions import Retry

    held = Lease(settings, delivery)
    held._thread.start()
    try:
        yield held
    except (Retry, *retried):
        held._end("queued")
        raise
    except BaseException:
        held._end("stopped")
        raise
    held._end("done")


def read_records(settings: Settings, submission_ids: list[int]) -> dict[int, Record | None]:
    """The job records of these submissions (raises a Redis error when it cannot read them)."""
    if not submission_ids:
        return {}
    raws = client(settings).mget([_key(sid) for sid in submission_ids])
    out: dict[int, Record | None] = {}
    for sid, raw in zip(submission_ids, raws, strict=True):
        rec = _decode(raw)
        out[sid] = (
            None
            if rec is None
            else Record(
                job_id=rec["job_id"],
                stage=str(rec.get("stage", "")),
                state=str(rec.get("state", "")),
                at=_number(rec.get("at")),
                beat=_number(rec.get("beat")),
                deliveries=int(_number(rec.get("deliveries"))),
                phase=rec.get("phase") if isinstance(rec.get("phase"), str) else None,
            )
        )
    return out
