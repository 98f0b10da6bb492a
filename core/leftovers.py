"""What a killed upload leaves behind, and how it is cleaned (at web start, `paretoboard
reconcile`).

Staging folders (`<data_dir>/staging/upload-*`): the request that made one holds an exclusive
`flock` on the folder for as long as it exists, so a folder whose lock can be taken belongs to a
process that has died (the kernel drops a dead process's locks) and is removed at once, whatever
its age. A folder is marked `.owned` once its lock is held; one without the mark is removed
only when older than `STAGING_UNMARKED_SECONDS` (a request between `mkdtemp` and its lock).

Orphan blobs (in the blob store, local or S3: `core.storage`): a blob that no live submission
references, older than the grace period, is removed under the installation's exclusive blob lock
(uploads hold it shared from storing their blobs to their commit, `core.submissions.blobs`;
on PostgreSQL an advisory lock, so on every host). Half-written blobs (a local store's
`.incoming-*`, an object store's incomplete multipart uploads: a process killed while storing)
past the grace period go too.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from core.db.session import transaction
from core.storage import BlobStore, LocalBlobStore

log = logging.getLogger(__name__)
STAGING_PREFIX = "upload-"
OWNED_MARK = ".owned"
STAGING_UNMARKED_SECONDS = 60.0
_BATCH = 500


@contextmanager
def staging_folder(root: Path) -> Iterator[Path]:
    """A private folder under `root`, locked while the block runs, removed when it ends."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Waits out a cleaner looking at it (which leaves an unmarked fresh folder alone).
        fcntl.flock(fd, fcntl.LOCK_EX)
        (folder / OWNED_MARK).touch()
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


@dataclass
class Cleaned:
    """What a clean-up removed (paths relative to the data folder) and the bytes freed."""

    staging: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    bytes_freed: int = 0

    def __bool__(self) -> bool:
        return bool(self.staging or self.blobs)

    def summary(self) -> str:
        return (
            f"{len(self.staging)} staging folder(s), {len(self.blobs)} orphan blob(s), "
            f"{self.bytes_freed:,} bytes"
        )


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def clean_staging(root: Path, *, now: float | None = None, report: bool = False) -> Cleaned:
    """Remove the staging folders of requests that are no longer running (see the module doc)."""
    cleaned = Cleaned()
    if not root.is_dir():
        return cleaned
    now = time.time() if now is None else now
    for entry in sorted(root.iterdir()):
        try:
            if not entry.is_dir() or entry.is_symlink():
                if now - entry.lstat().st_mtime > STAGING_UNMARKED_SECONDS:
                    cleaned.bytes_freed += entry.lstat().st_size
                    entry.unlink()
                    cleaned.staging.append(entry.name)
                continue
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue  # its request ended meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running request holds it
            marked = (entry / OWNED_MARK).exists()
            if marked or now - entry.stat().st_mtime > STAGING_UNMARKED_SECONDS:
                size = _size(entry)
                shutil.rmtree(entry, ignore_errors=True)
                if not entry.exists():
                    cleaned.staging.append(entry.name)
                    cleaned.bytes_freed += size
        except FileNotFoundError:
            continue
        finally:
            os.close(fd)
    if report and cleaned:
        log.info("removed leftovers: %s", cleaned.summary())
    return cleaned


def clean_orphan_blobs(
    engine: Engine,
    store: BlobStore,
    *,
    grace_seconds: float,
    now: float | None = None,
    report: bool = False,
) -> Cleaned:
    """Remove blobs no live submission references, and half-written blobs, older than the grace
    period."""
    from core.submissions.blobs import blob_lock, referenced

    cleaned = Cleaned()
    now = time.time() if now is None else now

    def old(modified: float | None) -> bool:
        return modified is not None and now - modified > grace_seconds

    for partial in list(store.list_partials()):
        if old(partial.modified):
            with contextlib.suppress(FileNotFoundError):
                store.delete_partial(partial.name)
                cleaned.blobs.append(partial.name)
                cleaned.bytes_freed += partial.size
    candidates = [b for b in store.list_blobs() if old(b.modified)]
    for start in range(0, len(candidates), _BATCH):
        batch = {b.name: b for b in candidates[start : start + _BATCH]}
        with transaction(engine) as session, blob_lock(session, exclusive=True):
            live = referenced(session, batch)
            for sha, blob in batch.items():
                # re-used by an upload since it was listed: stored again, so newer
                if sha in live or not old(store.modified(sha)):
                    continue
                if store.delete(sha):
                    cleaned.blobs.append(sha)
                    cleaned.bytes_freed += blob.size
                    store.drop_derived(sha)
    if report and cleaned:
        log.info("removed leftovers: %s", cleaned.summary())
    return cleaned


def clean_leftovers(
    data_dir: Path, engine: Engine, store: BlobStore, *, grace_seconds: float
) -> Cleaned:
    """Staging folders of dead requests, then orphan blobs (`paretoboard reconcile`)."""
    cleaned = clean_staging(data_dir / "staging")
    blobs = clean_orphan_blobs(engine, store, grace_seconds=grace_seconds)
    cleaned.blobs = blobs.blobs
    cleaned.bytes_freed += blobs.bytes_freed
    local = LocalBlobStore(data_dir / "uploads")
    if not isinstance(store, LocalBlobStore) and local.root.is_dir():
        # with an object store, the folder holds only the weights copied for cost workers
        copies = clean_orphan_blobs(engine, local, grace_seconds=grace_seconds)
        cleaned.blobs += copies.blobs
        cleaned.bytes_freed += copies.bytes_freed
    if cleaned:
        log.info("removed leftovers: %s", cleaned.summary())
    return cleaned
