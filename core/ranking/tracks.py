"""Parameter-budget tracks (ELUE's tabs): rank by average performance within a parameter limit."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


class Track(enum.StrEnum):
    """A parameter budget; a model is in every track whose limit it does not exceed."""

    M40 = "40M"
    M55 = "55M"
    M70 = "70M"
    M110 = "110M"

    @property
    def limit(self) -> int:
        """The largest parameter count allowed in the track (inclusive)."""
        return _LIMITS[self]


_LIMITS: dict[Track, int] = {
    Track.M40: 40_000_000,
    Track.M55: 55_000_000,
    Track.M70: 70_000_000,
    Track.M110: 110_000_000,
}


def tracks_for(params: int) -> list[Track]:
    """The tracks a model with `params` parameters belongs to, smallest budget first."""
    if params < 0:
        raise ValueError(f"a parameter count cannot be negative, got {params}")
    return [t for t in Track if params <= t.limit]


def average_performance(per_task_best: Mapping[str, float]) -> float | None:
    """Mean over tasks of each task's best-point performance; None when there is no task."""
    values = [float(v) for v in per_task_best.values()]
    for task, value in zip(per_task_best, values, strict=True):
        if not math.isfinite(value):
            raise ValueError(f"performance for task {task} is not a finite number: {value!r}")
    return math.fsum(values) / len(values) if values else None


def rank_track(
    entries: Sequence[T],
    track: Track,
    *,
    params: Callable[[T], int],
    average_performance: Callable[[T], float | None],
    tasks_covered: Callable[[T], int] | None = None,
) -> list[T]:
    """The entries within `track`'s budget, best first.

    Order: average performance descending, then fewer parameters; equal entries keep their input
    order. Entries without an average (no task) are left out. With `tasks_covered`, entries that
    cover more tasks come first among equal averages. Coverage is a filter of the view
    (`core.leaderboard.service`), never ahead of the average: a lower average never ranks above
    a higher one.
    """
    ranked: list[tuple[float, int, int, int, T]] = []
    for index, entry in enumerate(entries):
        n_params = params(entry)
        avg = average_performance(entry)
        if n_params > track.limit or avg is None:
            continue
        covered = tasks_covered(entry) if tasks_covered is not None else 0
        ranked.append((-avg, -covered, n_params, index, entry))
    ranked.sort(key=lambda r: r[:4])
    return [r[4] for r in ranked]
