"""The daily quota: evaluations per user per task in a rolling 24-hour window.

Counted: submissions of the user that name the task (a prediction file for it), made in
the last 24 hours, in any state except failed through the service's own fault
(`fault == "service"`). Withdrawn submissions still count (withdrawing and re-submitting must not
buy more looks at the hidden test labels). ELUE's Type 1 submissions (prediction files scored
here, costs self-reported) see the labels' verdict like measured ones and count the same.
Self-reported entries from papers see no labels, so they have a quota of their own: entries per user in the same rolling window, withdrawn ones included (they
cost the board's readers and moderators as much).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.errors import ParetoboardError, Problem
from core.models import FileRole, Submission, SubmissionFile, SubmissionKind, Task
from core.submissions.states import Fault

WINDOW = dt.timedelta(hours=24)


class QuotaExceededError(ParetoboardError):
    status_code = 429
    code = "quota_exceeded"

    def __init__(self, message: str, problems: list[Problem], retry_after: int) -> None:
        super().__init__(message, problems)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries."""
        return {"Retry-After": str(self.retry_after)}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def counted_times(
    session: Session, *, owner_id: int, task_id: int, now: dt.datetime | None = None
) -> list[dt.datetime]:
    """Creation times of the submissions counted against (owner, task), oldest first."""
    since = (now or utcnow()) - WINDOW
    has_task = exists(
        select(SubmissionFile.id).where(
            SubmissionFile.submission_id == Submission.id,
            SubmissionFile.task_id == task_id,
            SubmissionFile.role == FileRole.PREDICTIONS,
        )
    )
    rows = session.scalars(
        select(Submission.created_at)
        .where(
            Submission.owner_id == owner_id,
            Submission.created_at >= since,
            or_(Submission.fault.is_(None), Submission.fault != Fault.SERVICE),
            has_task,
        )
        .order_by(Submission.created_at)
    )
    return [_aware(t) for t in rows]


def check_quota(
    session: Session,
    *,
    owner_id: int,
    tasks: Iterable[Task],
    limit: int,
    now: dt.datetime | None = None,
) -> None:
    """Raise QuotaExceededError (429, with Retry-After) if any task has no slot left."""
    now = now or utcnow()
    problems: list[Problem] = []
    wait = 0.0
    for task in sorted(set(tasks), key=lambda t: t.name):
        times = counted_times(session, owner_id=owner_id, task_id=task.id, now=now)
        if len(times) < limit:
            continue
        # The slot frees when enough of the oldest counted submissions have left the window.
        frees_at = times[len(times) - limit] + WINDOW
        seconds = max(1.0, (frees_at - now).total_seconds())
        wait = max(wait, seconds)
        problems.append(
            Problem(
                f"{task.name}: {len(times)} evaluation(s) in the last 24 hours, the limit is "
                f"{limit}; the next slot opens at {frees_at.isoformat(timespec='seconds')}",
                column="predictions",
            )
        )
    if problems:
        retry_after = math.ceil(wait)
        raise QuotaExceededError(
            f"Daily submission quota reached; try again after {_clock(now, retry_after)}",
            problems,
            retry_after,
        )


@dataclass(frozen=True, slots=True)
class TaskQuota:
    """What is left of (owner, task)'s daily quota: a check shows it and uses none of it."""

    task: str
    used: int
    limit: int
    remaining: int
    next_slot_at: dt.datetime | None  # when a used slot frees (the oldest leaves the window)


def remaining_quota(
    session: Session,
    *,
    owner_id: int,
    tasks: Iterable[Task],
    limit: int,
    now: dt.datetime | None = None,
) -> list[TaskQuota]:
    """Per task (by name), the evaluations counted in the window and the slots left."""
    now = now or utcnow()
    out = []
    for task in sorted(set(tasks), key=lambda t: t.name):
        times = counted_times(session, owner_id=owner_id, task_id=task.id, now=now)
        out.append(
            TaskQuota(
                task=task.name,
                used=len(times),
                limit=limit,
                remaining=max(0, limit - len(times)),
                next_slot_at=times[0] + WINDOW if times else None,
            )
        )
    return out


def _clock(now: dt.datetime, seconds: int) -> str:
    """When a wait of `seconds` from `now` ends, as a person reads it: "14:05 UTC" (with the
    date when it is not today's)."""
    at = (_aware(now) + dt.timedelta(seconds=seconds)).astimezone(dt.UTC)
    # rounded up to the minute: trying at the printed time always works
    if at.second or at.microsecond:
        at = at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    same_day = at.date() == _aware(now).astimezone(dt.UTC).date()
    return at.strftime("%H:%M UTC" if same_day else "%H:%M UTC on %d %b %Y")


def check_self_reported_quota(
    session: Session, *, owner_id: int, limit: int, now: dt.datetime | None = None
) -> None:
    """Raise QuotaExceededError (429, with Retry-After) past `limit` entries in 24 hours."""
    now = now or utcnow()
    times = [
        _aware(t)
        for t in session.scalars(
            select(Submission.created_at)
            .where(
                Submission.owner_id == owner_id,
                Submission.kind == SubmissionKind.SELF_REPORTED,
                Submission.created_at >= now - WINDOW,
                ~exists(  # Type 1 entries (scored prediction files) count as evaluations
                    select(SubmissionFile.id).where(
                        SubmissionFile.submission_id == Submission.id,
                        SubmissionFile.role == FileRole.PREDICTIONS,
                    )
                ),
            )
            .order_by(Submission.created_at)
        )
    ]
    if len(times) < limit:
        return
    frees_at = times[len(times) - limit] + WINDOW
    retry_after = math.ceil(max(1.0, (frees_at - now).total_seconds()))
    raise QuotaExceededError(
        f"Daily quota of self-reported entries reached; try again after {_clock(now, retry_after)}",
        [
            Problem(
                f"{len(times)} self-reported entries in the last 24 hours, the limit is {limit}; "
                f"the next slot opens at {frees_at.isoformat(timespec='seconds')}",
                column="points",
            )
        ],
        retry_after,
    )
