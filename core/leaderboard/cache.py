"""In-process cache of computed leaderboards, valid while the database's board version is unchanged.

The rule:

1. The `board_version` row (`core.models.board_version`) is bumped in the same transaction as
   every change that can alter a public board, by Session events that no caller has to
   remember; a private submission's progress does not bump it. Reading it is a primary-key
   lookup, whatever the size of the tables.
2. A cached value is filed under the version read just before it was computed, so it is never
   older than its key (under PostgreSQL's read committed it may be newer, which is harmless:
   the next read of the version recomputes). Each call reads the version row again, so a
   commit from any process (a worker, another server process) shows at the next request;
   `version_window` > 0 reuses a read for that many seconds instead.
3. One's own writes show at once: a session that has flushed a relevant change but not yet
   committed reads under a key of its own (a token renewed at every such flush), computed from
   what it sees and shared with no one; after its commit the bumped version applies to all.
4. `max_age` bounds what a write made outside a Session (raw SQL) can leave stale.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from core.models.board_version import LOCAL_KEY, board_version, on_committed_bump

T = TypeVar("T")
Version = tuple[Any, ...]

_IN_COMPUTE = "paretoboard.board_version.computing"  # session.info: key of a computation


def _database_key(session: Session) -> str:
    return session.get_bind().engine.url.render_as_string(hide_password=True)


class LeaderboardCache:
    """A small LRU of computed values, each filed under the board version it was computed at."""

    def __init__(
        self, *, max_entries: int = 128, max_age: float = 300.0, version_window: float = 0.0
    ) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self.version_window = version_window
        self._entries: OrderedDict[Hashable, tuple[Version, float, Any]] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._versions: dict[str, tuple[Version, float]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def current_version(self, session: Session) -> Version:
        """The key a value computed now is filed under (see the module doc)."""
        outer = session.info.get(_IN_COMPUTE)
        if outer is not None:  # inside a computation: the version read before it started
            return outer  # type: ignore[no-any-return]
        db = _database_key(session)
        now = time.monotonic()
        version: Version | None = None
        if self.version_window > 0 and LOCAL_KEY not in session.info:
            with self._lock:
                known = self._versions.get(db)
            if known is not None and now - known[1] < self.version_window:
                version = known[0]
        if version is None:
            version = board_version(session)  # autoflushes: may mark the session dirty
            if self.version_window > 0:
                with self._lock:
                    self._versions[db] = (version, now)  # `now` is before the read
        local = session.info.get(LOCAL_KEY)
        return version if local is None else (*version, "local", local)

    def get(self, session: Session, key: Hashable, compute: Callable[[], T]) -> T:
        """The value for `key` if still fresh, else `compute()` (once, even under concurrency)."""
        current = self.current_version(session)
        full_key: Hashable = (_database_key(session), key)
        if len(current) > 2:  # uncommitted changes: a slot of their own, not the shared one
            full_key = (full_key, current[2:])
        value = self._fresh(full_key, current)
        if value is not None:
            return value[0]  # type: ignore[no-any-return]
        with self._lock:
            key_lock = self._key_locks.setdefault(full_key, threading.Lock())
        with key_lock:
            value = self._fresh(full_key, current)  # another thread may have just computed it
            if value is not None:
                return value[0]  # type: ignore[no-any-return]
            nested = _IN_COMPUTE in session.info
            session.info[_IN_COMPUTE] = current
            try:
                result = compute()
            finally:
                if not nested:
                    session.info.pop(_IN_COMPUTE, None)
            with self._lock:
                self.misses += 1
                self._entries[full_key] = (current, time.monotonic(), result)
                self._entries.move_to_end(full_key)
                while len(self._entries) > self.max_entries:
                    old, _ = self._entries.popitem(last=False)
                    self._key_locks.pop(old, None)
            return result

    def _fresh(self, full_key: Hashable, current: Version) -> tuple[Any] | None:
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is None:
                return None
            version, at, value = entry
            if version != current or time.monotonic() - at > self.max_age:
                return None
            self.hits += 1
            self._entries.move_to_end(full_key)
            return (value,)

    def forget_versions(self) -> None:
        """Make the next call read the version (after this process committed a bump)."""
        with self._lock:
            self._versions.clear()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._key_locks.clear()
            self._versions.clear()
            self.hits = self.misses = 0


# The process-wide cache the service and the API routes share.
cache = LeaderboardCache()


on_committed_bump(cache.forget_versions)
