"""What the leaderboards hold, and the leaderboard API's documented JSON shape: one definition.

Plain frozen dataclasses, built by `core.leaderboard.service` and written to JSON as they are
with pydantic-core (no per-request validation). Their fields carry their descriptions
(`Annotated[..., Field(description=...)]`), so FastAPI documents them directly as the response
schemas; the class names are the OpenAPI component names (`LeaderboardPointRead`...), and the
short names core's code uses (`PointEntry`...) are aliases of the same classes. The API's page
envelopes (`web.api.schemas.leaderboard`) subclass the two boards, adding the page fields.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from core.ranking.score import Coverage, Position
from core.ranking.tracks import Track

RankedBy = Literal["elue_score", "average_performance"]
# a submission's kind (`core.models.SubmissionKind`), documented as its two values
Kind = Annotated[str, Field(json_schema_extra={"enum": ["measured", "self_reported"]})]


def _doc(description: str) -> Any:
    return Field(description=description)


@dataclass(frozen=True, slots=True)
class LeaderboardTaskRead:
    """A task as a leaderboard column."""

    name: str
    display_name: str
    family: str
    metric: str
    has_baseline: Annotated[
        bool, _doc("False when the task has no (listed) baseline: no ELUE score on it")
    ]


@dataclass(frozen=True, slots=True)
class LeaderboardFamilyRead:
    """Tasks of one family, in display order (sentiment, nli, similarity, then any other)."""

    family: Annotated[str, _doc("sentiment, nli, similarity (or a custom task's family)")]
    title: str
    tasks: Annotated[tuple[str, ...], _doc("Task names of the family, in display order")]


@dataclass(frozen=True, slots=True)
class LeaderboardBaselinePointRead:
    """A point of a baseline's curve."""

    flops: float
    performance: float


@dataclass(frozen=True, slots=True)
class LeaderboardBaselineRead:
    """A task's baseline: the designated submission's curve (points by FLOPs ascending)."""

    submission_id: int
    submission_name: str
    points: Annotated[
        tuple[LeaderboardBaselinePointRead, ...], _doc("The curve, by FLOPs ascending")
    ]
    min_flops: float
    max_flops: float
    label: Annotated[
        str,
        _doc(
            "What the baseline's numbers are, e.g. 'published performance, platform-counted cost'"
        ),
    ] = ""


@dataclass(frozen=True, slots=True)
class LeaderboardPointRead:
    """One point (one result) on a task leaderboard."""

    result_id: int
    submission_id: int
    submission_name: str
    kind: Kind
    verified: Annotated[
        bool,
        _doc(
            "The platform reproduced this point's predictions by running the counted "
            "graph with the submitted weights (docs/verification.md)"
        ),
    ]
    is_baseline: bool  # a point of the task's baseline curve
    point: Annotated[str, _doc("The point's label (from <TASK>.<point>.tsv)")]
    performance: Annotated[float, _doc("The task metric x100")]
    metrics: Annotated[dict[str, Any], _doc("Metric components x100")]
    flops_mean: Annotated[
        float,
        _doc(
            "Average FLOPs per sample: everything the model computes (the ranking "
            "axis); a lower bound when cost_incomplete"
        ),
    ]
    flops_p10: float | None
    flops_p90: float | None
    params: int | None
    baseline_performance: Annotated[
        float | None, _doc("The baseline curve at this point's FLOPs (flat outside its range)")
    ]
    # None: the task has no baseline
    delta: Annotated[float | None, _doc("performance - baseline_performance")]
    position: Annotated[
        Position | None,
        _doc("Where the point's FLOPs lie relative to the baseline's FLOPs range"),
    ]
    on_flops_front: Annotated[bool, _doc("On the Pareto front of (performance, FLOPs)")]
    # False without params
    on_params_front: Annotated[bool, _doc("On the Pareto front of (performance, params)")]
    flops_elue_mean: Annotated[
        float | None,
        _doc(
            "Average FLOPs per sample in the ELUE convention (2 x MACs of products "
            "plus LayerNorm), for comparison with papers"
        ),
    ] = None
    cost_incomplete: Annotated[
        bool,
        _doc(
            "The count met an operator no rule covers: flops_mean is a lower bound; "
            "the point is off the fronts and has no delta"
        ),
    ] = False
    cost_disagrees: Annotated[
        bool,
        _doc(
            "fvcore (the second counter) and the rules differ by more than 1%; the "
            "larger number is the one shown"
        ),
    ] = False
    ci_low: Annotated[
        float | None,
        _doc(
            "95% bootstrap interval of performance (test samples resampled; "
            "docs/ranking.md); null where not computed, e.g. self-reported points"
        ),
    ] = None
    ci_high: float | None = None


@dataclass(frozen=True, slots=True)
class LeaderboardCurveRead:
    """Area between the entry's curve and the baseline's, and its hypervolume
    (docs/ranking.md, "Curve summary")."""

    window_low: Annotated[
        float | None,
        _doc(
            "Common FLOPs window: the overlap of the entry's and baseline's FLOPs "
            "ranges (null: no overlap of positive width)"
        ),
    ]
    window_high: float | None
    gain: Annotated[
        float | None,
        _doc(
            "Area where the entry is above the baseline, per decade of FLOPs (log10 "
            "axis) over the window: an average number of performance points"
        ),
    ]
    loss: Annotated[float | None, _doc("Area where it is below, likewise")]
    net: Annotated[float | None, _doc("gain - loss")]
    hypervolume: Annotated[
        float,
        _doc(
            "Area (log10 FLOPs x performance points) dominated by the entry's points "
            "inside the box of the reference point"
        ),
    ]
    reference_flops: Annotated[float, _doc("Reference point: the baseline's costliest FLOPs")]
    reference_performance: Annotated[
        float, _doc("Reference point: the baseline's lowest performance")
    ]


@dataclass(frozen=True, slots=True)
class TaskLeaderboardEntryRead:
    """One submission on a task leaderboard: its ELUE task score over its points there."""

    rank: int
    submission_id: int
    name: str
    kind: Kind
    verified: bool
    is_baseline: bool
    params: int | None
    paper_url: str | None
    code_url: str | None
    # mean of the points' deltas
    score: Annotated[float | None, _doc("ELUE task score; null when there is no baseline")]
    points: int
    best_performance: float
    out_of_range: bool  # some point lies outside the baseline's FLOPs range
    incomplete_points: Annotated[
        int, _doc("Points whose FLOPs count is incomplete (lower bounds, not scored)")
    ] = 0
    owner: Annotated[str | None, _doc("The owner's display name (null: an operator entry)")] = None
    affiliation: Annotated[str | None, _doc("The owner's affiliation (profile field)")] = None
    submitted_at: Annotated[dt.datetime | None, _doc("When the entry was submitted")] = None
    score_ci_low: Annotated[
        float | None,
        _doc(
            "95% bootstrap interval of score (the entry's points resampled jointly; "
            "the baseline is a fixed reference); null where not computed"
        ),
    ] = None
    score_ci_high: float | None = None
    curve: Annotated[
        LeaderboardCurveRead | None,
        _doc("Curve-level summary against the baseline; null without a baseline"),
    ] = None


@dataclass(frozen=True, slots=True)
class TaskLeaderboard:
    """A task's board, every entry (the API's page of it: `TaskLeaderboardRead`)."""

    task: LeaderboardTaskRead
    baseline: LeaderboardBaselineRead | None
    note: Annotated[str | None, _doc("Why there are no scores, when there are none")]
    submissions: Annotated[
        tuple[TaskLeaderboardEntryRead, ...],
        _doc("This page of the submissions ranked by task score, then best performance"),
    ]
    points: Annotated[
        tuple[LeaderboardPointRead, ...],
        _doc("This page's submissions' points, by submission rank, then FLOPs ascending"),
    ]
    flops_front: Annotated[tuple[int, ...], _doc("Result ids on the FLOPs front, FLOPs ascending")]
    params_front: Annotated[
        tuple[int, ...], _doc("Result ids on the params front, params ascending")
    ]


@dataclass(frozen=True, slots=True)
class OverallEntryRead:
    """One submission on the overall leaderboard."""

    rank: Annotated[int, _doc("1-based; equal sort keys share a rank")]
    submission_id: int
    name: str
    kind: Kind
    verified: bool
    self_reported: Annotated[bool, _doc("Points typed in from a paper; nothing measured")]
    is_baseline: Annotated[bool, _doc("The baseline of at least one task")]
    baseline_for: tuple[str, ...]
    params: int | None
    paper_url: str | None
    code_url: str | None
    score: Annotated[
        float | None,
        _doc("Overall ELUE score: mean of task_scores; null when no task is covered"),
    ]
    # covered tasks (with a baseline and a point), column order
    task_scores: Annotated[
        dict[str, float], _doc("ELUE task score (mean of the points' deltas) per covered task")
    ]
    tasks_covered: Annotated[int, _doc("Tasks with a baseline on which the entry has a point")]
    tasks_total: Annotated[int, _doc("Tasks that have a baseline")]
    out_of_range_tasks: Annotated[
        tuple[str, ...], _doc("Tasks where some point lies outside the baseline's FLOPs range")
    ]
    best_performance: Annotated[
        dict[str, float], _doc("Per task with a point: the best point's performance (x100)")
    ]
    average_performance: Annotated[
        float | None, _doc("Mean of best_performance; what the parameter tracks rank by")
    ]
    incomplete_tasks: Annotated[
        tuple[str, ...],
        _doc(
            "Tasks with a point whose FLOPs count is incomplete (a lower bound: the "
            "count met an operator no rule covers); such points are not scored"
        ),
    ] = ()
    owner: Annotated[str | None, _doc("The owner's display name (null: an operator entry)")] = None
    affiliation: Annotated[str | None, _doc("The owner's affiliation (profile field)")] = None
    submitted_at: Annotated[dt.datetime | None, _doc("When the entry was submitted")] = None
    # tasks resampled independently; None where not computed for exactly the scored points
    score_ci_low: Annotated[
        float | None,
        _doc(
            "95% bootstrap interval of score (each task's test samples resampled "
            "independently; docs/ranking.md); null where not computed"
        ),
    ] = None
    score_ci_high: float | None = None
    task_score_intervals: Annotated[
        dict[str, tuple[float, float]],
        _doc(
            "Per covered task with an interval: the 95% bootstrap interval [low, high] "
            "of its task score"
        ),
    ] = field(default_factory=dict)
    baseline_label: Annotated[
        str | None,
        _doc(
            "For a baseline, what its numbers are, e.g. 'published performance, "
            "platform-counted cost' (ELUE's published scores at FLOPs counted here)"
        ),
    ] = None


@dataclass(frozen=True, slots=True)
class OverallLeaderboard:
    """The overall board or a track, every entry (the API's page of it: `OverallLeaderboardRead`)."""

    tasks: Annotated[
        tuple[LeaderboardTaskRead, ...], _doc("Every task, grouped by family, in order")
    ]
    families: tuple[LeaderboardFamilyRead, ...]
    track: Track | None
    track_limit: Annotated[int | None, _doc("Inclusive parameter limit of the track")]
    ranked_by: RankedBy
    entries: tuple[OverallEntryRead, ...]
    # "any": every entry; "all": only those covering every task (with a baseline, or every
    # task on a track), re-ranked among themselves (documented on `OverallLeaderboardRead`)
    coverage: Coverage = "any"


# core's names for the documented types
TaskColumn = LeaderboardTaskRead
FamilyGroup = LeaderboardFamilyRead
BaselinePoint = LeaderboardBaselinePointRead
Baseline = LeaderboardBaselineRead
PointEntry = LeaderboardPointRead
CurveEntry = LeaderboardCurveRead
TaskSubmissionEntry = TaskLeaderboardEntryRead
OverallEntry = OverallEntryRead
