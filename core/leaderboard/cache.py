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
   what it sees and shared with no one; after its commit the bumped version applies to all,
   and this process computes every board afresh at its next read (never serves it stale).
4. Stale while revalidating, only for values too slow to make inline, and bounded: when
   another process committed the change (a worker finishing a submission, another web
   process) and the value took `sync_budget` seconds or more to make last time (its own time
   or that of a value it read, e.g. a whole board under a rendered body), the value of the
   previous version is served while one background thread recomputes it in a session of its
   own; the new value replaces it when done (values derived from it, `on_replaced`, are made
   first). A value is served stale for at most `max_stale` seconds after the first request
   that found it stale; past that, requests wait for the recomputation. Smaller boards are
   recomputed inline, as in rule 2. With `max_stale` = 0 no stale value is ever served.
5. `max_age` bounds what a write made outside a Session (raw SQL) can leave unnoticed.

Compute functions take the session to read with (the request's, or the background one's), so
they must not capture the request's session or its ORM objects.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.leaderboard.source import sources
from core.models.board_version import LOCAL_KEY, board_version, on_committed_bump

T = TypeVar("T")
Version = tuple[Any, ...]
Replaced = Callable[[object, object], None]

log = logging.getLogger(__name__)

_IN_COMPUTE = "paretoboard.board_version.computing"  # session.info: key of a computation
_BACKGROUND = "paretoboard.board_version.background"  # session.info: a background refresh
_THREAD_PREFIX = "board-refresh"
_frames = threading.local()  # per thread: a list of costs per computation under way


_gc_lock = threading.Lock()
_gc_holders = 0  # computations under way that paused the cyclic collector
_gc_full_at = time.monotonic()  # the last collection of the whole heap (frozen part included)
GC_FULL_EVERY = 3600.0  # seconds between collections of the whole heap


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a value is computed, and keep what it made
    out of later collections.

    A board allocates up to millions of objects. With the collector running, each allocation
    threshold crossed makes it traverse the long-lived heap (the source rows, the cached
    boards): at 20,000 submissions that was half of an incremental recompute. Merely pausing
    it moves the cost to the end: the first allocation after it resumes traverses every object
    the board made (2.5 s at 100,000 submissions, holding the GIL, so every request of the
    process waits). So the first computation to start collects what is not frozen (cheap: the
    objects made since the last computation) and the last one to end freezes the heap
    (`gc.freeze`: the objects move to the permanent generation in O(1)), then resumes the
    collector, which from then on only traverses what requests make. What a board builds holds
    no reference cycles, so reference counting frees it when it is replaced, frozen or not.
    Cyclic garbage made by other threads during the computation is frozen with it; once every
    `GC_FULL_EVERY` seconds the last computation to end unfreezes and collects the whole heap
    (one pause of that size an hour instead of one per write), bounding that leak."""
    global _gc_holders, _gc_full_at
    with _gc_lock:
        if _gc_holders == 0 and not gc.isenabled():  # paused by someone else: leave it
            paused = False
        else:
            paused = True
            if _gc_holders == 0:
                gc.collect()  # what requests left since the last freeze
                gc.disable()
            _gc_holders += 1
    try:
        yield
    finally:
        if paused:
            with _gc_lock:
                _gc_holders -= 1
                if _gc_holders == 0:
                    if time.monotonic() - _gc_full_at > GC_FULL_EVERY:
                        gc.unfreeze()
                        gc.collect()
                        _gc_full_at = time.monotonic()
                    gc.freeze()
                    gc.enable()


def _database_key(session: Session) -> str:
    return session.get_bind().engine.url.render_as_string(hide_password=True)


@dataclass(slots=True)
class _Entry:
    version: Version
    at: float  # when computed (monotonic)
    epoch: int  # the cache's writer epoch when computed
    value: Any
    cost: float  # seconds it took to make, with what it read through the cache
    stale_since: float | None = None  # the first read that found it stale


class LeaderboardCache:
    """A small LRU of computed values, each filed under the board version it was computed at."""

    def __init__(
        self,
        *,
        max_entries: int = 128,
        max_age: float = 300.0,
        version_window: float = 0.0,
        max_stale: float = 30.0,
        sync_budget: float = 0.1,
    ) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self.version_window = version_window
        self.max_stale = max_stale
        self.sync_budget = sync_budget
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._versions: dict[str, tuple[Version, float]] = {}
        self._lock = threading.Lock()
        self._epoch = 0  # +1 each time this process commits a bump
        self._refreshing: dict[Hashable, Future[None]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._replaced: list[Replaced] = []
        self._dependents: list[LeaderboardCache] = []
        self.hits = 0
        self.misses = 0
        self.stale_hits = 0

    def on_replaced(self, callback: Replaced) -> None:
        """Call `callback(old, new)` in the background thread when a refresh replaces `old`
        (before `new` is served), so that values derived from `old` can be made from `new`."""
        self._replaced.append(callback)

    def add_dependent(self, other: LeaderboardCache) -> None:
        """Clear `other` too whenever this cache is cleared (values made from this one's)."""
        self._dependents.append(other)

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

    def get(self, session: Session, key: Hashable, compute: Callable[[Session], T]) -> T:
        """The value for `key` if fresh, else `compute(session)` (once, even under
        concurrency), or the previous value while it is recomputed (rule 4)."""
        current = self.current_version(session)
        full_key: Hashable = (_database_key(session), key)
        local = len(current) > 2
        if local:  # uncommitted changes: a slot of their own, not the shared one
            full_key = (full_key, current[2:])
        may_be_stale = not local and self._can_refresh(session)
        found = self._lookup(full_key, current, may_be_stale=may_be_stale)
        if found is not None:
            value, fresh = found
            if not fresh:
                self._refresh(session, key, full_key, compute)
            return value  # type: ignore[no-any-return]
        with self._lock:
            key_lock = self._key_locks.setdefault(full_key, threading.Lock())
        with key_lock:
            found = self._lookup(full_key, current, may_be_stale=False)
            if found is not None:  # another thread may have just computed it
                return found[0]  # type: ignore[no-any-return]
            with self._lock:
                epoch = self._epoch
            result, cost = self._compute(session, current, compute)
            background = _BACKGROUND in session.info
            self._store(full_key, current, epoch, result, cost, background=background)
            return result

    def _can_refresh(self, session: Session) -> bool:
        """Whether a stale value may be served to this session (rule 4)."""
        if self.max_stale <= 0 or _IN_COMPUTE in session.info:
            return False
        # Only sessions on an engine: a session bound to one connection (tests, a transaction
        # of a caller's own) may see data that no other session could.
        return isinstance(session.get_bind(), Engine)

    def _lookup(
        self, full_key: Hashable, current: Version, *, may_be_stale: bool
    ) -> tuple[Any, bool] | None:
        """(value, fresh) for a fresh entry, or a stale one that may be served; else None."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is None:
                return None
            if entry.version == current and now - entry.at <= self.max_age:
                self.hits += 1
                self._entries.move_to_end(full_key)
                self._note_cost(entry.cost)
                return entry.value, True
            if not may_be_stale or entry.cost < self.sync_budget:
                return None
            if entry.epoch != self._epoch:
                return None  # this process wrote since: its next read is fresh (rule 3)
            if entry.stale_since is None:
                entry.stale_since = now
            if now - entry.stale_since > self.max_stale:
                return None
            self.stale_hits += 1
            return entry.value, False

    def _note_cost(self, cost: float) -> None:
        """Inside a computation, count what a value it read cost (rule 4)."""
        frame = _frames.stack[-1] if getattr(_frames, "stack", None) else None
        if frame is not None:
            frame.append(cost)

    def _compute(
        self, session: Session, version: Version, compute: Callable[[Session], T]
    ) -> tuple[T, float]:
        nested = _IN_COMPUTE in session.info
        session.info[_IN_COMPUTE] = version
        if getattr(_frames, "stack", None) is None:
            _frames.stack = []
        frame: list[float] = []
        _frames.stack.append(frame)
        start = time.perf_counter()
        try:
            with gc_paused():
                value = compute(session)
        finally:
            _frames.stack.pop()
            if not nested:
                session.info.pop(_IN_COMPUTE, None)
        cost = max(time.perf_counter() - start, *frame) if frame else time.perf_counter() - start
        self._note_cost(cost)
        return value, cost

    def _store(
        self,
        full_key: Hashable,
        version: Version,
        epoch: int,
        value: Any,
        cost: float,
        *,
        background: bool,
    ) -> None:
        with self._lock:
            old = self._entries.get(full_key)
        if background and old is not None and old.value is not value:
            # Derived values for the new one, made before anyone is served it.
            for callback in self._replaced:
                try:
                    callback(old.value, value)
                except Exception:  # a derived value is only a head start: log it
                    log.exception("refreshing values derived from %r failed", full_key)
        with self._lock:
            self.misses += 1
            self._entries[full_key] = _Entry(version, time.monotonic(), epoch, value, cost)
            self._entries.move_to_end(full_key)
            while len(self._entries) > self.max_entries:
                gone, _ = self._entries.popitem(last=False)
                self._key_locks.pop(gone, None)

    def _refresh(
        self, session: Session, key: Hashable, full_key: Hashable, compute: Callable[[Session], T]
    ) -> None:
        """Recompute `key` in the background thread, once at a time per key."""
        engine = session.get_bind().engine
        with self._lock:
            if full_key in self._refreshing:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=_THREAD_PREFIX)
            future = self._executor.submit(self._run_refresh, engine, full_key, compute)
            self._refreshing[full_key] = future

    def _run_refresh(
        self, engine: Engine, full_key: Hashable, compute: Callable[[Session], Any]
    ) -> None:
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                session.info[_BACKGROUND] = True
                version = self.current_version(session)  # committed: no local key here
                with self._lock:
                    epoch = self._epoch
                    key_lock = self._key_locks.setdefault(full_key, threading.Lock())
                with key_lock:
                    found = self._lookup(full_key, version, may_be_stale=False)
                    if found is None:
                        value, cost = self._compute(session, version, compute)
                        self._store(full_key, version, epoch, value, cost, background=True)
        except Exception:  # the next stale read tries again; past max_stale a request does
            log.exception("background refresh of %r failed", full_key)
        finally:
            with self._lock:
                self._refreshing.pop(full_key, None)

    @property
    def in_flight(self) -> int:
        """Background refreshes queued or running."""
        with self._lock:
            return len(self._refreshing)

    def wait_refreshed(self, timeout: float = 60.0) -> bool:
        """Wait for the background refreshes under way (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._refreshing.values())
            if not pending:
                return True
            for future in pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    future.result(timeout=left)
                except TimeoutError:
                    return False

    def writer_committed(self) -> None:
        """This process committed a bump: its next reads are fresh (rule 3)."""
        with self._lock:
            self._versions.clear()
            self._epoch += 1

    def forget_versions(self) -> None:
        """Make the next call read the version (after this process committed a bump)."""
        with self._lock:
            self._versions.clear()

    def clear(self) -> None:
        self.wait_refreshed()
        with self._lock:
            self._entries.clear()
            self._key_locks.clear()
            self._versions.clear()
            self.hits = self.misses = self.stale_hits = 0
        for other in self._dependents:
            other.clear()
        sources.clear()  # the rows the values were computed from


# The process-wide cache the service and the API routes share.
cache = LeaderboardCache()


on_committed_bump(cache.writer_committed)

# Rendered pages (`web.pages`, anonymous viewers): an LRU of its own under the same board
# version, so that many distinct queries (searches, pages) never push the boards out of `cache`.
# About 150 KiB a page: 64 pages are about 10 MB per process.
pages = LeaderboardCache(max_entries=64)
cache.add_dependent(pages)
on_committed_bump(pages.writer_committed)

# Listed submissions' pages and API records for anonymous viewers (`web.public_submissions`),
# also keyed by the submission's own row and results, in an LRU of their own so that many
# distinct submissions never push the boards' pages out of `pages`. 10-40 KiB a page or record
# (the bench's), so at most about 10 MB per process.
submission_pages = LeaderboardCache(max_entries=256)
cache.add_dependent(submission_pages)
on_committed_bump(submission_pages.writer_committed)
