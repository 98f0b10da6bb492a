"""The leaderboards: per-task points with Pareto fronts and ELUE scores, and the overall ranking.

Everything is computed from the per-result summary columns (performance, flops_mean/p10/p90,
params) with two or three indexed queries; per-sample cost arrays are never read. Results are
cached in-process until the database's board version changes (`core.leaderboard.cache`).

What is listed: a submission that is public, not hidden and `done` (self-reported entries are
created done; queued, running, failed and withdrawn ones are not listed), and of it only the
points that have a finite performance and positive FLOPs. A task's baseline curve is made of
its designated baseline submission's listed points on that task; while that submission is not
listed (made private, hidden) the task has no baseline and no ELUE scores. Deltas against the baseline are
computed here at read time from the current curve (`core.ranking.score.delta_from`).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from math import isfinite
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, and_, false, func, select
from sqlalchemy.orm import Session

from core.arrays import unpack_array
from core.errors import InvalidInputError, NotFoundError, Problem
from core.leaderboard.cache import cache
from core.leaderboard.source import Joint, SourceSubmission, sources
from core.leaderboard.types import (
    Baseline,
    BaselinePoint,
    CurveEntry,
    FamilyGroup,
    OverallEntry,
    OverallLeaderboard,
    PointEntry,
    TaskColumn,
    TaskLeaderboard,
    TaskSubmissionEntry,
)
from core.models import (
    Result,
    Submission,
    SubmissionKind,
    SubmissionState,
    Task,
    TaskUncertainty,
    Visibility,
)
from core.ranking.curves import curve_summary
from core.ranking.fronts import front_mask
from core.ranking.score import (
    BaselineCurve,
    Coverage,
    CurvePoint,
    OverallScore,
    Position,
    delta_from,
    overall_score,
    overall_sort_key,
)
from core.ranking.tracks import Track, rank_track
from core.tasks.manifest import Family, family_title
from core.tasks.service import get_task
from core.uncertainty import combine_tasks

T = TypeVar("T")

_FAMILY_ORDER = {f.value: i for i, f in enumerate(Family)}


def listed_submission() -> ColumnElement[bool]:
    """SQL condition: the submission appears on the leaderboards."""
    return and_(
        Submission.visibility == Visibility.PUBLIC,
        Submission.hidden == false(),
        Submission.state == SubmissionState.DONE,
    )


def listed_point() -> ColumnElement[bool]:
    """SQL condition: the result is a point with a performance and a cost."""
    return and_(Result.performance.is_not(None), Result.flops_mean > 0)


# --- tasks ------------------------------------------------------------------------------------


def _ordered_tasks(session: Session) -> list[Task]:
    tasks = list(session.scalars(select(Task)))
    tasks.sort(
        key=lambda t: (
            _FAMILY_ORDER.get(t.family, len(_FAMILY_ORDER)),
            t.family,
            t.position,
            t.name,
        )
    )
    return tasks


def _families(columns: Sequence[TaskColumn]) -> tuple[FamilyGroup, ...]:
    groups: dict[str, list[str]] = {}
    for column in columns:
        groups.setdefault(column.family, []).append(column.name)
    return tuple(
        FamilyGroup(
            family=family,
            title=family_title(Family(family)) if family in _FAMILY_ORDER else family,
            tasks=tuple(names),
        )
        for family, names in groups.items()
    )


def _column(task: Task, has_baseline: bool) -> TaskColumn:
    return TaskColumn(
        name=task.name,
        display_name=task.display_name,
        family=task.family,
        metric=task.metric,
        has_baseline=has_baseline,
    )


# --- baselines --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Curve:
    """A baseline curve as arrays, interpolated exactly as `BaselineCurve.at` does."""

    curve: BaselineCurve
    xp: npt.NDArray[np.float64]
    fp: npt.NDArray[np.float64]

    @classmethod
    def of(cls, points: Iterable[tuple[float, float]]) -> _Curve:
        curve = BaselineCurve([CurvePoint(flops=f, performance=p) for f, p in points])
        pts = curve.points
        return cls(
            curve,
            np.array([p.flops for p in pts], dtype=np.float64),
            np.array([p.performance for p in pts], dtype=np.float64),
        )

    def at(self, flops: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.interp(flops, self.xp, self.fp)

    def position(self, flops: float) -> Position:
        return self.curve.position(flops)

    def baseline(self, submission_id: int, name: str, label: str) -> Baseline:
        return Baseline(
            submission_id=submission_id,
            submission_name=name,
            label=label,
            points=tuple(BaselinePoint(p.flops, p.performance) for p in self.curve.points),
            min_flops=self.curve.min_flops,
            max_flops=self.curve.max_flops,
        )


PUBLISHED_COUNTED = "published performance, platform-counted cost"


def baseline_label(kind: str, metrics: Iterable[dict[str, Any]]) -> str:
    """What a baseline's numbers are, from its points' provenance (`core.seed.baseline`):
    ELUE's published scores at FLOPs this platform counted, a measured entry, or a paper's."""
    sources = [(m.get("performance_source"), m.get("flops_source")) for m in metrics]
    if sources and all(s == ("published", "counted") for s in sources):
        return PUBLISHED_COUNTED
    if kind == SubmissionKind.MEASURED.value:
        return "measured performance, platform-counted cost"
    if sources and all(s[0] == "published" for s in sources):
        return "published performance, published or pending cost"
    return "self-reported performance and cost"


def _no_baseline_note(task: Task) -> str:
    if task.baseline_submission_id is None:
        return f"No baseline is designated for {task.name} yet, so its entries have no ELUE score."
    return (
        f"The baseline of {task.name} (submission {task.baseline_submission_id}) is not listed "
        "(private, hidden or unfinished) or has no point with FLOPs on it, so its entries have "
        "no ELUE score."
    )


def set_task_baseline(session: Session, *, task_name: str, submission_id: int) -> Task:
    """Make `submission_id`'s curve on `task_name` that task's baseline (flushes); the task."""
    task = get_task(session, task_name)
    sub = session.get(Submission, submission_id)
    if sub is None:
        raise NotFoundError(f"Submission {submission_id} not found")
    problems: list[Problem] = []
    if sub.visibility is not Visibility.PUBLIC:
        problems.append(Problem("the baseline must be a public submission", column="visibility"))
    if sub.hidden:
        problems.append(Problem("the submission is hidden", column="hidden"))
    if sub.state is not SubmissionState.DONE:
        problems.append(Problem(f"the submission is {sub.state.value}, not done", column="state"))
    n_points = session.scalar(
        select(func.count(Result.id)).where(
            Result.submission_id == sub.id, Result.task_id == task.id, listed_point()
        )
    )
    if not n_points:
        problems.append(
            Problem(
                f"the submission has no point on {task.name} with a performance and FLOPs",
                column="submission_id",
            )
        )
    if problems:
        raise InvalidInputError(
            f"Submission {sub.id} cannot be the baseline of {task.name}", problems
        )
    task.baseline_submission_id = sub.id
    session.flush()
    return task


def clear_task_baseline(session: Session, *, task_name: str) -> Task:
    """Remove a task's baseline: its entries lose their ELUE scores (flushes); the task."""
    task = get_task(session, task_name)
    task.baseline_submission_id = None
    session.flush()
    return task


# --- ranking helpers --------------------------------------------------------------------------


def _competition_ranks(items: Sequence[T], key: Callable[[T], Hashable]) -> list[int]:
    """1-based ranks of already-sorted `items`; equal keys share a rank ("1, 2, 2, 4")."""
    ranks: list[int] = []
    previous: Hashable = object()
    for index, item in enumerate(items):
        k = key(item)
        ranks.append(ranks[-1] if index and k == previous else index + 1)
        previous = k
    return ranks


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


# --- uncertainty and curve summaries ----------------------------------------------------------


def _replicates(session: Session, submission_id: int, task_ids: list[int]) -> list[np.ndarray]:
    """One submission's stored replicates on these tasks, in this order (missing: left out)."""
    query = select(TaskUncertainty.task_id, TaskUncertainty.replicates).where(
        TaskUncertainty.submission_id == submission_id,
        TaskUncertainty.task_id.in_(task_ids),
        TaskUncertainty.replicates.is_not(None),
    )
    found = {row[0]: row[1] for row in session.execute(query)}
    return [unpack_array(data) for t in task_ids if (data := found.get(t)) is not None]


def _score_interval(
    joint: Joint | None, result_ids: Iterable[int], score: float, mean_performance: float
) -> tuple[float, float] | None:
    """The task score's interval: the joint interval of the points' mean performance, shifted
    by the fixed baseline terms (score - mean performance). Only when it was computed for
    exactly the points scored now; otherwise None (shown as a dash, never a guess)."""
    if joint is None or joint.ci_low is None or joint.ci_high is None:
        return None
    if joint.result_ids != frozenset(result_ids):
        return None
    shift = score - mean_performance
    return (joint.ci_low + shift, joint.ci_high + shift)


class CurveMemo:
    """Curve summaries already made, by their inputs (the entry's points and the baseline
    curve): after a write only the entries it changed are summarised again (most of a task
    board's time at 100,000 submissions). Kept for the `max_baselines` latest curves."""

    def __init__(self, max_baselines: int = 16) -> None:
        self.max_baselines = max_baselines
        self._by_baseline: dict[
            tuple[CurvePoint, ...], dict[tuple[tuple[float, float], ...], CurveEntry]
        ] = {}
        self._lock = threading.Lock()

    def entry(
        self, points: tuple[tuple[float, float], ...], baseline: Sequence[CurvePoint]
    ) -> CurveEntry:
        key = tuple(baseline)
        with self._lock:
            memo = self._by_baseline.pop(key, None)
            if memo is None:
                memo = {}
                while len(self._by_baseline) >= self.max_baselines:
                    self._by_baseline.pop(next(iter(self._by_baseline)))
            self._by_baseline[key] = memo  # the most recent last
            found = memo.get(points)
        if found is None:
            found = curve_entry([CurvePoint(flops=f, performance=p) for f, p in points], baseline)
            with self._lock:
                memo[points] = found
        return found

    def clear(self) -> None:
        with self._lock:
            self._by_baseline.clear()


curve_memo = CurveMemo()


def curve_entry(points: Sequence[CurvePoint], baseline: Sequence[CurvePoint]) -> CurveEntry:
    summary = curve_summary(points, baseline)
    area = summary.area
    return CurveEntry(
        window_low=area.window_low if area else None,
        window_high=area.window_high if area else None,
        gain=area.gain if area else None,
        loss=area.loss if area else None,
        net=area.net if area else None,
        hypervolume=summary.hypervolume,
        reference_flops=summary.reference_flops,
        reference_performance=summary.reference_performance,
    )


# --- task leaderboard -------------------------------------------------------------------------


@dataclass(slots=True)
class _TaskRow:
    result_id: int
    submission_id: int
    point: str
    performance: float
    metrics: dict[str, Any]
    flops: float
    p10: float | None
    p90: float | None
    params: int | None
    flops_elue: float | None = None
    incomplete: bool = False  # a lower bound: off the fronts, out of the scores
    disagrees: bool = False
    verified: bool = False  # reproduced by the platform's run (docs/verification.md)
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(slots=True)
class _SubInfo:
    id: int
    name: str
    kind: str
    verified: bool
    params: int | None
    paper_url: str | None
    code_url: str | None
    point_params: list[int] = field(default_factory=list)
    owner: str | None = None
    affiliation: str | None = None
    submitted_at: dt.datetime | None = None

    @classmethod
    def of(cls, listed: SourceSubmission) -> _SubInfo:
        return cls(
            id=listed.id,
            name=listed.name,
            kind=listed.kind,
            verified=listed.verified,
            params=listed.params,
            paper_url=listed.paper_url,
            code_url=listed.code_url,
            owner=listed.owner,
            affiliation=listed.affiliation,
            submitted_at=listed.submitted_at,
        )

    @property
    def model_params(self) -> int | None:
        """The submission's parameter count, else the largest its points report."""
        if self.params is not None:
            return self.params
        return max(self.point_params) if self.point_params else None


def task_leaderboard(
    session: Session, task_name: str, *, verified_only: bool = False
) -> TaskLeaderboard:
    """Every listed point on the task, with Pareto flags, baseline deltas and per-entry scores
    (`verified_only`: verified points only, with the baseline)."""
    task_id = get_task(session, task_name).id
    return cache.get(
        session,
        ("task", task_id, verified_only),
        lambda s: _task_leaderboard(s, _task(s, task_id), verified_only=verified_only),
    )


def _task(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:  # removed since the request looked it up
        raise NotFoundError(f"Task {task_id} not found")
    return task


def _task_leaderboard(
    session: Session, task: Task, *, verified_only: bool = False
) -> TaskLeaderboard:
    """`verified_only`: only verified points (and the baseline, the fixed reference) are
    ranked and make the fronts."""
    source = sources.get(session)
    rows: list[_TaskRow] = []
    subs: dict[int, _SubInfo] = {}
    for p in source.task_points(task.id):
        if not (isfinite(p.performance) and isfinite(p.flops)):
            continue
        if verified_only and not p.verified and p.submission_id != task.baseline_submission_id:
            continue
        sub = subs.get(p.submission_id)
        if sub is None:
            listed = source.submissions.get(p.submission_id)
            if listed is None:  # read just before it was listed: not on this version's board
                continue
            sub = subs[p.submission_id] = _SubInfo.of(listed)
        if p.params is not None:
            sub.point_params.append(p.params)
        rows.append(
            _TaskRow(
                result_id=p.result_id,
                submission_id=p.submission_id,
                point=p.point,
                performance=p.performance,
                metrics=dict(p.metrics),
                flops=p.flops,
                p10=p.p10,
                p90=p.p90,
                params=p.params,
                flops_elue=p.flops_elue,
                incomplete=p.incomplete,
                disagrees=p.disagrees,
                verified=p.verified,
                ci_low=p.ci_low,
                ci_high=p.ci_high,
            )
        )

    for row in rows:  # a point without its own count has the submission's
        if row.params is None:
            row.params = subs[row.submission_id].model_params

    base_id = task.baseline_submission_id
    curve: _Curve | None = None
    if base_id is not None and base_id in subs:
        curve = _Curve.of((r.flops, r.performance) for r in rows if r.submission_id == base_id)
    baseline = (
        curve.baseline(
            base_id,
            subs[base_id].name,
            baseline_label(
                subs[base_id].kind, (r.metrics for r in rows if r.submission_id == base_id)
            ),
        )
        if curve is not None and base_id is not None
        else None
    )

    flops = np.array([r.flops for r in rows], dtype=np.float64)
    perf = np.array([r.performance for r in rows], dtype=np.float64)
    # An incomplete count is a lower bound on the FLOPs: it can neither sit on a front nor
    # push another point off one, and it has no baseline delta.
    complete = np.array([not r.incomplete for r in rows], dtype=np.bool_)
    on_flops = np.zeros(len(rows), dtype=np.bool_)
    if complete.any():
        on_flops[complete] = front_mask(flops[complete], perf[complete])
    with_params = [i for i, r in enumerate(rows) if r.params is not None and not r.incomplete]
    on_params = np.zeros(len(rows), dtype=np.bool_)
    if with_params:
        idx = np.array(with_params)
        costs = np.array([rows[i].params for i in with_params], dtype=np.float64)
        on_params[idx] = front_mask(costs, perf[idx])
    base_perf = curve.at(flops) if curve is not None else None

    deltas: dict[int, list[float]] = defaultdict(list)
    positions: list[Position | None] = []
    for i, row in enumerate(rows):
        if curve is not None and base_perf is not None and not row.incomplete:
            deltas[row.submission_id].append(delta_from(row.performance, float(base_perf[i])))
            positions.append(curve.position(row.flops))
        else:
            positions.append(None)

    by_sub: dict[int, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_sub[row.submission_id].append(i)
    # Rank first (score desc, None last; then best performance), then build the entries.
    joints = source.joints
    summary: list[tuple[tuple[float, float], int, float | None, float]] = []
    intervals: dict[int, tuple[float, float] | None] = {}
    curves: dict[int, CurveEntry] = {}
    for sid, indices in by_sub.items():
        score = _mean(deltas[sid]) if curve is not None and deltas[sid] else None
        if score is not None and curve is not None:
            scored_rows = [rows[i] for i in indices if not rows[i].incomplete]
            intervals[sid] = _score_interval(
                joints.get((sid, task.id)),
                (r.result_id for r in scored_rows),
                score,
                _mean([r.performance for r in scored_rows]),
            )
            curves[sid] = curve_memo.entry(
                tuple((r.flops, r.performance) for r in scored_rows), curve.curve.points
            )
        best = max(rows[i].performance for i in indices)
        summary.append(((-score if score is not None else math.inf, -best), sid, score, best))
    summary.sort(key=lambda item: item[0])  # stable: equal entries stay by submission id
    ranks = _competition_ranks(summary, lambda item: item[0])
    ranked: list[TaskSubmissionEntry] = []
    for (_, sid, score, best), rank in zip(summary, ranks, strict=True):
        sub = subs[sid]
        indices = by_sub[sid]
        ranked.append(
            TaskSubmissionEntry(
                rank=rank,
                submission_id=sid,
                name=sub.name,
                kind=sub.kind,
                verified=sub.verified,
                is_baseline=sid == base_id and curve is not None,
                params=sub.model_params,
                paper_url=sub.paper_url,
                code_url=sub.code_url,
                score=score,
                points=len(indices),
                best_performance=best,
                out_of_range=any(positions[i] not in (None, "within") for i in indices),
                incomplete_points=sum(1 for i in indices if rows[i].incomplete),
                owner=sub.owner,
                affiliation=sub.affiliation,
                submitted_at=sub.submitted_at,
                score_ci_low=interval[0] if (interval := intervals.get(sid)) else None,
                score_ci_high=interval[1] if interval else None,
                curve=curves.get(sid),
            )
        )

    points: list[PointEntry] = []
    for entry in ranked:
        for i in by_sub[entry.submission_id]:  # already FLOPs ascending
            row = rows[i]
            bp = float(base_perf[i]) if base_perf is not None and not row.incomplete else None
            points.append(
                PointEntry(
                    result_id=row.result_id,
                    submission_id=row.submission_id,
                    submission_name=entry.name,
                    kind=entry.kind,
                    verified=row.verified,
                    is_baseline=entry.is_baseline,
                    point=row.point,
                    performance=row.performance,
                    metrics=row.metrics,
                    flops_mean=row.flops,
                    flops_p10=row.p10,
                    flops_p90=row.p90,
                    params=row.params,
                    baseline_performance=bp,
                    delta=delta_from(row.performance, bp) if bp is not None else None,
                    position=positions[i],
                    on_flops_front=bool(on_flops[i]),
                    on_params_front=bool(on_params[i]),
                    flops_elue_mean=row.flops_elue,
                    cost_incomplete=row.incomplete,
                    cost_disagrees=row.disagrees,
                    ci_low=row.ci_low,
                    ci_high=row.ci_high,
                )
            )
    flops_front = sorted((p for p in points if p.on_flops_front), key=lambda p: p.flops_mean)
    params_front = sorted((p for p in points if p.on_params_front), key=lambda p: p.params or 0)
    return TaskLeaderboard(
        task=_column(task, curve is not None),
        baseline=baseline,
        note=None if curve is not None else _no_baseline_note(task),
        submissions=tuple(ranked),
        points=tuple(points),
        flops_front=tuple(p.result_id for p in flops_front),
        params_front=tuple(p.result_id for p in params_front),
    )


# --- overall leaderboard ----------------------------------------------------------------------


def overall_leaderboard(
    session: Session,
    track: Track | None = None,
    *,
    verified_only: bool = False,
    self_reported: bool = True,
    coverage: Coverage = "any",
) -> OverallLeaderboard:
    """Every listed submission ranked by ELUE score (higher first, as ELUE ranked), or within a
    track by average performance; `verified_only`: verified entries only (and the baselines);
    `self_reported=False`: measured entries (and the baselines) only (the pages' and the API's
    default: self-reported costs are kept apart); `coverage` "all" (the pages' and API's
    default): only entries covering every task (docs/ranking.md), "any": every entry. Filters
    only remove entries and re-number the ranks: the order is the same."""
    if coverage == "all":
        return cache.get(
            session,
            ("overall", track, verified_only, self_reported, "all"),
            lambda s: _covering_board(
                overall_leaderboard(
                    s, track, verified_only=verified_only, self_reported=self_reported
                )
            ),
        )
    if not self_reported:
        return cache.get(
            session,
            ("overall", track, verified_only, "measured"),
            lambda s: _measured_board(overall_leaderboard(s, track, verified_only=verified_only)),
        )
    if verified_only:
        return cache.get(
            session,
            ("overall", track, True),
            lambda s: _verified_board(overall_leaderboard(s, track, coverage="any")),
        )
    return cache.get(session, ("overall", track), lambda s: _overall(s, track))


def _verified_board(full: OverallLeaderboard) -> OverallLeaderboard:
    """The verified entries (and the baselines) of a board, ranked among themselves: an
    entry's ELUE score does not depend on the others, so only the ranks change (ties kept)."""
    return _kept(full, [e for e in full.entries if e.verified or e.is_baseline])


def _covering_board(board: OverallLeaderboard) -> OverallLeaderboard:
    """The entries of `board` that cover every task: with a baseline (ELUE score), or every
    task (a track, ranked by average performance over the tasks with a point)."""
    if board.track is None:
        kept = [e for e in board.entries if e.tasks_covered == e.tasks_total]
    else:
        kept = [e for e in board.entries if len(e.best_performance) == len(board.tasks)]
    return replace(_kept(board, kept), coverage="all")


def _kept(board: OverallLeaderboard, kept: Sequence[OverallEntry]) -> OverallLeaderboard:
    """`board` with only `kept` (in board order), re-ranked among themselves (ties kept)."""
    ranks = _competition_ranks(kept, lambda e: e.rank)
    return replace(board, entries=tuple(_ranked(e, r) for e, r in zip(kept, ranks, strict=True)))


def _measured_board(full: OverallLeaderboard) -> OverallLeaderboard:
    """The measured entries (and the baselines) of a board, ranked among themselves."""
    return _kept(full, [e for e in full.entries if not e.self_reported or e.is_baseline])


def _overall(session: Session, track: Track | None) -> OverallLeaderboard:
    if track is not None:
        # A track is a filter and re-ranking of the overall entries: reuse them (cached).
        full = overall_leaderboard(session, None, coverage="any")
        return _track_board(full, track)

    tasks = _ordered_tasks(session)
    task_by_id = {t.id: t for t in tasks}
    source = sources.get(session)
    subs = {sid: _SubInfo.of(source.submissions[sid]) for sid in sorted(source.submissions)}

    # Per task: parallel lists of submission id, FLOPs, performance, result id.
    per_task: dict[int, tuple[list[int], list[float], list[float], list[int]]] = defaultdict(
        lambda: ([], [], [], [])
    )
    incomplete: dict[int, set[str]] = defaultdict(set)
    for tid, per_sub in source.points.items():
        if tid not in task_by_id:
            continue
        for sid, sub_points in per_sub.items():
            if sid not in subs:
                continue
            for p in sub_points:
                if not (isfinite(p.flops) and isfinite(p.performance)):
                    continue
                if p.incomplete:  # a lower bound: out of the ELUE score (flagged on the entry)
                    incomplete[sid].add(task_by_id[tid].name)
                    continue
                ids, fl, pf, rids = per_task[tid]
                ids.append(sid)
                fl.append(p.flops)
                pf.append(p.performance)
                rids.append(p.result_id)
                if p.params is not None:
                    subs[sid].point_params.append(p.params)

    # One pass per task in plain Python: per submission its best point, and against the
    # baseline curve (interpolated for all points at once) its deltas and range flags.
    best: dict[int, dict[str, float]] = defaultdict(dict)
    scores: dict[int, dict[str, float]] = defaultdict(dict)
    out_of_range: dict[int, list[str]] = defaultdict(list)
    baseline_for: dict[int, list[str]] = defaultdict(list)
    has_baseline: set[int] = set()
    joints = source.joints
    # per submission, per task: (task id, result ids, shift, interval) when the joint bootstrap
    # matches the scored points (shift: the fixed baseline terms, score - mean performance)
    task_boot: dict[
        int, dict[str, tuple[int, frozenset[int], float, tuple[float, float]] | None]
    ] = defaultdict(dict)
    for task in tasks:
        if task.id not in per_task:
            continue
        name = task.name
        ids, fl, pf, rids = per_task[task.id]
        task_best: dict[int, float] = {}
        for sid, perf in zip(ids, pf, strict=True):
            if perf > task_best.get(sid, -math.inf):
                task_best[sid] = perf
        for sid, perf in task_best.items():
            best[sid][name] = perf
        base_id = task.baseline_submission_id
        if base_id is None or base_id not in task_best:
            continue
        curve = _Curve.of((f, p) for s, f, p in zip(ids, fl, pf, strict=True) if s == base_id)
        has_baseline.add(task.id)
        baseline_for[base_id].append(name)
        low, high = curve.curve.min_flops, curve.curve.max_flops
        base = curve.at(np.asarray(fl, dtype=np.float64)).tolist()
        deltas: dict[int, list[float]] = defaultdict(list)
        own_results: dict[int, list[int]] = defaultdict(list)
        own_perf: dict[int, list[float]] = defaultdict(list)
        outside: set[int] = set()
        # One pass, grouped by submission (a scan of the task's points per submission was
        # quadratic: minutes at 100,000 submissions).
        for sid, f, perf, b, rid in zip(ids, fl, pf, base, rids, strict=True):
            deltas[sid].append(delta_from(perf, b))
            own_results[sid].append(rid)
            own_perf[sid].append(perf)
            if f < low or f > high:
                outside.add(sid)
        for sid, values in deltas.items():
            scores[sid][name] = math.fsum(values) / len(values)
            joint = joints.get((sid, task.id))
            mean_perf = _mean(own_perf[sid])
            interval = _score_interval(joint, own_results[sid], scores[sid][name], mean_perf)
            task_boot[sid][name] = (
                (task.id, joint.result_ids, scores[sid][name] - mean_perf, interval)
                if interval is not None and joint is not None
                else None
            )
        for sid in outside:
            out_of_range[sid].append(name)

    labels: dict[int, str] = {}
    if baseline_for:  # a few rows: the baselines' points' provenance
        provenance: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for sid in baseline_for:
            provenance[sid].extend(dict(p.metrics) for p in source.submission_points(sid))
        labels = {sid: baseline_label(subs[sid].kind, provenance[sid]) for sid in baseline_for}
    columns = tuple(_column(t, t.id in has_baseline) for t in tasks)
    names = [c.name for c in columns]
    scored_tasks = [c.name for c in columns if c.has_baseline]
    scored: list[tuple[tuple[float, int], int, OverallScore, dict[str, float]]] = []
    for sid in subs:
        if sid not in best and sid not in incomplete:
            continue  # listed, but no point with a performance and FLOPs
        overall = overall_score(scores.get(sid, {}), scored_tasks)
        sub_best = best.get(sid, {})
        best_perf = {n: sub_best[n] for n in names if n in sub_best}
        scored.append((overall_sort_key(overall), sid, overall, best_perf))

    stored = source.intervals

    def overall_interval(sid: int, overall: OverallScore) -> tuple[float, float] | None:
        found = [task_boot.get(sid, {}).get(name) for name in overall.per_task]
        boots = [b for b in found if b is not None]
        if not boots or len(boots) != len(found):
            return None
        shift = math.fsum(b[2] for b in boots) / len(boots)
        covered = {str(b[0]): b[1] for b in boots}
        kept = stored.get(sid)
        if kept is not None and kept[0] == covered:  # the usual case: no replicates read
            return (kept[1] + shift, kept[2] + shift)
        # covered tasks differ from the scored ones (e.g. a task without a baseline)
        replicates = _replicates(session, sid, [b[0] for b in boots])
        if len(replicates) != len(boots):
            return None
        interval = combine_tasks(replicates, [b[2] for b in boots])
        return (interval.low, interval.high)

    scored.sort(key=lambda item: item[0])  # stable: equal keys stay by submission id
    ranks = _competition_ranks(scored, lambda item: item[0])
    entries = []
    for (_, sid, overall, best_perf), rank in zip(scored, ranks, strict=True):
        sub = subs[sid]
        boots = task_boot.get(sid, {})
        overall_ci = overall_interval(sid, overall)
        entries.append(
            OverallEntry(
                rank=rank,
                submission_id=sid,
                name=sub.name,
                kind=sub.kind,
                verified=sub.verified,
                self_reported=sub.kind == SubmissionKind.SELF_REPORTED.value,
                is_baseline=sid in baseline_for,
                baseline_for=tuple(baseline_for.get(sid, ())),
                baseline_label=labels.get(sid),
                params=sub.model_params,
                paper_url=sub.paper_url,
                code_url=sub.code_url,
                score=overall.average,
                task_scores=overall.per_task,
                tasks_covered=overall.tasks_covered,
                tasks_total=overall.tasks_total,
                out_of_range_tasks=tuple(out_of_range.get(sid, ())),
                best_performance=best_perf,
                average_performance=_mean(list(best_perf.values())) if best_perf else None,
                incomplete_tasks=tuple(n for n in names if n in incomplete.get(sid, ())),
                owner=sub.owner,
                affiliation=sub.affiliation,
                submitted_at=sub.submitted_at,
                score_ci_low=overall_ci[0] if overall_ci else None,
                score_ci_high=overall_ci[1] if overall_ci else None,
                task_score_intervals={
                    n: b[3] for n in overall.per_task if (b := boots.get(n)) is not None
                },
            )
        )
    return OverallLeaderboard(
        tasks=columns,
        families=_families(columns),
        track=None,
        track_limit=None,
        ranked_by="elue_score",
        entries=tuple(entries),
    )


def _track_board(full: OverallLeaderboard, track: Track) -> OverallLeaderboard:
    candidates = [e for e in full.entries if e.params is not None]

    def params(e: OverallEntry) -> int:
        assert e.params is not None
        return e.params

    ranked = rank_track(
        candidates,
        track,
        params=params,
        average_performance=lambda e: e.average_performance,
        tasks_covered=lambda e: len(e.best_performance),
    )
    ranks = _competition_ranks(
        ranked, lambda e: (e.average_performance, len(e.best_performance), e.params)
    )
    return OverallLeaderboard(
        tasks=full.tasks,
        families=full.families,
        track=track,
        track_limit=track.limit,
        ranked_by="average_performance",
        coverage=full.coverage,
        entries=tuple(_ranked(e, r) for e, r in zip(ranked, ranks, strict=True)),
    )


def _ranked(entry: OverallEntry, rank: int) -> OverallEntry:
    return replace(entry, rank=rank)
