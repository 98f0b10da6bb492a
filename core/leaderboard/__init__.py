"""Leaderboards: task pages (points, Pareto fronts, baseline deltas) and the overall ranking."""

from core.leaderboard.cache import LeaderboardCache, cache
from core.leaderboard.export import overall_csv, task_csv
from core.leaderboard.service import (
    clear_task_baseline,
    overall_leaderboard,
    set_task_baseline,
    task_leaderboard,
)
from core.leaderboard.types import (
    Baseline,
    BaselinePoint,
    FamilyGroup,
    OverallEntry,
    OverallLeaderboard,
    PointEntry,
    TaskColumn,
    TaskLeaderboard,
    TaskSubmissionEntry,
)
from core.models.board_version import board_version, bump_board_version

__all__ = [
    "Baseline",
    "BaselinePoint",
    "FamilyGroup",
    "LeaderboardCache",
    "OverallEntry",
    "OverallLeaderboard",
    "PointEntry",
    "TaskColumn",
    "TaskLeaderboard",
    "TaskSubmissionEntry",
    "board_version",
    "bump_board_version",
    "cache",
    "clear_task_baseline",
    "overall_csv",
    "overall_leaderboard",
    "set_task_baseline",
    "task_csv",
    "task_leaderboard",
]
