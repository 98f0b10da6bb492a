"""Leaderboards: task pages (points, Pareto fronts, baseline deltas) and the overall ranking."""

from core.leaderboard.cache import LeaderboardCache, cache, fingerprint
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
    "cache",
    "clear_task_baseline",
    "fingerprint",
    "overall_csv",
    "overall_leaderboard",
    "set_task_baseline",
    "task_csv",
    "task_leaderboard",
]
