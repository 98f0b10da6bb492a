"""Re-enqueue submissions stuck in a state past a deadline: lost messages lose nothing."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from core.db.base import utcnow
from core.db.session import transaction
from core.models import Submission, SubmissionState
from core.settings import Settings
from core.submissions import cost_queue
from core.submissions.state import new_job_id, set_state
from core.submissions.states import Fault
from jobs.records import ERRORS, JobStage, Liveness, Record
from worker import metrics
from worker.pipeline import GAVE_UP_MESSAGE, MODEL_KILLED_MESSAGE

log = logging.getLogger(__name__)
Sender = Callable[[int, str], object]
Records = Callable[[list[int]], dict[int, Record | None]]
_ACTIVE = (
    SubmissionState.QUEUED,
    SubmissionState.VALIDATING,
    SubmissionState.SCORING,
    SubmissionState.COUNTING,
)


@dataclass(frozen=True)
class Requeued:
    submission_id: int
    state: SubmissionState
    job_id: str | None  # None when the submission was failed instead (too many attempts)


def _due(
    job_id: str | None, old: bool, record: Record | None, settings: Settings, now: float
) -> bool:
    """Whether a submission's job is lost: its worker died, or its message is gone."""
    live = record.liveness(job_id or "", settings, now) if record else Liveness.MISSING
    if live is Liveness.DEAD:
        return True
    if live in (Liveness.WAITING, Liveness.RUNNING):
        return False
    # finished (the next stage was never sent) or missing: judged by the row's age
    return old


def reconcile(
    engine: Engine,
    settings: Settings,
    *,
    send_score: Sender,
    send_count: Sender,
    older_than: dt.timedelta | None = None,
    records: Records | None = None,
) -> list[Requeued]:
    """Re-send the stage of every active submission whose job is lost; fail those out of attempts.

    With `records` (the broker's job records, `jobs.records.read_records`), a job whose lease
    expired is re-sent at once, one waiting in a queue or holding a fresh lease is left alone,
    and one without a record is re-sent once unchanged for `limits.stuck_after_seconds`. Without
    it (`paretoboard reconcile --older-than S`), every one unchanged for `older_than` is re-sent.
    """
    limits = settings.limits
    cutoff = utcnow() - (
        older_than if older_than is not None else dt.timedelta(seconds=limits.stuck_after_seconds)
    )
    with transaction(engine) as session:
        active = session.execute(
            select(
                Submission.id,
                Submission.job_id,
                (Submission.state_changed_at < cutoff).label("old"),
            ).where(Submission.state.in_(_ACTIVE))
        ).all()
    if records is not None:
        try:
            found = records([row.id for row in active])
        except ERRORS as exc:  # without the broker's records nothing can be judged
            log.warning("reconciler: the broker's job records are unreadable: %s", exc)
            return []
    else:
        found = {}
    now = time.time()
    done: list[Requeued] = []
    gave_up: list[Submission] = []
    to_send: list[tuple[Sender, int, str]] = []
    due = {
        row.id: row.job_id
        for row in active
        if (
            bool(row.old)
            if records is None
            else _due(row.job_id, bool(row.old), found.get(row.id), settings, now)
        )
    }
    if not due:
        return []
    with transaction(engine) as session:
        stuck = session.scalars(
            select(Submission)
            .where(Submission.id.in_(list(due)), Submission.state.in_(_ACTIVE))
            .order_by(Submission.id)
            .with_for_update(skip_locked=True)
        ).all()
        for sub in stuck:
            if sub.job_id != due[sub.id]:  # moved on since it was read
                continue
            if cost_queue.is_waiting(sub):  # waits for its owner's share, released elsewhere
                continue
            record = found.get(sub.id)
            if sub.attempts >= limits.max_attempts:
                _give_up(sub, record)
                done.append(Requeued(sub.id, sub.state, None))
                gave_up.append(sub)
                continue
            sub.job_id = new_job_id()
            counting = sub.state is SubmissionState.COUNTING
            why = _why(record)
            if counting:
                set_state(sub, SubmissionState.COUNTING, f"Re-sent to a cost worker {why}")
            else:
                set_state(sub, SubmissionState.QUEUED, f"Re-queued {why}")
            to_send.append((send_count if counting else send_score, sub.id, sub.job_id))
            done.append(Requeued(sub.id, sub.state, sub.job_id))
    for sub in gave_up:
        outcome = metrics.outcome_of(sub)
        if outcome is not None:
            metrics.record_final(outcome, metrics.evaluation_seconds(sub))
    for send, submission_id, job_id in to_send:  # after commit, so workers see the new job id
        try:
            send(submission_id, job_id)
        except Exception as exc:  # the broker is away: the next round sends it
            log.warning("could not re-enqueue submission %s: %s", submission_id, exc)
            continue
        log.info("re-enqueued submission %s (job %s)", submission_id, job_id)
    return done


def _why(record: Record | None) -> str:
    if record is None:
        return "after a delay (its job was lost)"
    if record.state in ("running", "stopped"):
        return f"after its worker stopped (in {record.stage}: {record.phase or 'start'})"
    return "after a delay"


def _give_up(sub: Submission, record: Record | None) -> None:
    """Fail a submission out of attempts: the submitter's fault when their model was running."""
    in_model = record is not None and record.stage == JobStage.COST and record.phase == "model"
    if in_model:
        set_state(
            sub,
            SubmissionState.FAILED,
            f"Counting failed: {MODEL_KILLED_MESSAGE.format(n=sub.attempts)}",
            failed_stage=sub.state.value,
            error_detail="counting: its cost worker stopped while the model ran, each time",
            fault=Fault.USER,
        )
        return
    set_state(
        sub,
        SubmissionState.FAILED,
        GAVE_UP_MESSAGE.format(n=sub.attempts),
        failed_stage=sub.state.value,
        error_detail=f"{sub.state.value}: its job was lost {sub.attempts} times"
        + (f" (last in {record.stage}: {record.phase})" if record is not None else ""),
        fault=Fault.SERVICE,
    )
