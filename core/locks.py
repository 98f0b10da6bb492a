"""Locks between processes, wherever they run: PostgreSQL advisory locks when the database is
PostgreSQL (web and workers on any number of hosts), a file lock beside the SQLite database
otherwise (embedded: one host).

Two kinds: `transaction_lock` waits and is held with a session's transaction (shared or
exclusive: the blob store's writers, `core.submissions.blobs`), `try_lock` takes a lock without
waiting for the length of a block, on a connection of its own (one `paretoboard seed` at a
time). The sandbox's per-host uid allocation (`worker/sandbox/identity.py`) stays a file lock:
uids are a resource of the host, not of the installation.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Engine, func, select
from sqlalchemy.orm import Session


class LockName(enum.StrEnum):
    BLOBS = "blobs"  # shared while an upload stores blobs until its commit; exclusive to remove
    SEED = "seed"  # one `paretoboard seed` at a time


def advisory_key(name: LockName) -> int:
    """The lock's signed 64-bit PostgreSQL advisory key, stable across processes."""
    digest = hashlib.sha256(f"paretoboard:{name.value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file(url: URL, name: LockName) -> Path:
    """The local lock's file: beside the SQLite database, else in the temporary folder."""
    db = url.database
    if (
        url.get_backend_name() == "sqlite"
        and db
        and db != ":memory:"
        and not db.startswith("file:")
    ):
        return Path(db).resolve().parent / f"{name.value}.lock"
    tag = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"paretoboard-{tag}-{name.value}.lock"


@contextmanager
def _file_lock(path: Path, *, shared: bool, wait: bool) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as fh:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fh.fileno(), mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextmanager
def transaction_lock(session: Session, name: LockName, *, shared: bool = False) -> Iterator[None]:
    """Wait for the lock and hold it with the session's transaction.

    On PostgreSQL (`pg_advisory_xact_lock[_shared]`) it is released when the transaction ends,
    so a caller commits inside the block or right after it; on SQLite, when the block ends. An
    exception leaving the block rolls the session back, so the lock never outlives the block
    on an error path (a clean-up after it may want the lock exclusively).
    """
    bind = session.get_bind()
    try:
        if bind.dialect.name == "postgresql":
            fn = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
            session.execute(select(fn(advisory_key(name))))
            yield
        else:
            with _file_lock(lock_file(bind.engine.url, name), shared=shared, wait=True):
                yield
    except BaseException:
        session.rollback()
        raise


@contextmanager
def try_lock(engine: Engine, name: LockName) -> Iterator[bool]:
    """Take the lock without waiting and hold it while the block runs; yields whether it was
    taken (on PostgreSQL `pg_try_advisory_lock` on a connection kept for the block)."""
    if engine.dialect.name != "postgresql":
        with _file_lock(lock_file(engine.url, name), shared=False, wait=False) as taken:
            yield taken
        return
    key = advisory_key(name)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        taken = bool(conn.scalar(select(func.pg_try_advisory_lock(key))))
        try:
            yield taken
        finally:
            if taken:
                conn.scalar(select(func.pg_advisory_unlock(key)))
