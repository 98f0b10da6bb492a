"""Queueing submissions from the web process: job ids on the rows, then a send after the commit.

The sending itself is `jobs.send` (the one sender, shared with the workers, the reconciler and
the CLI); its web-facing functions are re-exported here, where the handlers call them (and tests
replace them). A broker outage loses nothing: the submission stays queued in the database and
the reconciler (`worker/reconcile.py`) re-sends it once it looks stuck.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.models import Submission
from core.settings import Settings
from core.submissions.manage import check_rerunnable
from core.submissions.schemas import RerunReport
from core.submissions.state import new_job_id, queue_submission
from jobs.send import preflight, preflight_available, send_score

__all__ = ["assign_job", "preflight", "preflight_available", "requeue", "rerun", "send_score"]


def assign_job(submission: Submission) -> str:
    """Give a new, already queued submission its job id (commit, then `send_score`)."""
    submission.job_id = new_job_id()
    return submission.job_id


def requeue(submission: Submission, message: str) -> str:
    """Back to the start of the pipeline with a fresh job id (commit, then `send_score`)."""
    return queue_submission(submission, message)


def rerun(session: Session, settings: Settings, submissions: list[Submission]) -> RerunReport:
    """Re-queue submissions (administrators), commit, then send their jobs."""
    jobs: list[tuple[int, str]] = []
    for submission in submissions:
        check_rerunnable(submission)
        submission.attempts = 0  # a fresh run gets the reconciler's full number of attempts
        jobs.append((submission.id, requeue(submission, "Re-queued by an administrator")))
    session.commit()
    sent = [send_score(settings, sid, job) for sid, job in jobs]
    return RerunReport(requeued=[sid for sid, _ in jobs], queued=all(sent))
