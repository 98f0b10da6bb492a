"""Re-enqueue submissions stuck in a state past a deadline: lost messages lose nothing."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from core.db.base import utcnow
from core.db.session import transaction
from core.models import Submission, SubmissionState
from core.settings import Settings
from core.submissions import cost_queue
from core.submissions.state import set_state
from worker import metrics
from worker.pipeline import new_job_id

log = logging.getLogger(__name__)
Sender = Callable[[int, str], None]
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


def reconcile(
    engine: Engine,
    settings: Settings,
    *,
    send_score: Sender,
    send_count: Sender,
    older_than: dt.timedelta | None = None,
    cost_job_alive: Callable[[int, str], bool] | None = None,
) -> list[Requeued]:
    """Find active submissions unchanged for `older_than` and send their stage's task again.

    `cost_job_alive(submission_id, job_id)` (the broker's record, `worker.cost_jobs`) keeps a
    submission whose cost job still waits in a long queue, or is running, from being re-sent.
    """
    limits = settings.limits
    cutoff = utcnow() - (
        older_than if older_than is not None else dt.timedelta(seconds=limits.stuck_after_seconds)
    )
    done: list[Requeued] = []
    gave_up: list[Submission] = []
    to_send: list[tuple[Sender, int, str]] = []
    with transaction(engine) as session:
        stuck = session.scalars(
            select(Submission)
            .where(Submission.state.in_(_ACTIVE), Submission.state_changed_at < cutoff)
            .order_by(Submission.id)
            .with_for_update(skip_locked=True)
        ).all()
        for sub in stuck:
            if cost_queue.is_waiting(sub):  # waits for its owner's share, released elsewhere
                continue
            if (
                cost_job_alive is not None
                and sub.state is SubmissionState.COUNTING
                and sub.job_id is not None
                and cost_job_alive(sub.id, sub.job_id)
            ):
                continue
            if sub.attempts >= limits.max_attempts:
                set_state(
                    sub,
                    SubmissionState.FAILED,
                    f"Gave up after {sub.attempts} attempts (our fault, not yours); an operator will re-run it.",
                    failed_stage=sub.state.value,
                    fault="service",
                )
                done.append(Requeued(sub.id, sub.state, None))
                gave_up.append(sub)
                continue
            sub.job_id = new_job_id()
            counting = sub.state is SubmissionState.COUNTING
            if counting:
                sub.attempts += 1
                set_state(sub, SubmissionState.COUNTING, "Re-sent to a cost worker after a delay")
            else:
                set_state(sub, SubmissionState.QUEUED, "Re-queued after a delay")
            to_send.append((send_count if counting else send_score, sub.id, sub.job_id))
            done.append(Requeued(sub.id, sub.state, sub.job_id))
    for sub in gave_up:
        metrics.record_final("failed_service", metrics.evaluation_seconds(sub))
    for send, submission_id, job_id in to_send:  # after commit, so workers see the new job id
        send(submission_id, job_id)
        log.info("re-enqueued submission %s (job %s)", submission_id, job_id)
    return done
