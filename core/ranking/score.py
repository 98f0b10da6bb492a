"""The ELUE score: how far a submission's curve lies above the baseline's, per task and overall.

Per task: ``score = mean_i [p_i - p_base(f_i)]`` over the submission's points (performance p_i,
FLOPs per sample f_i), ``p_base`` the baseline curve linearly interpolated in FLOPs and held flat
outside its FLOPs range. Overall: the unweighted mean of the task scores over the tasks the
submission covers. See docs/ranking.md for the reasoning behind each rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, TypeVar

import numpy as np

Position: TypeAlias = Literal["below", "within", "above"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One point of a performance-vs-cost curve: FLOPs per sample and performance (x100)."""

    flops: float
    performance: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.flops) and self.flops > 0):
            raise ValueError(f"FLOPs must be a finite positive number, got {self.flops!r}")
        if not math.isfinite(self.performance):
            raise ValueError(f"performance must be a finite number, got {self.performance!r}")


class BaselineCurve:
    """The baseline's performance as a function of FLOPs.

    Linear interpolation between the baseline points; outside their FLOPs range the curve is
    held flat at the nearest endpoint (no extrapolation), so a one-point curve is flat
    everywhere. Where several points share a FLOPs value, the best performance is kept.
    """

    __slots__ = ("_flops", "_perf")

    def __init__(self, points: Sequence[CurvePoint]) -> None:
        if not points:
            raise ValueError("a baseline curve needs at least one point")
        best: dict[float, float] = {}
        for point in points:
            if point.flops in best:
                best[point.flops] = max(best[point.flops], point.performance)
            else:
                best[point.flops] = point.performance
        ordered = sorted(best.items())
        self._flops = np.array([f for f, _ in ordered], dtype=np.float64)
        self._perf = np.array([p for _, p in ordered], dtype=np.float64)

    @property
    def points(self) -> tuple[CurvePoint, ...]:
        """The curve's points after de-duplication, by FLOPs ascending."""
        return tuple(
            CurvePoint(flops=float(f), performance=float(p))
            for f, p in zip(self._flops, self._perf, strict=True)
        )

    @property
    def min_flops(self) -> float:
        """FLOPs of the baseline's cheapest point."""
        return float(self._flops[0])

    @property
    def max_flops(self) -> float:
        """FLOPs of the baseline's costliest point."""
        return float(self._flops[-1])

    def at(self, flops: float) -> float:
        """The baseline performance at `flops` (interpolated, flat outside the range)."""
        # np.interp holds the endpoint values outside [xp[0], xp[-1]]: exactly the flat rule.
        return float(np.interp(flops, self._flops, self._perf))

    def position(self, flops: float) -> Position:
        """Whether `flops` lies below, within (endpoints included) or above the FLOPs range."""
        if flops < self._flops[0]:
            return "below"
        if flops > self._flops[-1]:
            return "above"
        return "within"

    def __repr__(self) -> str:
        pairs = ", ".join(f"({f:g}, {p:g})" for f, p in zip(self._flops, self._perf, strict=True))
        return f"BaselineCurve([{pairs}])"


@dataclass(frozen=True, slots=True)
class PointScore:
    """One submission point compared with the baseline at the same FLOPs."""

    flops: float
    performance: float
    baseline_performance: float
    delta: float  # performance - baseline_performance
    position: Position  # "below"/"above": outside the baseline's FLOPs range, compared flat


@dataclass(frozen=True, slots=True)
class TaskScore:
    """A submission's ELUE score on one task and the per-point comparisons it averages."""

    score: float
    points: tuple[PointScore, ...]

    @property
    def out_of_range(self) -> bool:
        """True when any point lies outside the baseline's FLOPs range."""
        return any(p.position != "within" for p in self.points)


def task_score(points: Sequence[CurvePoint], baseline: BaselineCurve) -> TaskScore:
    """ELUE task score: the mean over `points` of performance minus the baseline at its FLOPs."""
    if not points:
        raise ValueError("a task score needs at least one point")
    scored = tuple(_point_score(p, baseline) for p in points)
    return TaskScore(score=math.fsum(s.delta for s in scored) / len(scored), points=scored)


def _point_score(point: CurvePoint, baseline: BaselineCurve) -> PointScore:
    base = baseline.at(point.flops)
    return PointScore(
        flops=point.flops,
        performance=point.performance,
        baseline_performance=base,
        delta=delta_from(point.performance, base),
        position=baseline.position(point.flops),
    )


def delta_from(performance: float, baseline_performance: float) -> float:
    """A point's delta once the baseline's performance at its FLOPs is known (for callers that
    interpolate many points at once; `baseline_delta` otherwise)."""
    return performance - baseline_performance


def baseline_delta(
    performance: float | None,
    flops: float | None,
    curve: BaselineCurve | None,
    *,
    incomplete: bool = False,
) -> float | None:
    """Performance minus the baseline curve at this point's FLOPs: the one definition.

    None without a curve, a performance or FLOPs, and for an incomplete count (its FLOPs are a
    lower bound, so it has no place on the curve).
    """
    if incomplete or curve is None or performance is None or not flops:
        return None
    return delta_from(performance, curve.at(flops))


@dataclass(frozen=True, slots=True)
class OverallScore:
    """A submission's overall ELUE score over the tasks it covers."""

    average: float | None  # mean of per_task; None when no task is covered
    per_task: dict[str, float]  # covered tasks only, in the order of all_tasks
    tasks_covered: int
    tasks_total: int

    @property
    def complete(self) -> bool:
        """True when the submission covers every task."""
        return self.tasks_covered == self.tasks_total


def overall_score(per_task: Mapping[str, float], all_tasks: Sequence[str]) -> OverallScore:
    """Unweighted mean of the task scores of the covered tasks.

    `all_tasks` lists the tasks that have a baseline; `per_task` holds the score of each task
    the submission has at least one point on (a subset of `all_tasks`).
    """
    if len(set(all_tasks)) != len(all_tasks):
        raise ValueError("all_tasks lists a task twice")
    unknown = sorted(set(per_task) - set(all_tasks))
    if unknown:
        raise ValueError(f"scores for tasks outside all_tasks: {', '.join(unknown)}")
    covered = {t: float(per_task[t]) for t in all_tasks if t in per_task}
    for task, value in covered.items():
        if not math.isfinite(value):
            raise ValueError(f"score for task {task} is not a finite number: {value!r}")
    average = math.fsum(covered.values()) / len(covered) if covered else None
    return OverallScore(
        average=average,
        per_task=covered,
        tasks_covered=len(covered),
        tasks_total=len(all_tasks),
    )


Coverage: TypeAlias = Literal["all", "any"]
"""Which entries a view lists: "all": those covering every task; "any": every entry."""

COVERAGES: tuple[Coverage, ...] = ("all", "any")
DEFAULT_COVERAGE: Coverage = "all"


def covers(s: OverallScore, coverage: Coverage) -> bool:
    """Whether an entry with overall score `s` is listed in a view of `coverage`.

    "all": it covers every task that has a baseline (vacuously true while none has one);
    "any": every entry.
    """
    return coverage == "any" or s.tasks_covered == s.tasks_total


def overall_sort_key(s: OverallScore) -> tuple[float, int]:
    """Ascending sort key, as ELUE ranks: higher ELUE score first; no score last; among equal
    scores, more tasks covered first.

    Coverage is a filter of the view (`covers`), not a sort key: in the default view ("all
    tasks") every entry's mean is over the same tasks, so leaving out a weak task removes an
    entry from that view instead of raising its rank; the "any" view ranks partial entries by
    the same score and shows their coverage next to it.
    """
    return (-s.average if s.average is not None else math.inf, -s.tasks_covered)


def rank_overall(
    entries: Sequence[T],
    *,
    score: Callable[[T], OverallScore],
    coverage: Coverage = "any",
) -> list[T]:
    """`entries` listed in a view of `coverage`, in overall-ranking order (`overall_sort_key`);
    equal keys keep their order."""
    kept = [e for e in entries if covers(score(e), coverage)]
    return sorted(kept, key=lambda e: overall_sort_key(score(e)))
