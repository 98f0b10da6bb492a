"""The overall board's query: filters (name search, parameter range) and sort orders."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from core.leaderboard import (
    OverallEntry,
    OverallLeaderboard,
)
from core.leaderboard.paging import search_entries
from core.ranking.score import DEFAULT_COVERAGE, Coverage
from core.ranking.tracks import Track
from web.views.leaderboard.common import Direction, _derived


@dataclass(frozen=True, slots=True)
class HomeQuery:
    track: Track | None = None
    q: str = ""
    min_params: float | None = None  # millions
    max_params: float | None = None
    sort: str = "rank"
    dir: Direction = "asc"
    page: int = 1
    verified: bool = False  # verified entries only (docs/verification.md)
    # Self-reported entries ranked with the measured ones (by default they are kept apart)
    self_reported: bool = False
    coverage: Coverage = DEFAULT_COVERAGE  # "all": entries covering every task; "any": all

    def url(self, **changes: Any) -> str:
        values: dict[str, Any] = {
            "track": self.track.value if self.track else None,
            "verified": "1" if self.verified else None,
            "self_reported": "1" if self.self_reported else None,
            "coverage": None if self.coverage == DEFAULT_COVERAGE else self.coverage,
            "q": self.q,
            "min_params": _bound_text(self.min_params),
            "max_params": _bound_text(self.max_params),
            "sort": None if self.sort == "rank" else self.sort,
            "dir": None if self.dir == "asc" else self.dir,
            "page": self.page if self.page > 1 else None,
        }
        values.update(changes)
        if values["page"] == 1:
            values["page"] = None
        if values.get("coverage") == DEFAULT_COVERAGE:
            values["coverage"] = None
        for flag in ("verified", "self_reported"):
            if values.get(flag) in (False, "0"):
                values[flag] = None
            elif values.get(flag) is True:
                values[flag] = "1"
        query = {k: v for k, v in values.items() if v is not None and v != ""}
        return "/?" + urlencode(query) if query else "/"


def _bound_text(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:g}"


def _entry_value(entry: OverallEntry, sort: str, track: bool) -> Any:
    if sort == "name":
        return entry.name.casefold()
    if sort == "params":
        return entry.params
    if sort == "score":
        return entry.average_performance if track else entry.score
    if sort == "tasks":
        return len(entry.best_performance) if track else entry.tasks_covered
    if sort.startswith("task:"):
        name = sort[5:]
        return (entry.best_performance if track else entry.task_scores).get(name)
    return entry.rank


def _sorted(
    entries: Sequence[OverallEntry], sort: str, direction: Direction, track: bool
) -> list[OverallEntry]:
    if sort == "rank":
        out = list(entries)
        return out[::-1] if direction == "desc" else out
    with_value = [(v, e) for e in entries if (v := _entry_value(e, sort, track)) is not None]
    without = [e for e in entries if _entry_value(e, sort, track) is None]
    with_value.sort(key=lambda item: item[0], reverse=direction == "desc")
    return [e for _, e in with_value] + without  # no value: always last


def _filtered(
    board: OverallLeaderboard, ordered: Sequence[OverallEntry], query: HomeQuery
) -> Sequence[OverallEntry]:
    """The entries matching the name search and the parameter range, in `ordered`'s order.

    Neither scans the board: the search reads the name index (`core.leaderboard.search`), the
    range a list sorted by parameters (both built once per board)."""
    low = None if query.min_params is None else query.min_params * 1e6
    high = None if query.max_params is None else query.max_params * 1e6
    searching = bool(query.q.strip())
    if not searching and low is None and high is None:
        return ordered
    if searching:
        found: Sequence[OverallEntry] = search_entries(board, query.q)
        if low is not None or high is not None:
            found = [
                e
                for e in found
                if e.params is not None
                and (low is None or e.params >= low)
                and (high is None or e.params <= high)
            ]
    else:
        by_params = _derived.get(board, ("home-by-params", board.track), _by_params)
        keys = _derived.get(
            board,
            ("home-params-keys", board.track),
            lambda b: [
                _params(e) for e in _derived.get(b, ("home-by-params", b.track), _by_params)
            ],
        )
        start = 0 if low is None else bisect_left(keys, low)
        end = len(keys) if high is None else bisect_right(keys, high)
        found = by_params[start:end]
    if searching and query.sort == "rank" and query.dir == "asc":
        return found  # already in rank order
    sort, direction = query.sort, query.dir
    position = _derived.get(
        board,
        ("home-position", board.track, sort, direction),
        lambda b: {e.submission_id: i for i, e in enumerate(_ordered(b, sort, direction))},
    )
    return sorted(found, key=lambda e: position[e.submission_id])


def _by_params(board: OverallLeaderboard) -> list[OverallEntry]:
    return sorted((e for e in board.entries if e.params is not None), key=_params)


def _params(entry: OverallEntry) -> int:
    assert entry.params is not None
    return entry.params


def _ordered(board: OverallLeaderboard, sort: str, direction: Direction) -> Sequence[OverallEntry]:
    """The board's entries in the page's order (once per board, sort and direction)."""
    return _derived.get(
        board,
        ("home", board.track, sort, direction),
        lambda b: _sorted(b.entries, sort, direction, b.track is not None),
    )
