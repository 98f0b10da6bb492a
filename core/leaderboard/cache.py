"""In-process cache of computed leaderboards, valid while the database fingerprint is unchanged.

The rule:

1. A cached value is served only while the database fingerprint equals the one read just before
   the value was computed (so a value is never older than the fingerprint it is filed under),
   and for at most `max_age` seconds.
2. The fingerprint is one query: for each of `results`, `submissions` and `tasks`, the row
   count, max(updated_at) and the exact sum of updated_at. An insert or delete changes the
   count; an update changes the row's `updated_at` (`onupdate=utcnow` on all three models,
   which SQLAlchemy also applies to Core `update()` statements that do not set it), hence the
   sum, whatever the commit order of concurrent transactions (a max alone could miss an update
   stamped before another transaction's later-committed write). Baseline designation is a
   `tasks` update; visibility, hidden and state are `submissions` updates.
3. The fingerprint costs a scan of those tables, so each process reuses the last one it read
   for `fingerprint_window` seconds (default 1): a write committed by another process (a
   worker, another server process) shows within that window. Writes this process commits
   through a SQLAlchemy session drop the reused fingerprint at commit, and a session that has
   written but not committed always reads a fresh one, so one's own writes show at once.
   `fingerprint_window=0` reads the fingerprint on every call.

Several server processes each keep their own cache; all of them key on what the database says,
so none serves a value older than its window. `max_age` bounds the damage of a write that
bypasses `updated_at` (raw SQL).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    cast,
    event,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute, ORMExecuteState, Session, UOWTransaction

from core.models import Result, Submission, Task

T = TypeVar("T")
Fingerprint = tuple[Any, ...]

_TRACKED = (Result, Submission, Task)
_TRACKED_TABLES = frozenset(m.__tablename__ for m in _TRACKED)
_FP_KEY = "paretoboard.leaderboard_fingerprint"  # session.info: fingerprint of a computation
_DIRTY_KEY = "paretoboard.leaderboard_dirty"  # session.info: wrote tracked rows, not committed
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _timestamp_sum(column: InstrumentedAttribute[Any], dialect: str) -> ColumnElement[Any] | None:
    """An exact sum of the timestamps in `column`; None for a dialect without one here."""
    if dialect == "postgresql":
        # A sum of intervals: exact (integer microseconds) and cheap, unlike extract(epoch).
        return func.sum(column - cast(literal(_EPOCH), DateTime(timezone=True)))
    if dialect == "sqlite":
        # SQLAlchemy stores "YYYY-MM-DD HH:MM:SS.ffffff": whole seconds plus the 6 digits.
        micros = cast(func.strftime("%s", column), Integer) * 1_000_000 + cast(
            func.substr(column, 21, 6), Integer
        )
        return func.sum(micros)
    return None


def fingerprint(session: Session) -> Fingerprint:
    """Count, max(updated_at) and sum of updated_at of results, submissions and tasks."""
    dialect = session.get_bind().dialect.name
    parts = []
    for model in _TRACKED:
        column = model.updated_at
        cols: list[ColumnElement[Any]] = [func.count(), func.max(column)]
        total = _timestamp_sum(column, dialect)
        if total is not None:
            cols.append(total)
        parts.append(select(*cols).select_from(model).subquery())
    # One-row subqueries joined on TRUE: one round trip, one scan per table.
    joined = parts[0].join(parts[1], true()).join(parts[2], true())
    row = session.execute(select(*(c for p in parts for c in p.c)).select_from(joined)).one()
    return tuple(row)


def _database_key(session: Session) -> str:
    return session.get_bind().engine.url.render_as_string(hide_password=True)


class LeaderboardCache:
    """A small LRU of computed values, each filed under the fingerprint it was computed at."""

    def __init__(
        self, *, max_entries: int = 128, max_age: float = 300.0, fingerprint_window: float = 1.0
    ) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self.fingerprint_window = fingerprint_window
        self._entries: OrderedDict[Hashable, tuple[Fingerprint, float, Any]] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._fingerprints: dict[str, tuple[Fingerprint, float]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def current_fingerprint(self, session: Session) -> Fingerprint:
        """The database fingerprint, reused for `fingerprint_window` s when nothing local wrote."""
        outer = session.info.get(_FP_KEY)
        if outer is not None:  # inside a computation: the fingerprint read before it started
            return outer  # type: ignore[no-any-return]
        if session.info.get(_DIRTY_KEY) or self.fingerprint_window <= 0:
            return fingerprint(session)
        db = _database_key(session)
        now = time.monotonic()
        with self._lock:
            known = self._fingerprints.get(db)
        if known is not None and now - known[1] < self.fingerprint_window:
            return known[0]
        current = fingerprint(session)
        with self._lock:
            self._fingerprints[db] = (current, now)  # `now` is before the read: conservative
        return current

    def get(self, session: Session, key: Hashable, compute: Callable[[], T]) -> T:
        """The value for `key` if still fresh, else `compute()` (once, even under concurrency)."""
        full_key = (_database_key(session), key)
        current = self.current_fingerprint(session)
        value = self._fresh(full_key, current)
        if value is not None:
            return value[0]  # type: ignore[no-any-return]
        with self._lock:
            key_lock = self._key_locks.setdefault(full_key, threading.Lock())
        with key_lock:
            value = self._fresh(full_key, current)  # another thread may have just computed it
            if value is not None:
                return value[0]  # type: ignore[no-any-return]
            nested = _FP_KEY in session.info
            session.info[_FP_KEY] = current
            try:
                result = compute()
            finally:
                if not nested:
                    session.info.pop(_FP_KEY, None)
            with self._lock:
                self.misses += 1
                self._entries[full_key] = (current, time.monotonic(), result)
                self._entries.move_to_end(full_key)
                while len(self._entries) > self.max_entries:
                    old, _ = self._entries.popitem(last=False)
                    self._key_locks.pop(old, None)
            return result

    def _fresh(self, full_key: Hashable, current: Fingerprint) -> tuple[Any] | None:
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is None:
                return None
            fp, at, value = entry
            if fp != current or time.monotonic() - at > self.max_age:
                return None
            self.hits += 1
            self._entries.move_to_end(full_key)
            return (value,)

    def forget_fingerprints(self) -> None:
        """Make the next call read the fingerprint (after this process committed a write)."""
        with self._lock:
            self._fingerprints.clear()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._key_locks.clear()
            self._fingerprints.clear()
            self.hits = self.misses = 0


# The process-wide cache the service and the API routes share.
cache = LeaderboardCache()


# --- this process's own writes ----------------------------------------------------------------


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    for objects in (session.new, session.dirty, session.deleted):
        if any(isinstance(o, _TRACKED) for o in objects):
            session.info[_DIRTY_KEY] = True
            return


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _TRACKED_TABLES:
            state.session.info[_DIRTY_KEY] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(_DIRTY_KEY, False):
        cache.forget_fingerprints()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_DIRTY_KEY, None)
