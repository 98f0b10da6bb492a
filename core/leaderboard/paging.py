"""Slices of the cached boards: pages of entries, name search, a task page's points and fronts.

Each helper derives what it needs once per board version (through `core.leaderboard.cache`) so
a request for a page costs a slice, not a pass over the whole board.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from core.leaderboard.cache import cache
from core.leaderboard.search import NameIndex
from core.leaderboard.service import overall_leaderboard
from core.leaderboard.types import (
    OverallEntry,
    OverallLeaderboard,
    PointEntry,
    TaskLeaderboard,
    TaskSubmissionEntry,
)
from core.ranking.tracks import Track

T = TypeVar("T")
B = TypeVar("B")

DEFAULT_PAGE = 100  # entries per page of a JSON board when no limit is given
MAX_PAGE = 1000  # the largest page a client may ask for


class Derived:
    """Values derived from one cached leaderboard object (an index, a sort order, a split).

    The leaderboard cache hands out the same object until the board version changes, then a
    new one; a value here is reused only while it was computed from the very object asked
    about, so it is exactly as fresh as the leaderboard cache. Per key it keeps the values of
    the last two objects (the one being served and the one replacing it), a bounded number of
    keys. When a background refresh replaces a board (`LeaderboardCache.on_replaced`), every
    value derived from the old one is made from the new one before the new one is served.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: OrderedDict[Hashable, list[tuple[object, Any, Callable[[Any], Any]]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self.max_entries = max_entries
        cache.on_replaced(self.replaced)

    def get(self, board: B, key: Hashable, compute: Callable[[B], T]) -> T:
        """`compute(board)`, once per board object (`compute` must read only `board`)."""
        with self._lock:
            for held, value, _ in self._entries.get(key, ()):
                if held is board:
                    self._entries.move_to_end(key)
                    return value  # type: ignore[no-any-return]
        value = compute(board)
        self._put(key, board, value, compute)
        return value

    def _put(self, key: Hashable, board: object, value: Any, compute: Callable[[Any], Any]) -> None:
        with self._lock:
            kept = [e for e in self._entries.get(key, ()) if e[0] is not board][-1:]
            self._entries[key] = [*kept, (board, value, compute)]
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def replaced(self, old: object, new: object) -> None:
        """Make from `new` every value that was derived from `old`."""
        with self._lock:
            todo = [(k, fn) for k, held in self._entries.items() for b, _, fn in held if b is old]
        for key, compute in todo:
            self._put(key, new, compute(new), compute)


derived = Derived()


def search_entries(
    board: OverallLeaderboard, query: str, entries: tuple[OverallEntry, ...] | None = None
) -> tuple[OverallEntry, ...]:
    """The board's entries whose name matches `query` (`core.leaderboard.search`), in rank
    order; every entry for an empty query."""
    if not query.strip():
        return board.entries
    index = derived.get(board, ("name-index", board.track), _name_index)
    return tuple(board.entries[i] for i in index.search(query))


def _name_index(board: OverallLeaderboard) -> NameIndex:
    return NameIndex([e.name for e in board.entries])


def search_overall(session: Session, track: Track | None, query: str) -> tuple[OverallEntry, ...]:
    """`search_entries` on the overall board or a track."""
    return search_entries(overall_leaderboard(session, track), query)


@dataclass(frozen=True, slots=True)
class TaskPage:
    total: int  # submissions on the board
    submissions: tuple[TaskSubmissionEntry, ...]
    points: tuple[PointEntry, ...]  # the page's submissions' points
    front_points: tuple[PointEntry, ...]  # every point on either front, on the page or not


def _point_starts(board: TaskLeaderboard) -> list[int]:
    """Index in `board.points` of each ranked submission's first point (points follow rank)."""
    return [0, *itertools.accumulate(s.points for s in board.submissions)]


def _front_points(board: TaskLeaderboard) -> tuple[PointEntry, ...]:
    on_front = set(board.flops_front) | set(board.params_front)
    return tuple(p for p in board.points if p.result_id in on_front)


def task_page(board: TaskLeaderboard, offset: int, limit: int | None) -> TaskPage:
    """Ranked submissions `offset` to `offset + limit` of a task board and their points."""
    key = board.task.name
    starts = derived.get(board, ("task-point-starts", key), _point_starts)
    fronts = derived.get(board, ("task-front-points", key), _front_points)
    total = len(board.submissions)
    first = min(offset, total)
    last = total if limit is None else min(total, first + limit)
    return TaskPage(
        total=total,
        submissions=board.submissions[first:last],
        points=board.points[starts[first] : starts[last]],
        front_points=fronts,
    )
