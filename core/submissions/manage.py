"""Changing submissions after the fact: edit, withdraw, hide, and finding what to re-run."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from core.errors import ConflictError, InvalidInputError, Problem
from core.models import (
    FileRole,
    Result,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionState,
    Task,
    Visibility,
)
from core.submissions.names import name_conflict
from core.submissions.schemas import SubmissionUpdate
from core.submissions.state import set_state
from core.text import normalise_name


def update_submission(session: Session, submission: Submission, changes: SubmissionUpdate) -> None:
    """Rename, re-describe, re-link or change the visibility of a submission (flushed)."""
    if changes.name is not None:
        name = normalise_name(changes.name)  # the schema has refused invisible characters
        if not name or len(name) > 200:
            raise InvalidInputError(
                "Invalid name", [Problem("name must be 1 to 200 characters", column="name")]
            )
        conflict = name_conflict(
            session, owner_id=submission.owner_id, name=name, exclude=submission.id
        )
        if conflict is not None:
            raise InvalidInputError("Invalid name", [Problem(conflict, column="name")])
        submission.name = name
    if changes.description is not None:
        submission.description = changes.description
    if changes.visibility is not None:
        submission.visibility = changes.visibility
    if changes.paper_url is not None:
        if not changes.paper_url and submission.kind is SubmissionKind.SELF_REPORTED:
            raise InvalidInputError(
                "Invalid paper link",
                [Problem("a self-reported entry needs its paper link", column="paper_url")],
            )
        submission.paper_url = str(changes.paper_url)[:500] or None
    if changes.code_url is not None:
        submission.code_url = str(changes.code_url)[:500] or None
    session.flush()


def baseline_of(session: Session, submission: Submission) -> list[str]:
    """Names of the tasks whose baseline this submission is."""
    return list(
        session.scalars(
            select(Task.name)
            .where(Task.baseline_submission_id == submission.id)
            .order_by(Task.name)
        )
    )


def withdraw_submission(session: Session, submission: Submission) -> list[str]:
    """Soft-delete: results gone, state `withdrawn`, the row kept; returns blob hashes to collect.

    The row stays so the quota still counts it (withdrawing must not buy more evaluations against
    the hidden labels) and so its history can be audited; its name is freed for reuse. The file
    rows stay as a record (names, sizes, hashes); the blobs themselves are removed after commit
    by `core.submissions.blobs.collect_blobs` unless another submission uses them.
    """
    tasks = baseline_of(session, submission)
    if tasks:
        raise ConflictError(
            f"Submission {submission.id} is the baseline of {', '.join(tasks)}; "
            "an administrator must choose another baseline first"
        )
    shas = list(
        session.scalars(
            select(SubmissionFile.sha256).where(SubmissionFile.submission_id == submission.id)
        )
    )
    session.execute(delete(Result).where(Result.submission_id == submission.id))
    old_name = submission.name
    submission.name = f"[withdrawn {uuid.uuid4().hex[:12]}] {old_name}"[:200]
    submission.visibility = Visibility.PRIVATE
    submission.job_id = None  # any stage still running for it finds itself superseded
    set_state(submission, SubmissionState.WITHDRAWN, f"Withdrawn by its owner (was {old_name!r})")
    session.flush()
    return shas


def set_hidden(submission: Submission, hidden: bool) -> None:
    """An administrator takes a submission off (or back onto) every public listing."""
    submission.hidden = hidden


def check_rerunnable(submission: Submission) -> None:
    if submission.kind is SubmissionKind.SELF_REPORTED:
        raise ConflictError(f"Submission {submission.id} is self-reported: nothing to re-run")
    if submission.state is SubmissionState.WITHDRAWN:
        raise ConflictError(f"Submission {submission.id} was withdrawn by its owner")


def submissions_of_task(session: Session, task: Task) -> list[Submission]:
    """Measured, not withdrawn submissions with a prediction file for `task` (to re-run)."""
    return list(
        session.scalars(
            select(Submission)
            .where(
                Submission.kind == SubmissionKind.MEASURED,
                Submission.state != SubmissionState.WITHDRAWN,
                exists(
                    select(SubmissionFile.id).where(
                        SubmissionFile.submission_id == Submission.id,
                        SubmissionFile.task_id == task.id,
                        SubmissionFile.role == FileRole.PREDICTIONS,
                    )
                ),
            )
            .order_by(Submission.id)
            .with_for_update()
        )
    )
