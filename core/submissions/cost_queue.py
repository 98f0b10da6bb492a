"""The fair cost queue: each user's share of it is bounded, and everyone sees their place.

A score worker sends a submission's cost job only while its owner has fewer than
`limits.cost_jobs_per_user` cost jobs sent (queued in the broker or running); otherwise the
submission waits in `counting` with `cost_queue = waiting`. When a cost job ends (its report is
stored) and on every reconciler run, `releasable` picks, for every owner below the limit, their
oldest waiting submissions, and the worker sends them (`paretoboard.count` again). So the broker
queue holds at most that many jobs per user, a newcomer's first job is never behind more than
`limit` jobs of any one other user, and each user's next job joins the back of the queue as
their previous one finishes (round-robin). Operator entries (no owner) are not held.

Position and wait (`position`), an estimate:
- a sent job: the sent jobs sent before it (queued or running) are ahead of it;
- a waiting job, the k-th (from 0) of its owner's waiting ones: every sent job, its owner's k
  earlier waiting ones, and up to k waiting jobs of each other user (they are released in turn);
- the wait until it is counted = the median run time of the last `RECENT_JOBS` cost jobs
  (`cost_seconds`, measured on the cost worker) x (ahead + 1) / `worker.cost_slots` (how many
  cost jobs the installation runs at once); none before any cost job has finished.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.models import CostQueueState, Submission, SubmissionState, User
from core.settings import Settings

RECENT_JOBS = 20


def _current(state: CostQueueState) -> ColumnElement[bool]:
    return and_(
        Submission.state == SubmissionState.COUNTING,
        Submission.cost_queue == state,
        Submission.cost_queue_job == Submission.job_id,
    )


def is_sent(submission: Submission) -> bool:
    """Whether this job's cost job was sent already (a repeated `count` message does nothing)."""
    return (
        submission.cost_queue is CostQueueState.SENT
        and submission.cost_queue_job == submission.job_id
    )


def is_waiting(submission: Submission) -> bool:
    """Whether the submission waits for its owner's share of the cost queue (not stuck)."""
    return (
        submission.state is SubmissionState.COUNTING
        and submission.cost_queue is CostQueueState.WAITING
        and submission.cost_queue_job == submission.job_id
    )


def sent_count(session: Session, owner_id: int) -> int:
    """How many of the owner's cost jobs are sent (queued in the broker or running)."""
    n = session.scalar(
        select(func.count(Submission.id)).where(
            Submission.owner_id == owner_id, _current(CostQueueState.SENT)
        )
    )
    return int(n or 0)


def has_share(session: Session, submission: Submission, *, per_user: int) -> bool:
    """Whether the owner may have one more cost job sent (a cheap check before any work)."""
    if submission.owner_id is None:
        return True
    return sent_count(session, submission.owner_id) - int(is_sent(submission)) < per_user


def claim(session: Session, submission: Submission, *, per_user: int | None) -> bool:
    """Mark the submission's cost job sent if its owner has a free share (else change nothing).

    Locks the owner's row first (PostgreSQL; SQLite has one writer anyway), so two score
    workers never both take the last share; the caller sends the job after its commit when
    this returns True. `per_user=None`: no limit (a foreground `paretoboard evaluate`).
    """
    if submission.owner_id is not None and per_user is not None:
        session.get(User, submission.owner_id, with_for_update=True)
        if not has_share(session, submission, per_user=per_user):
            return False
    submission.cost_queue = CostQueueState.SENT
    submission.cost_queue_job = submission.job_id
    submission.cost_queued_at = utcnow()
    return True


def hold(submission: Submission) -> None:
    """Mark the submission's cost job waiting for its owner's share, from now."""
    submission.cost_queue = CostQueueState.WAITING
    submission.cost_queue_job = submission.job_id
    submission.cost_queued_at = utcnow()


def releasable(session: Session, *, per_user: int) -> list[tuple[int, str]]:
    """(submission id, job id) of the waiting jobs whose owners have a free share, oldest first."""
    waiting = session.execute(
        select(Submission.id, Submission.job_id, Submission.owner_id)
        .where(_current(CostQueueState.WAITING))
        .order_by(Submission.cost_queued_at, Submission.id)
    ).all()
    if not waiting:
        return []
    owners = {owner for _sid, _job, owner in waiting if owner is not None}
    sent = dict(
        session.execute(
            select(Submission.owner_id, func.count(Submission.id))
            .where(Submission.owner_id.in_(owners), _current(CostQueueState.SENT))
            .group_by(Submission.owner_id)
        ).all()
    )
    free = {owner: per_user - int(sent.get(owner, 0)) for owner in owners}
    out: list[tuple[int, str]] = []
    for sid, job, owner in waiting:
        if job is None:
            continue
        if owner is None or free[owner] > 0:
            out.append((sid, job))
            if owner is not None:
                free[owner] -= 1
    return out


@dataclass(frozen=True)
class QueuePlace:
    state: CostQueueState
    ahead: int  # cost jobs before it (queued or running; for a waiting one, an estimate)
    estimated_wait_seconds: float | None  # until its cost is counted; None without history
    recent_jobs: int  # how many finished cost jobs the estimate is the median of
    jobs_per_user: int


def median_cost_seconds(session: Session) -> tuple[float | None, int]:
    """The median run time of the last RECENT_JOBS finished cost jobs, and how many there were."""
    seconds = [
        float(s or 0.0)
        for s in session.scalars(
            select(Submission.cost_seconds)
            .where(Submission.cost_seconds.is_not(None), Submission.finished_at.is_not(None))
            .order_by(Submission.finished_at.desc())
            .limit(RECENT_JOBS)
        )
    ]
    return (statistics.median(seconds) if seconds else None), len(seconds)


def _before(at: dt.datetime | None, sid: int) -> ColumnElement[bool]:
    if at is None:
        return Submission.id < sid
    return or_(
        Submission.cost_queued_at < at,
        and_(Submission.cost_queued_at == at, Submission.id < sid),
    )


def position(session: Session, submission: Submission, settings: Settings) -> QueuePlace | None:
    """Where the submission's cost job is in the cost queue (None when it is not in it)."""
    if submission.state is not SubmissionState.COUNTING or submission.cost_queue is None:
        return None
    if submission.cost_queue_job != submission.job_id:
        return None
    mine = _before(submission.cost_queued_at, submission.id)
    if submission.cost_queue is CostQueueState.SENT:
        ahead = session.scalar(
            select(func.count(Submission.id)).where(_current(CostQueueState.SENT), mine)
        )
        n_ahead = int(ahead or 0)
    else:
        sent = session.scalar(
            select(func.count(Submission.id)).where(_current(CostQueueState.SENT))
        )
        own = session.scalar(
            select(func.count(Submission.id)).where(
                _current(CostQueueState.WAITING),
                Submission.owner_id == submission.owner_id,
                mine,
            )
        )
        rank = int(own or 0)
        others = session.execute(
            select(func.count(Submission.id))
            .where(
                _current(CostQueueState.WAITING),
                or_(
                    Submission.owner_id != submission.owner_id,
                    Submission.owner_id.is_(None),
                ),
            )
            .group_by(Submission.owner_id)
        ).scalars()
        n_ahead = int(sent or 0) + rank + sum(min(int(n), rank) for n in others)
    median, recent = median_cost_seconds(session)
    wait = None if median is None else median * (n_ahead + 1) / settings.worker.cost_slots
    return QueuePlace(
        state=submission.cost_queue,
        ahead=n_ahead,
        estimated_wait_seconds=wait,
        recent_jobs=recent,
        jobs_per_user=settings.limits.cost_jobs_per_user,
    )
