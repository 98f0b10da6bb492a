"""What the leaderboards hold: plain frozen dataclasses, built by `core.leaderboard.service`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from core.ranking.score import Coverage, Position
from core.ranking.tracks import Track

RankedBy = Literal["elue_score", "average_performance"]


@dataclass(frozen=True, slots=True)
class TaskColumn:
    """A task as a leaderboard column."""

    name: str
    display_name: str
    family: str
    metric: str
    has_baseline: bool  # False: no (listed) baseline, so no ELUE score on this task


@dataclass(frozen=True, slots=True)
class FamilyGroup:
    """Tasks of one family, in display order (sentiment, nli, similarity, then any other)."""

    family: str
    title: str
    tasks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BaselinePoint:
    flops: float
    performance: float


@dataclass(frozen=True, slots=True)
class Baseline:
    """A task's baseline: the designated submission's curve (points by FLOPs ascending)."""

    submission_id: int
    submission_name: str
    points: tuple[BaselinePoint, ...]
    min_flops: float
    max_flops: float
    # what its numbers are, e.g. "published performance, platform-counted cost"
    label: str = ""


@dataclass(frozen=True, slots=True)
class PointEntry:
    """One point (one result) on a task leaderboard."""

    result_id: int
    submission_id: int
    submission_name: str
    kind: str  # "measured" | "self_reported"
    verified: bool
    is_baseline: bool  # a point of the task's baseline curve
    point: str
    performance: float
    metrics: dict[str, Any]
    flops_mean: float
    flops_p10: float | None
    flops_p90: float | None
    params: int | None
    baseline_performance: float | None  # the baseline curve at this point's FLOPs
    delta: float | None  # performance - baseline_performance (None: the task has no baseline)
    position: Position | None  # below / within / above the baseline's FLOPs range
    on_flops_front: bool  # on the Pareto front of (performance, FLOPs)
    on_params_front: bool  # on the Pareto front of (performance, params); False without params
    flops_elue_mean: float | None = None  # the ELUE convention (products + norms), for papers
    # The count met operators no rule covers: flops_mean is a lower bound, the point is off
    # the fronts and out of the scores.
    cost_incomplete: bool = False
    cost_disagrees: bool = False  # fvcore and the rules differ by >1% (the larger is shown)
    # 95% bootstrap interval of `performance` (None: not computed, e.g. self-reported)
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True, slots=True)
class CurveEntry:
    """Curve-level summary against the baseline (core.ranking.curves): the area between the
    curves over the common window (log10 FLOPs, per decade) and the points' hypervolume."""

    window_low: float | None  # FLOPs; None when the ranges do not overlap over a width
    window_high: float | None
    gain: float | None  # mean height above the baseline over the window
    loss: float | None  # mean depth below it
    net: float | None  # gain - loss
    hypervolume: float  # log10 FLOPs x performance points, against the reference point
    reference_flops: float  # the baseline's costliest FLOPs
    reference_performance: float  # the baseline's lowest performance


@dataclass(frozen=True, slots=True)
class TaskSubmissionEntry:
    """One submission on a task leaderboard: its ELUE task score over its points there."""

    rank: int
    submission_id: int
    name: str
    kind: str
    verified: bool
    is_baseline: bool
    params: int | None
    paper_url: str | None
    code_url: str | None
    score: float | None  # mean of the points' deltas; None when the task has no baseline
    points: int
    best_performance: float
    out_of_range: bool  # some point lies outside the baseline's FLOPs range
    incomplete_points: int = 0  # points whose count is a lower bound (not scored)
    owner: str | None = None  # the owner's display name (None: an operator entry)
    affiliation: str | None = None  # the owner's affiliation, as their profile gives it
    submitted_at: dt.datetime | None = None
    # 95% bootstrap interval of `score` (the entry's points resampled jointly; the baseline
    # is a fixed reference); None when not computed for exactly the scored points.
    score_ci_low: float | None = None
    score_ci_high: float | None = None
    curve: CurveEntry | None = None  # area between curves and hypervolume (None: no baseline)


@dataclass(frozen=True, slots=True)
class TaskLeaderboard:
    task: TaskColumn
    baseline: Baseline | None
    note: str | None  # why scores are missing, when they are
    submissions: tuple[TaskSubmissionEntry, ...]  # ranked: score desc, then best performance
    points: tuple[PointEntry, ...]  # by submission rank, then FLOPs ascending
    flops_front: tuple[int, ...]  # result ids on the (performance, FLOPs) front, FLOPs ascending
    params_front: tuple[int, ...]  # result ids on the (performance, params) front, params asc.


@dataclass(frozen=True, slots=True)
class OverallEntry:
    """One submission on the overall leaderboard."""

    rank: int
    submission_id: int
    name: str
    kind: str
    verified: bool
    self_reported: bool
    is_baseline: bool  # the baseline of at least one task
    baseline_for: tuple[str, ...]
    params: int | None
    paper_url: str | None
    code_url: str | None
    score: float | None  # overall ELUE score: mean of task_scores (None: no task covered)
    task_scores: dict[str, float]  # covered tasks (with a baseline and a point), column order
    tasks_covered: int
    tasks_total: int  # tasks that have a baseline
    out_of_range_tasks: tuple[str, ...]  # tasks where some point is outside the baseline range
    best_performance: dict[str, float]  # every task with a point: its best point's performance
    average_performance: float | None  # mean of best_performance (the track ranking)
    # tasks whose points all or partly have an incomplete (lower-bound) count: not scored
    incomplete_tasks: tuple[str, ...] = ()
    owner: str | None = None  # the owner's display name (None: an operator entry)
    affiliation: str | None = None
    submitted_at: dt.datetime | None = None
    # 95% bootstrap intervals: of `score` (tasks resampled independently) and per task of its
    # task score; None / missing where not computed for exactly the scored points.
    score_ci_low: float | None = None
    score_ci_high: float | None = None
    task_score_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    # a baseline's numbers, e.g. "published performance, platform-counted cost"; else None
    baseline_label: str | None = None


@dataclass(frozen=True, slots=True)
class OverallLeaderboard:
    tasks: tuple[TaskColumn, ...]  # every task, in display order
    families: tuple[FamilyGroup, ...]
    track: Track | None
    track_limit: int | None  # inclusive parameter limit of the track
    ranked_by: RankedBy
    entries: tuple[OverallEntry, ...]
    # "any": every entry; "all": only those covering every task (with a baseline, or every
    # task on a track), re-ranked among themselves
    coverage: Coverage = "any"
