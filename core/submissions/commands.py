"""Every write use case on submissions, as a command: submit, submit a paper entry, edit,
withdraw, hide, re-run, set or clear a task's baseline.

A command takes the session and plain values (the web layer has parsed and staged the files,
and looked the submission up with the caller's access), checks state and quotas, writes and
flushes. It never commits and never sends: queue messages go on the session's outbox and leave
only after the transaction owner committed (`core.db.outbox.unit_of_work`: the web request's
session dependency, or a CLI command).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.outbox import CollectBlobs, ScoreJob, outbox
from core.db.session import transaction
from core.errors import ConflictError
from core.leaderboard.service import clear_task_baseline, set_task_baseline
from core.models import Submission, Task, User
from core.storage import BlobStore
from core.submissions import manage
from core.submissions.blobs import blob_lock, collect_blobs
from core.submissions.papers import create_paper_entry
from core.submissions.quota import check_quota, check_self_reported_quota
from core.submissions.schemas import PaperCreate, SubmissionUpdate
from core.submissions.service import (
    CheckedSubmission,
    SubmissionDraft,
    UploadedFile,
    store_submission,
)
from core.submissions.state import new_job_id, queue_submission

log = logging.getLogger(__name__)


def _drop_blobs(engine: Engine, store: BlobStore) -> None:
    """Remove the blobs a failed upload stored, unless a committed submission uses them too
    (what cannot be removed now, the database being away, goes at the next clean-up)."""
    if not store.written:
        return
    try:
        with transaction(engine) as fresh:
            collect_blobs(fresh, store, store.written)
    except Exception as exc:
        log.warning("could not remove the blobs of a failed upload yet: %s", exc)


def submit(
    session: Session,
    *,
    store: BlobStore,
    owner: User,
    draft: SubmissionDraft,
    checked: CheckedSubmission,
    model: UploadedFile | None,
    tokenizer: UploadedFile | None,
    tasks: Sequence[Task],
    quota_limit: int,
) -> Submission:
    """Store a checked upload as a queued submission and record its score job.

    The blob store's shared lock is held from storing the blobs until the transaction ends, so
    a concurrent collection never removes a blob this upload deduplicated against; if the
    transaction is rolled back instead, the blobs it stored are removed."""
    # One submission at a time per user (PostgreSQL row lock), so two uploads cannot both take
    # the last slot of the quota.
    session.get(User, owner.id, with_for_update=True)
    check_quota(session, owner_id=owner.id, tasks=tasks, limit=quota_limit)
    box = outbox(session)
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    box.on_rollback(lambda: _drop_blobs(engine, store))
    box.hold(blob_lock(session, exclusive=False))
    try:
        submission = store_submission(
            session,
            store,
            owner_id=owner.id,
            draft=draft,
            checked=checked,
            model=model,
            tokenizer=tokenizer,
        )
        submission.job_id = new_job_id()
        session.flush()
    except IntegrityError as exc:  # a concurrent upload took the same name
        raise ConflictError(
            "The submission could not be stored, nothing was stored: you already have "
            "a submission with this name (names are unique per owner, ignoring case "
            "and spacing)"
        ) from exc
    box.send(ScoreJob(submission.id, submission.job_id))
    return submission


def submit_paper(
    session: Session, *, owner: User, entry: PaperCreate, quota_limit: int
) -> Submission:
    """A self-reported entry typed in from a paper (ELUE's Type 1 without files): done at once."""
    check_self_reported_quota(session, owner_id=owner.id, limit=quota_limit)
    return create_paper_entry(session, owner_id=owner.id, entry=entry)


def edit(session: Session, submission: Submission, changes: SubmissionUpdate) -> None:
    """The owner renames, re-describes, re-links, publishes or makes private (flushed)."""
    manage.update_submission(session, submission, changes)


def withdraw(session: Session, submission: Submission) -> None:
    """The owner withdraws: results removed, the row kept; its blobs are collected after the
    commit unless another submission uses them."""
    shas = manage.withdraw_submission(session, submission)
    outbox(session).send(CollectBlobs(tuple(shas)))


def set_hidden(session: Session, submission: Submission, hidden: bool) -> None:
    """An administrator takes a submission off (or back onto) every public listing."""
    manage.set_hidden(submission, hidden)
    session.flush()


def rerun(session: Session, submissions: Sequence[Submission]) -> list[int]:
    """Administrators: every submission back to the start of the pipeline with a fresh job
    (and the reconciler's full number of attempts); returns their ids."""
    box = outbox(session)
    for submission in submissions:
        manage.check_rerunnable(submission)
    for submission in submissions:
        submission.attempts = 0
        job_id = queue_submission(submission, "Re-queued by an administrator")
        box.send(ScoreJob(submission.id, job_id))
    session.flush()
    return [s.id for s in submissions]


def set_baseline(session: Session, *, task_name: str, submission_id: int) -> Task:
    """Administrators: make a submission's curve on a task that task's baseline (ELUE score 0)."""
    return set_task_baseline(session, task_name=task_name, submission_id=submission_id)


def clear_baseline(session: Session, *, task_name: str) -> Task:
    """Administrators: remove a task's baseline (its entries lose their ELUE scores)."""
    return clear_task_baseline(session, task_name=task_name)
