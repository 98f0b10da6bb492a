"""Response models of the leaderboard API (built from `core.leaderboard.types` by attribute)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.ranking.tracks import Track


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LeaderboardTaskRead(_Read):
    name: str
    display_name: str
    family: str
    metric: str
    has_baseline: bool = Field(
        description="False when the task has no (listed) baseline: no ELUE score on it"
    )


class LeaderboardFamilyRead(_Read):
    family: str = Field(description="sentiment, nli, similarity (or a custom task's family)")
    title: str
    tasks: list[str] = Field(description="Task names of the family, in display order")


class OverallEntryRead(_Read):
    rank: int = Field(description="1-based; equal sort keys share a rank")
    submission_id: int
    name: str
    kind: Literal["measured", "self_reported"]
    verified: bool
    self_reported: bool = Field(description="Points typed in from a paper; nothing measured")
    is_baseline: bool = Field(description="The baseline of at least one task")
    baseline_for: list[str]
    params: int | None
    paper_url: str | None
    code_url: str | None
    score: float | None = Field(
        description="Overall ELUE score: mean of task_scores; null when no task is covered"
    )
    task_scores: dict[str, float] = Field(
        description="ELUE task score (mean of the points' deltas) per covered task"
    )
    tasks_covered: int = Field(description="Tasks with a baseline on which the entry has a point")
    tasks_total: int = Field(description="Tasks that have a baseline")
    out_of_range_tasks: list[str] = Field(
        description="Tasks where some point lies outside the baseline's FLOPs range"
    )
    best_performance: dict[str, float] = Field(
        description="Per task with a point: the best point's performance (x100)"
    )
    average_performance: float | None = Field(
        description="Mean of best_performance; what the parameter tracks rank by"
    )
    incomplete_tasks: list[str] = Field(
        default_factory=list,
        description="Tasks with a point whose FLOPs count is incomplete (a lower bound: the "
        "count met an operator no rule covers); such points are not scored",
    )
    owner: str | None = Field(
        None, description="The owner's display name (null: an operator entry)"
    )
    affiliation: str | None = Field(None, description="The owner's affiliation (profile field)")
    submitted_at: dt.datetime | None = Field(None, description="When the entry was submitted")
    score_ci_low: float | None = Field(
        None,
        description="95% bootstrap interval of score (each task's test samples resampled "
        "independently; docs/ranking.md); null where not computed",
    )
    score_ci_high: float | None = None
    task_score_intervals: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Per covered task with an interval: the 95% bootstrap interval [low, high] "
        "of its task score",
    )
    baseline_label: str | None = Field(
        default=None,
        description="For a baseline, what its numbers are, e.g. 'published performance, "
        "platform-counted cost' (ELUE's published scores at FLOPs counted here)",
    )


class OverallLeaderboardRead(_Read):
    tasks: list[LeaderboardTaskRead] = Field(description="Every task, grouped by family, in order")
    families: list[LeaderboardFamilyRead]
    track: Track | None
    track_limit: int | None = Field(description="Inclusive parameter limit of the track")
    ranked_by: Literal["elue_score", "average_performance"]
    total: int = Field(description="Entries matching q, before offset/limit")
    offset: int
    limit: int | None = Field(description="The page size (null: the whole board, CSV only)")
    verified_only: bool = Field(description="Only verified entries (and the baselines)")
    self_reported: bool = Field(
        False,
        description="Entries with self-reported costs ranked with the measured ones (by "
        "default they are kept apart: only the baselines among them are listed)",
    )
    coverage: Literal["all", "any"] = Field(
        description="all: only entries covering every task with a baseline (every task on a "
        "track), ranked among themselves; any: every entry"
    )
    entries: list[OverallEntryRead]


class LeaderboardBaselinePointRead(_Read):
    flops: float
    performance: float


class LeaderboardBaselineRead(_Read):
    submission_id: int
    submission_name: str
    points: list[LeaderboardBaselinePointRead] = Field(description="The curve, by FLOPs ascending")
    min_flops: float
    max_flops: float
    label: str = Field(
        default="",
        description="What the baseline's numbers are, e.g. 'published performance, "
        "platform-counted cost'",
    )


class LeaderboardPointRead(_Read):
    result_id: int
    submission_id: int
    submission_name: str
    kind: Literal["measured", "self_reported"]
    verified: bool = Field(
        description="The platform reproduced this point's predictions by running the counted "
        "graph with the submitted weights (docs/verification.md)"
    )
    is_baseline: bool
    point: str = Field(description="The point's label (from <TASK>.<point>.tsv)")
    performance: float = Field(description="The task metric x100")
    metrics: dict[str, Any] = Field(description="Metric components x100")
    flops_mean: float = Field(
        description="Average FLOPs per sample: everything the model computes (the ranking "
        "axis); a lower bound when cost_incomplete"
    )
    flops_elue_mean: float | None = Field(
        None,
        description="Average FLOPs per sample in the ELUE convention (2 x MACs of products "
        "plus LayerNorm), for comparison with papers",
    )
    cost_incomplete: bool = Field(
        False,
        description="The count met an operator no rule covers: flops_mean is a lower bound; "
        "the point is off the fronts and has no delta",
    )
    cost_disagrees: bool = Field(
        False,
        description="fvcore (the second counter) and the rules differ by more than 1%; the "
        "larger number is the one shown",
    )
    flops_p10: float | None
    flops_p90: float | None
    params: int | None
    baseline_performance: float | None = Field(
        description="The baseline curve at this point's FLOPs (flat outside its range)"
    )
    delta: float | None = Field(description="performance - baseline_performance")
    position: Literal["below", "within", "above"] | None = Field(
        description="Where the point's FLOPs lie relative to the baseline's FLOPs range"
    )
    on_flops_front: bool = Field(description="On the Pareto front of (performance, FLOPs)")
    on_params_front: bool = Field(description="On the Pareto front of (performance, params)")
    ci_low: float | None = Field(
        None,
        description="95% bootstrap interval of performance (test samples resampled; "
        "docs/ranking.md); null where not computed, e.g. self-reported points",
    )
    ci_high: float | None = None


class LeaderboardCurveRead(_Read):
    """Area between the entry's curve and the baseline's, and its hypervolume
    (docs/ranking.md, "Curve summary")."""

    window_low: float | None = Field(
        description="Common FLOPs window: the overlap of the entry's and baseline's FLOPs "
        "ranges (null: no overlap of positive width)"
    )
    window_high: float | None
    gain: float | None = Field(
        description="Area where the entry is above the baseline, per decade of FLOPs (log10 "
        "axis) over the window: an average number of performance points"
    )
    loss: float | None = Field(description="Area where it is below, likewise")
    net: float | None = Field(description="gain - loss")
    hypervolume: float = Field(
        description="Area (log10 FLOPs x performance points) dominated by the entry's points "
        "inside the box of the reference point"
    )
    reference_flops: float = Field(description="Reference point: the baseline's costliest FLOPs")
    reference_performance: float = Field(
        description="Reference point: the baseline's lowest performance"
    )


class TaskLeaderboardEntryRead(_Read):
    rank: int
    submission_id: int
    name: str
    kind: Literal["measured", "self_reported"]
    verified: bool
    is_baseline: bool
    params: int | None
    paper_url: str | None
    code_url: str | None
    score: float | None = Field(description="ELUE task score; null when there is no baseline")
    points: int
    best_performance: float
    out_of_range: bool
    incomplete_points: int = Field(
        0, description="Points whose FLOPs count is incomplete (lower bounds, not scored)"
    )
    owner: str | None = Field(
        None, description="The owner's display name (null: an operator entry)"
    )
    affiliation: str | None = Field(None, description="The owner's affiliation (profile field)")
    submitted_at: dt.datetime | None = Field(None, description="When the entry was submitted")
    score_ci_low: float | None = Field(
        None,
        description="95% bootstrap interval of score (the entry's points resampled jointly; "
        "the baseline is a fixed reference); null where not computed",
    )
    score_ci_high: float | None = None
    curve: LeaderboardCurveRead | None = Field(
        None, description="Curve-level summary against the baseline; null without a baseline"
    )


class TaskLeaderboardRead(_Read):
    task: LeaderboardTaskRead
    baseline: LeaderboardBaselineRead | None
    scored: bool = Field(description="Whether ELUE scores exist (the task has a baseline)")
    note: str | None = Field(description="Why there are no scores, when there are none")
    total: int = Field(description="Submissions on the board, before offset/limit")
    offset: int
    limit: int | None = Field(description="The page size (null: the whole board, CSV only)")
    total_points: int = Field(description="Points on the board, every page")
    verified_only: bool = Field(description="Only verified points (and the baseline)")
    submissions: list[TaskLeaderboardEntryRead] = Field(
        description="This page of the submissions ranked by task score, then best performance"
    )
    points: list[LeaderboardPointRead] = Field(
        description="This page's submissions' points, by submission rank, then FLOPs ascending"
    )
    front_points: list[LeaderboardPointRead] = Field(
        description="Every point on either Pareto front (on this page or not), by rank"
    )
    flops_front: list[int] = Field(description="Result ids on the FLOPs front, FLOPs ascending")
    params_front: list[int] = Field(description="Result ids on the params front, params ascending")
