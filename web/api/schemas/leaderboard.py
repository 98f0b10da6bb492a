"""The leaderboard API's page envelopes: the boards of `core.leaderboard.types` (where every
nested type is defined and documented, once) with the page fields added. Documentation only:
the handlers write the bodies with pydantic-core, never validating them per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from core.leaderboard.types import LeaderboardPointRead, OverallLeaderboard, TaskLeaderboard
from core.paging import PageInfo
from core.ranking.score import Coverage


def _paging(name: str) -> Any:
    return Field(description=PageInfo.model_fields[name].description)


@dataclass(frozen=True, slots=True, kw_only=True)
class OverallLeaderboardRead(OverallLeaderboard):
    """The overall board or a track: `entries` is the page (`total`: entries matching `q`)."""

    total: Annotated[int, _paging("total")]
    offset: Annotated[int, _paging("offset")]
    limit: Annotated[int | None, _paging("limit")]
    verified_only: Annotated[bool, Field(description="Only verified entries (and the baselines)")]
    coverage: Annotated[
        Coverage,
        Field(
            description="all: only entries covering every task with a baseline (every task on "
            "a track), ranked among themselves; any: every entry"
        ),
    ]
    self_reported: Annotated[
        bool,
        Field(
            description="Entries with self-reported costs ranked with the measured ones (by "
            "default they are kept apart: only the baselines among them are listed)"
        ),
    ] = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskLeaderboardRead(TaskLeaderboard):
    """A task's board: `submissions` and their `points` are the page (`total`: submissions)."""

    total: Annotated[int, _paging("total")]
    offset: Annotated[int, _paging("offset")]
    limit: Annotated[int | None, _paging("limit")]
    scored: Annotated[
        bool, Field(description="Whether ELUE scores exist (the task has a baseline)")
    ]
    total_points: Annotated[int, Field(description="Points on the board, every page")]
    verified_only: Annotated[bool, Field(description="Only verified points (and the baseline)")]
    front_points: Annotated[
        tuple[LeaderboardPointRead, ...],
        Field(description="Every point on either Pareto front (on this page or not), by rank"),
    ]
