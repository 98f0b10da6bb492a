"""Blob lifetime: a blob may be shared by several submissions (same sha256), so it is removed only
when no live submission references it.

A file lock under the store orders the two writers: making a submission holds it shared from
storing its blobs until its rows are committed; collecting holds it exclusive while it checks the
references and unlinks. So a blob that a concurrent upload has just deduplicated against is never
removed under it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Submission, SubmissionFile, SubmissionState
from core.storage import BlobStore

LOCK_NAME = ".blobs.lock"


@contextmanager
def blob_lock(store: BlobStore, *, exclusive: bool) -> Iterator[None]:
    """Hold the store's lock: shared while adding blobs, exclusive while removing them."""
    store.root.mkdir(parents=True, exist_ok=True)
    with (store.root / LOCK_NAME).open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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
    """Remove the blobs among `shas` that nothing live references (call after the commit)."""
    removed: list[str] = []
    with blob_lock(store, exclusive=True):
        candidates = set(shas)
        for sha in sorted(candidates - referenced(session, candidates)):
            path = store.path(sha)
            if path.is_file():
                path.unlink()
                removed.append(sha)
            store.drop_derived(sha)
    return removed
