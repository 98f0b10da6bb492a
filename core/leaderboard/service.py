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

import math
import operator
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from math import isfinite
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, and_, false, func, select
from sqlalchemy.orm import Session

from core.arrays import unpack_array
from core.errors import InvalidInputError, NotFoundError, Problem
from core.leaderboard.cache import cache
from core.leaderboard.source import BoardSource, Joint, SourcePoint, SourceSubmission, sources
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
from core.models.board_version import LOCAL_KEY
from core.ranking.curves import curve_summary
from core.ranking.fronts import front_mask
from core.ranking.score import (
    BaselineCurve,
    Coverage,
    CurvePoint,
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


def baseline_label(kind: str, metrics: Iterable[Mapping[str, Any]]) -> str:
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


# --- memo of per-entry results ----------------------------------------------------------------


class EntryMemo:
    """Per board, each submission's part of it (its entry, its points, its sort key) kept with
    the inputs it was made from, so that after a write only the submissions whose inputs
    changed are made again; the rest of a board is ranking over arrays. A part is a pure
    function of its inputs (compared with ==, which is an identity check for the source rows an
    incremental update kept) and of the board's context (the baselines' curves): a change of
    context drops the board's parts. Kept for the `max_boards` latest boards."""

    def __init__(self, max_boards: int = 64) -> None:
        self.max_boards = max_boards
        self._boards: dict[Hashable, tuple[Hashable, dict[int, Any]]] = {}
        self._lock = threading.Lock()

    def parts(self, key: Hashable, context: Hashable) -> dict[int, Any]:
        """The parts kept for board `key` under `context` (empty when it changed); read-only."""
        with self._lock:
            found = self._boards.get(key)
        if found is None or found[0] != context:
            return {}
        return found[1]

    def held(self, key: Hashable) -> dict[int, Any] | None:
        """The parts kept for board `key`, whatever their context (tests)."""
        with self._lock:
            found = self._boards.get(key)
        return found[1] if found is not None else None

    def keep(self, key: Hashable, context: Hashable, parts: dict[int, Any]) -> None:
        with self._lock:
            self._boards.pop(key, None)
            while len(self._boards) >= self.max_boards:
                self._boards.pop(next(iter(self._boards)))
            self._boards[key] = (context, parts)

    def clear(self) -> None:
        with self._lock:
            self._boards.clear()


entry_memo = EntryMemo()


def clear_memos() -> None:
    """Forget every kept curve summary and board part (a recompute then makes them all)."""
    curve_memo.clear()
    entry_memo.clear()


def _memo_key(session: Session, *key: Hashable) -> tuple[Hashable, bool]:
    """The memo's key of a board for this session, and whether its parts may be kept: not for
    a session with uncommitted changes (it reads the kept parts, but its own are seen by no
    one)."""
    db = session.get_bind().engine.url.render_as_string(hide_password=True)
    return (db, *key), LOCAL_KEY not in session.info


_Ranked = TypeVar("_Ranked", TaskSubmissionEntry, OverallEntry)
# an entry's fields after its rank (the first), read at once
_AFTER_RANK = {
    cls: operator.attrgetter(*[f.name for f in fields(cls)][1:])
    for cls in (TaskSubmissionEntry, OverallEntry)
}
assert all(fields(cls)[0].name == "rank" for cls in _AFTER_RANK)


def _with_rank(entry: _Ranked, rank: int) -> _Ranked:
    """`entry` with another rank: `dataclasses.replace`, several times faster (at 100,000
    entries a board re-ranks many of them after a write)."""
    return type(entry)(rank, *_AFTER_RANK[type(entry)](entry))


def _competition_ranks_of(
    keys: Sequence[npt.NDArray[np.float64]], order: npt.NDArray[np.intp]
) -> npt.NDArray[np.intp]:
    """1-based competition ranks of the items in `order` (sorted by `keys`): equal keys share
    a rank ("1, 2, 2, 4"); as `_competition_ranks`, over arrays."""
    n = order.size
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    new = np.zeros(n, dtype=np.bool_)
    new[0] = True
    for k in keys:
        s = k[order]
        new[1:] |= s[1:] != s[:-1]
    return np.maximum.accumulate(np.where(new, np.arange(1, n + 1), 0))


def _rank_order(
    sort_keys: Sequence[tuple[float, float]], entries: Sequence[_Ranked]
) -> list[tuple[int, _Ranked]]:
    """(index into `entries`, the entry with its rank) in board order: sorted by the two-part
    `sort_keys` ascending, equal keys in their given order, equal keys sharing a rank; an entry
    whose rank is unchanged is the same object."""
    keys = np.array(sort_keys, dtype=np.float64).reshape(-1, 2)
    key0, key1 = keys[:, 0], keys[:, 1]
    order = np.lexsort((key1, key0))  # stable
    ranks = _competition_ranks_of((key0, key1), order)
    out: list[tuple[int, _Ranked]] = []
    for i, rank in zip(order.tolist(), ranks.tolist(), strict=True):
        entry = entries[i]
        out.append((i, entry if entry.rank == rank else _with_rank(entry, rank)))
    return out


# --- task leaderboard -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TaskPart:
    """One submission's part of a task board, made from its points alone (and the curve)."""

    entry: TaskSubmissionEntry  # rank as in the board it was last ranked on
    points: tuple[PointEntry, ...]  # FLOPs ascending, off both fronts
    sort_key: tuple[float, float]  # (-score (inf without one), -best performance)
    # per point (columns): FLOPs, performance, params (nan without a count), 1.0 if complete
    data: npt.NDArray[np.float64]


def _task_rows(points: Sequence[SourcePoint], *, keep_unverified: bool) -> list[SourcePoint]:
    return [
        p
        for p in points
        if isfinite(p.performance) and isfinite(p.flops) and (keep_unverified or p.verified)
    ]


def _task_part(
    listed: SourceSubmission,
    rows: Sequence[SourcePoint],
    joint: Joint | None,
    curve: _Curve | None,
    curve_points: tuple[CurvePoint, ...],
    is_baseline: bool,
) -> _TaskPart:
    """The entry and points of one submission with `rows` (finite, filtered) on a task."""
    sid = listed.id
    point_params = [r.params for r in rows if r.params is not None]
    if listed.params is not None:
        model_params: int | None = listed.params
    else:
        model_params = max(point_params) if point_params else None
    params = [r.params if r.params is not None else model_params for r in rows]
    base_perf = (
        curve.at(np.array([r.flops for r in rows], dtype=np.float64)).tolist()
        if curve is not None
        else None
    )
    deltas: list[float] = []
    positions: list[Position | None] = []
    for i, row in enumerate(rows):
        if base_perf is not None and curve is not None and not row.incomplete:
            deltas.append(delta_from(row.performance, base_perf[i]))
            positions.append(curve.position(row.flops))
        else:
            positions.append(None)
    score = _mean(deltas) if curve is not None and deltas else None
    interval: tuple[float, float] | None = None
    curve_summary_entry: CurveEntry | None = None
    if score is not None and curve is not None:
        scored_rows = [r for r in rows if not r.incomplete]
        interval = _score_interval(
            joint,
            (r.result_id for r in scored_rows),
            score,
            _mean([r.performance for r in scored_rows]),
        )
        curve_summary_entry = curve_memo.entry(
            tuple((r.flops, r.performance) for r in scored_rows), curve_points
        )
    best = max(r.performance for r in rows)
    entry = TaskSubmissionEntry(
        rank=0,
        submission_id=sid,
        name=listed.name,
        kind=listed.kind,
        verified=listed.verified,
        is_baseline=is_baseline,
        params=model_params,
        paper_url=listed.paper_url,
        code_url=listed.code_url,
        score=score,
        points=len(rows),
        best_performance=best,
        out_of_range=any(p not in (None, "within") for p in positions),
        incomplete_points=sum(1 for r in rows if r.incomplete),
        owner=listed.owner,
        affiliation=listed.affiliation,
        submitted_at=listed.submitted_at,
        score_ci_low=interval[0] if interval else None,
        score_ci_high=interval[1] if interval else None,
        curve=curve_summary_entry,
    )
    entries = []
    for i, row in enumerate(rows):
        bp = base_perf[i] if base_perf is not None and not row.incomplete else None
        entries.append(
            PointEntry(
                result_id=row.result_id,
                submission_id=sid,
                submission_name=listed.name,
                kind=listed.kind,
                verified=row.verified,
                is_baseline=is_baseline,
                point=row.point,
                performance=row.performance,
                metrics=row.metrics,  # shared with the source row: boards are read-only
                flops_mean=row.flops,
                flops_p10=row.p10,
                flops_p90=row.p90,
                params=params[i],
                baseline_performance=bp,
                delta=delta_from(row.performance, bp) if bp is not None else None,
                position=positions[i],
                on_flops_front=False,
                on_params_front=False,
                flops_elue_mean=row.flops_elue,
                cost_incomplete=row.incomplete,
                cost_disagrees=row.disagrees,
                ci_low=row.ci_low,
                ci_high=row.ci_high,
            )
        )
    return _TaskPart(
        entry=entry,
        points=tuple(entries),
        sort_key=(-score if score is not None else math.inf, -best),
        data=np.array(
            [
                (r.flops, r.performance, p if p is not None else math.nan, not r.incomplete)
                for r, p in zip(rows, params, strict=True)
            ],
            dtype=np.float64,
        ),
    )


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
    ranked and make the fronts. Each submission's part is made from its own points (kept in
    `entry_memo` while they are unchanged); the board ranks them and marks the fronts."""
    source = sources.get(session)
    per_sub = source.points.get(task.id, {})
    base_id = task.baseline_submission_id
    curve: _Curve | None = None
    baseline: Baseline | None = None
    base_listed = source.submissions.get(base_id) if base_id is not None else None
    if base_listed is not None and base_id is not None:
        base_rows = _task_rows(per_sub.get(base_id, ()), keep_unverified=True)
        if base_rows:
            curve = _Curve.of((r.flops, r.performance) for r in base_rows)
            baseline = curve.baseline(
                base_id,
                base_listed.name,
                baseline_label(base_listed.kind, (r.metrics for r in base_rows)),
            )

    memo_key, shared = _memo_key(session, "task", task.id, verified_only)
    curve_points = curve.curve.points if curve is not None else ()
    context = (base_id, curve_points if curve is not None else None)
    kept = entry_memo.parts(memo_key, context)
    fresh: dict[int, tuple[tuple[object, ...], _TaskPart, TaskSubmissionEntry]] = {}
    parts: list[_TaskPart] = []
    joints = source.joints
    submissions = source.submissions
    task_id = task.id
    get_listed, get_kept, add_part = submissions.get, kept.get, parts.append
    for sid, own in sorted(per_sub.items()):
        listed = get_listed(sid)
        if listed is None:  # read just before it was listed: not on this version's board
            continue
        found = get_kept(sid)
        if found is not None and found[0][0] is own and found[0][1] is listed:
            # The same row objects: the submission was not read again since (an update reads
            # all of a submission's rows again, its joints included).
            fresh[sid] = found
            add_part(found[1])
            continue
        joint = joints.get((sid, task_id))
        inputs: tuple[object, ...] = (own, listed, joint)
        if found is not None and found[0] == inputs:  # equal rows read again (a full read)
            fresh[sid] = found
            parts.append(found[1])
            continue
        rows = _task_rows(own, keep_unverified=not verified_only or sid == base_id)
        if not rows:
            continue
        part = _task_part(
            listed,
            rows,
            joint,
            curve,
            curve_points,
            sid == base_id and curve is not None,
        )
        fresh[sid] = (inputs, part, part.entry)
        parts.append(part)

    n_points = [len(p.points) for p in parts]
    total = sum(n_points)
    data = np.concatenate([p.data for p in parts]) if parts else np.zeros((0, 4))
    flops, perf, params = data[:, 0], data[:, 1], data[:, 2]
    complete = data[:, 3] > 0
    # An incomplete count is a lower bound on the FLOPs: it can neither sit on a front nor
    # push another point off one, and it has no baseline delta.
    on_flops = np.zeros(total, dtype=np.bool_)
    if complete.any():
        on_flops[complete] = front_mask(flops[complete], perf[complete])
    with_params = complete & ~np.isnan(params)
    on_params = np.zeros(total, dtype=np.bool_)
    if with_params.any():
        on_params[with_params] = front_mask(params[with_params], perf[with_params])

    # Rank (score desc, None last; then best performance; equal entries by submission id).
    current = [fresh[p.entry.submission_id][2] for p in parts]  # parts are by submission id
    ranked: list[TaskSubmissionEntry] = []
    points: list[PointEntry] = []
    final_start = np.zeros(len(parts), dtype=np.intp)
    for i, entry in _rank_order([p.sort_key for p in parts], current):
        part = parts[i]
        if entry is not current[i]:
            fresh[entry.submission_id] = (fresh[entry.submission_id][0], part, entry)
        ranked.append(entry)
        final_start[i] = len(points)
        points.extend(part.points)

    # The few points on a front, flagged in place (`points` is by rank; the arrays by id).
    starts = np.zeros(len(parts), dtype=np.intp)
    if parts:
        starts[1:] = np.cumsum(n_points)[:-1]
    flagged = np.flatnonzero(on_flops | on_params)
    owner = np.searchsorted(starts, flagged, side="right") - 1
    positions = final_start[owner] + (flagged - starts[owner])
    on_front: list[tuple[int, PointEntry]] = []
    for j, at in zip(flagged.tolist(), positions.tolist(), strict=True):
        point = replace(
            points[at], on_flops_front=bool(on_flops[j]), on_params_front=bool(on_params[j])
        )
        points[at] = point
        on_front.append((at, point))
    on_front.sort(key=lambda item: item[0])  # board order
    flops_front = sorted((p for _, p in on_front if p.on_flops_front), key=lambda p: p.flops_mean)
    params_front = sorted(
        (p for _, p in on_front if p.on_params_front), key=lambda p: p.params or 0
    )
    if shared:
        entry_memo.keep(memo_key, context, fresh)
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


@dataclass(frozen=True, slots=True)
class _OverallPart:
    """One submission's entry on the overall board, made from its own rows (and the curves)."""

    entry: OverallEntry  # rank as in the board it was last ranked on
    sort_key: tuple[float, int]


def _overall_part(
    session: Session,
    source: BoardSource,
    listed: SourceSubmission,
    tasks: Sequence[Task],
    curves: Sequence[_Curve | None],
    sub_points: Sequence[tuple[SourcePoint, ...] | None],
    sub_joints: Sequence[Joint | None],
    columns: Sequence[TaskColumn],
) -> tuple[_OverallPart | None, bool]:
    """One submission's entry (None: no point with a performance and FLOPs), and whether it
    depends only on its inputs (False when its interval was combined from stored replicates)."""
    sid = listed.id
    best_perf: dict[str, float] = {}
    incomplete: set[str] = set()
    point_params: list[int] = []
    scores: dict[str, float] = {}
    out_of_range: list[str] = []
    # per task: (task id, result ids, shift, interval) when the joint bootstrap matches the
    # scored points (shift: the fixed baseline terms, score - mean performance)
    boots: dict[str, tuple[int, frozenset[int], float, tuple[float, float]] | None] = {}
    baseline_for: list[str] = []
    for task, curve, pts, joint in zip(tasks, curves, sub_points, sub_joints, strict=True):
        if curve is not None and task.baseline_submission_id == sid:
            baseline_for.append(task.name)
        if pts is None:
            continue
        name = task.name
        complete: list[SourcePoint] = []
        for p in pts:
            if not (isfinite(p.flops) and isfinite(p.performance)):
                continue
            if p.incomplete:  # a lower bound: out of the ELUE score (flagged on the entry)
                incomplete.add(name)
                continue
            complete.append(p)
            if p.params is not None:
                point_params.append(p.params)
        if not complete:
            continue
        best_perf[name] = max(p.performance for p in complete)
        if curve is None:
            continue
        base = curve.at(np.array([p.flops for p in complete], dtype=np.float64)).tolist()
        deltas = [delta_from(p.performance, b) for p, b in zip(complete, base, strict=True)]
        score = scores[name] = math.fsum(deltas) / len(deltas)
        mean_perf = _mean([p.performance for p in complete])
        interval = _score_interval(joint, (p.result_id for p in complete), score, mean_perf)
        boots[name] = (
            (task.id, joint.result_ids, score - mean_perf, interval)
            if interval is not None and joint is not None
            else None
        )
        low, high = curve.curve.min_flops, curve.curve.max_flops
        if any(p.flops < low or p.flops > high for p in complete):
            out_of_range.append(name)
    if not best_perf and not incomplete:
        return None, True  # listed, but no point with a performance and FLOPs

    names = [c.name for c in columns]
    scored_tasks = [c.name for c in columns if c.has_baseline]
    overall = overall_score(scores, scored_tasks)
    ordered_best = {n: best_perf[n] for n in names if n in best_perf}
    pure = True
    overall_ci: tuple[float, float] | None = None
    found = [boots.get(name) for name in overall.per_task]
    kept_boots = [b for b in found if b is not None]
    if kept_boots and len(kept_boots) == len(found):
        shift = math.fsum(b[2] for b in kept_boots) / len(kept_boots)
        covered = {str(b[0]): b[1] for b in kept_boots}
        stored = source.intervals.get(sid)
        if stored is not None and stored[0] == covered:  # the usual case: no replicates read
            overall_ci = (stored[1] + shift, stored[2] + shift)
        else:
            # covered tasks differ from the scored ones (e.g. a task without a baseline)
            pure = False
            replicates = _replicates(session, sid, [b[0] for b in kept_boots])
            if len(replicates) == len(kept_boots):
                combined = combine_tasks(replicates, [b[2] for b in kept_boots])
                overall_ci = (combined.low, combined.high)
    label = (
        baseline_label(listed.kind, [dict(p.metrics) for p in source.submission_points(sid)])
        if baseline_for
        else None
    )
    entry = OverallEntry(
        rank=0,
        submission_id=sid,
        name=listed.name,
        kind=listed.kind,
        verified=listed.verified,
        self_reported=listed.kind == SubmissionKind.SELF_REPORTED.value,
        is_baseline=bool(baseline_for),
        baseline_for=tuple(baseline_for),
        baseline_label=label,
        params=listed.params
        if listed.params is not None
        else (max(point_params) if point_params else None),
        paper_url=listed.paper_url,
        code_url=listed.code_url,
        score=overall.average,
        task_scores=overall.per_task,
        tasks_covered=overall.tasks_covered,
        tasks_total=overall.tasks_total,
        out_of_range_tasks=tuple(out_of_range),
        best_performance=ordered_best,
        average_performance=_mean(list(ordered_best.values())) if ordered_best else None,
        incomplete_tasks=tuple(n for n in names if n in incomplete),
        owner=listed.owner,
        affiliation=listed.affiliation,
        submitted_at=listed.submitted_at,
        score_ci_low=overall_ci[0] if overall_ci else None,
        score_ci_high=overall_ci[1] if overall_ci else None,
        task_score_intervals={n: b[3] for n in overall.per_task if (b := boots.get(n)) is not None},
    )
    return _OverallPart(entry, overall_sort_key(overall)), pure


def _overall(session: Session, track: Track | None) -> OverallLeaderboard:
    if track is not None:
        # A track is a filter and re-ranking of the overall entries: reuse them (cached).
        full = overall_leaderboard(session, None, coverage="any")
        return _track_board(full, track)

    tasks = _ordered_tasks(session)
    source = sources.get(session)
    task_points = [source.points.get(t.id, {}) for t in tasks]
    # A task's curve: its baseline's complete points on it, while the baseline is listed.
    curves: list[_Curve | None] = []
    for task, per_sub in zip(tasks, task_points, strict=True):
        base_id = task.baseline_submission_id
        base_points = [
            (p.flops, p.performance)
            for p in (
                per_sub.get(base_id, ())
                if base_id is not None and base_id in source.submissions
                else ()
            )
            if isfinite(p.flops) and isfinite(p.performance) and not p.incomplete
        ]
        curves.append(_Curve.of(base_points) if base_points else None)
    columns = tuple(_column(t, c is not None) for t, c in zip(tasks, curves, strict=True))

    memo_key, shared = _memo_key(session, "overall")
    context = tuple(
        (t.id, t.name, t.baseline_submission_id, c.curve.points if c is not None else None)
        for t, c in zip(tasks, curves, strict=True)
    )
    kept = entry_memo.parts(memo_key, context)
    # submission id -> (inputs, None when the part read the database; part; ranked entry)
    fresh: dict[int, tuple[tuple[object, ...] | None, _OverallPart, OverallEntry]] = {}
    parts: list[_OverallPart] = []
    joints = source.joints
    task_ids = [t.id for t in tasks]
    getters = [per_sub.get for per_sub in task_points]
    intervals = source.intervals
    get_kept, add_part = kept.get, parts.append
    for sid, listed in sorted(source.submissions.items()):
        found = get_kept(sid)
        if found is not None and found[0] is not None and found[0][0] is listed:
            # Not read again since: its points, joints and interval are the same objects.
            fresh[sid] = found
            add_part(found[1])
            continue
        sub_points = tuple([get(sid) for get in getters])
        sub_joints = tuple(
            [
                joints.get((sid, tid)) if pts is not None else None
                for tid, pts in zip(task_ids, sub_points, strict=True)
            ]
        )
        inputs = (listed, sub_points, sub_joints, intervals.get(sid))
        if found is not None and found[0] == inputs:  # equal rows read again (a full read)
            fresh[sid] = found
            parts.append(found[1])
            continue
        part, pure = _overall_part(
            session, source, listed, tasks, curves, sub_points, sub_joints, columns
        )
        if part is None:
            continue
        fresh[sid] = (inputs if pure else None, part, part.entry)
        parts.append(part)

    # Ranked by ELUE score (`overall_sort_key`); equal keys stay by submission id.
    current = [fresh[p.entry.submission_id][2] for p in parts]
    entries: list[OverallEntry] = []
    for i, entry in _rank_order([p.sort_key for p in parts], current):
        if entry is not current[i]:
            fresh[entry.submission_id] = (fresh[entry.submission_id][0], parts[i], entry)
        entries.append(entry)
    if shared:
        entry_memo.keep(memo_key, context, fresh)
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
    return entry if entry.rank == rank else _with_rank(entry, rank)
