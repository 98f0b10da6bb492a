"""Blob lifetime: a blob may be shared by several submissions (same sha256), so it is removed only
when no live submission references it.

The installation-wide blob lock (`core.locks`: a PostgreSQL advisory lock, or a file lock beside
the SQLite database) orders the two writers: making a submission holds it shared from storing its
blobs until its rows are committed; collecting holds it exclusive while it checks the references
and removes. So a blob that a concurrent upload has just deduplicated against is never removed
under it, whichever host either runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.locks import LockName, transaction_lock
from core.models import Submission, SubmissionFile, SubmissionState
from core.storage import BlobStore


@contextmanager
def blob_lock(session: Session, *, exclusive: bool) -> Iterator[None]:
    """Hold the blob lock with the session's transaction: shared while adding blobs (commit
    inside the block), exclusive while removing them."""
    with transaction_lock(session, LockName.BLOBS, shared=not exclusive):
        yield


def referenced(session: Session, shas: Iterable[str]) -> set[str]:
    """The hashes among `shas` that a submission which is not withdrawn still uses."""
    wanted = sorted(set(shas))
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(SubmissionFile.sha256)
            .join(Submission, Submission.id == SubmissionFile.submission_id)
            .where(SubmissionFile.sha256.in_(wanted), Submission.state != SubmissionState.WITHDRAWN)
        )
    )


def collect_blobs(session: Session, store: BlobStore, shas: Iterable[str]) -> list[str]:
    """Remove the blobs among `shas` that nothing live references (call after the commit, in a
    transaction of its own: the lock is held until it ends)."""
    removed: list[str] = []
    with blob_lock(session, exclusive=True):
        candidates = set(shas)
        for sha in sorted(candidates - referenced(session, candidates)):
            if store.delete(sha):
                removed.append(sha)
            store.drop_derived(sha)
    return removed
