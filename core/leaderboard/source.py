"""The boards' source rows, held in memory per process and brought up to date incrementally.

Every board is computed from the same rows: the listed submissions (with their owner's name), their
points (results with a performance and FLOPs), and the stored score intervals. Reading them is
most of a board's cost at 100,000 submissions, so each process keeps them, filed under the board
version they were read at. When the version moves, the `board_changes` rows written by the bumps
since then (`core.models.board_version`) name the submissions that changed, and only those are
read again; a bump that names none ("anything may have changed": a task, a user, a bulk
statement), a log pruned past the held version, or a version the log does not know (a rollback,
a restored backup, another database) makes a full read instead. The rows of one submission are
replaced as a whole, so reading a submission twice is harmless; under read committed a row read
may be newer than the version it is filed under, and the bump that made it newer names it, so
the next update reads it again.

A session with uncommitted board changes (`LOCAL_KEY`) reads a source of its own, shared with no
one. `points` holds every row of `listed_point()` (non-finite values included: the boards skip
them as before), per task and submission, ordered by FLOPs then result id as the SQL orders them.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import and_, false, select
from sqlalchemy.orm import Session

from core.models import (
    BoardChange,
    Result,
    Submission,
    SubmissionState,
    SubmissionUncertainty,
    TaskUncertainty,
    User,
    Visibility,
)
from core.models.board_version import LOCAL_KEY, board_version

Version = tuple[int, int]
_CHUNK = 500  # ids per IN list
FULL_READ_FROM = 5_000  # changed submissions from which one full read is cheaper


@dataclass(frozen=True, slots=True)
class SourceSubmission:
    """A listed submission, as the boards show it."""

    id: int
    name: str
    kind: str
    verified: bool
    params: int | None
    paper_url: str | None
    code_url: str | None
    owner: str | None
    affiliation: str | None
    submitted_at: dt.datetime | None  # UTC, with its zone


@dataclass(frozen=True, slots=True)
class SourcePoint:
    """A listed submission's result with a performance and FLOPs (`listed_point()`)."""

    result_id: int
    submission_id: int
    task_id: int
    point: str
    performance: float
    metrics: dict[str, Any]  # shared with the boards' points: read-only
    flops: float
    p10: float | None
    p90: float | None
    params: int | None
    flops_elue: float | None
    incomplete: bool
    disagrees: bool
    verified: bool
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True, slots=True)
class Joint:
    """A submission's stored joint bootstrap on one task (`task_uncertainty`)."""

    result_ids: frozenset[int]
    ci_low: float | None
    ci_high: float | None


# submission id -> (task id -> result ids it was computed from, ci_low, ci_high)
OverallInterval = tuple[dict[str, frozenset[int]], float, float]


@dataclass(frozen=True, slots=True)
class BoardSource:
    """What the boards are computed from, as of `version`. Read-only: an update makes a new one."""

    version: Version
    submissions: Mapping[int, SourceSubmission]  # every listed submission
    points: Mapping[int, Mapping[int, tuple[SourcePoint, ...]]]  # task id -> submission id ->
    joints: Mapping[tuple[int, int], Joint]  # (submission id, task id) -> joint bootstrap
    intervals: Mapping[int, OverallInterval]  # submission id -> its stored overall interval

    def task_points(self, task_id: int) -> Iterator[SourcePoint]:
        """The task's points, by submission id, then FLOPs and result id (the boards' order)."""
        per_sub = self.points.get(task_id, {})
        for sid in sorted(per_sub):
            yield from per_sub[sid]

    def submission_points(self, submission_id: int) -> Iterator[SourcePoint]:
        for per_sub in self.points.values():
            yield from per_sub.get(submission_id, ())


def _listed() -> Any:
    return and_(
        Submission.visibility == Visibility.PUBLIC,
        Submission.hidden == false(),
        Submission.state == SubmissionState.DONE,
    )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # Stored times are UTC; SQLite hands them back without a zone.
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


_T = TypeVar("_T", bound=Hashable)


class _Same:
    """Equal values as one object (`same(value)`): a read's repeated strings and ids."""

    def __init__(self) -> None:
        self._seen: dict[Any, Any] = {}

    def __call__(self, value: _T) -> _T:
        return self._seen.setdefault(value, value)  # type: ignore[no-any-return]


def _chunks(ids: Iterable[int] | None) -> Iterator[list[int] | None]:
    if ids is None:
        yield None
        return
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _read_submissions(session: Session, ids: Iterable[int] | None) -> dict[int, SourceSubmission]:
    out: dict[int, SourceSubmission] = {}
    same = _Same()  # one object per distinct kind, owner name, affiliation
    for chunk in _chunks(ids):
        query = (
            select(
                Submission.id,
                Submission.name,
                Submission.kind,
                Submission.verified,
                Submission.params,
                Submission.paper_url,
                Submission.code_url,
                User.display_name,
                User.affiliation,
                Submission.created_at,
            )
            .outerjoin(User, User.id == Submission.owner_id)
            .where(_listed())
        )
        if chunk is not None:
            query = query.where(Submission.id.in_(chunk))
        # Unpacked by name: a Row's attribute access costs ~10x a tuple's (bench_recompute).
        for sid, name, kind, verified, params, paper, code, owner, aff, at in session.execute(
            query
        ):
            out[sid] = SourceSubmission(
                id=sid,
                name=name,
                kind=same(str(kind)),
                verified=verified,
                params=params,
                paper_url=paper,
                code_url=code,
                owner=same(owner),
                affiliation=same(aff),
                submitted_at=_utc(at),
            )
    return out


def _read_points(
    session: Session, ids: Iterable[int] | None
) -> dict[int, dict[int, tuple[SourcePoint, ...]]]:
    """task id -> submission id -> points, FLOPs then result id ascending."""
    grouped: dict[int, dict[int, list[SourcePoint]]] = defaultdict(lambda: defaultdict(list))
    # Memory (about 750,000 rows at 100,000 submissions): one object per distinct point label,
    # metric name and submission id instead of one per row.
    same = _Same()
    for chunk in _chunks(ids):
        query = (
            select(
                Result.id,
                Result.submission_id,
                Result.task_id,
                Result.point,
                Result.performance,
                Result.metrics,
                Result.flops_mean,
                Result.flops_p10,
                Result.flops_p90,
                Result.params,
                Result.flops_elue_mean,
                Result.cost_incomplete,
                Result.cost_disagrees,
                Result.verify_status,
                Result.ci_low,
                Result.ci_high,
            )
            .join(Submission, Submission.id == Result.submission_id)
            .where(Result.performance.is_not(None), Result.flops_mean > 0, _listed())
            .order_by(Result.task_id, Result.submission_id, Result.flops_mean, Result.id)
        )
        if chunk is not None:
            query = query.where(Result.submission_id.in_(chunk))
        for (
            rid,
            sid,
            tid,
            point,
            performance,
            metrics,
            flops,
            p10,
            p90,
            params,
            flops_elue,
            incomplete,
            disagrees,
            verify_status,
            ci_low,
            ci_high,
        ) in session.execute(query):
            sid = same(sid)
            grouped[tid][sid].append(
                SourcePoint(
                    result_id=rid,
                    submission_id=sid,
                    task_id=tid,
                    point=same(point),
                    performance=performance,
                    metrics={same(k): v for k, v in metrics.items()} if metrics else {},
                    flops=flops,
                    p10=p10,
                    p90=p90,
                    params=params,
                    flops_elue=flops_elue,
                    incomplete=bool(incomplete),
                    disagrees=bool(disagrees),
                    verified=verify_status == "verified",
                    ci_low=ci_low,
                    ci_high=ci_high,
                )
            )
    return {tid: {sid: tuple(p) for sid, p in subs.items()} for tid, subs in grouped.items()}


def _read_joints(session: Session, ids: Iterable[int] | None) -> dict[tuple[int, int], Joint]:
    out: dict[tuple[int, int], Joint] = {}
    for chunk in _chunks(ids):
        query = (
            select(
                TaskUncertainty.submission_id,
                TaskUncertainty.task_id,
                TaskUncertainty.result_ids,
                TaskUncertainty.ci_low,
                TaskUncertainty.ci_high,
            )
            .join(Submission, Submission.id == TaskUncertainty.submission_id)
            .where(_listed())
        )
        if chunk is not None:
            query = query.where(TaskUncertainty.submission_id.in_(chunk))
        for sid, tid, result_ids, low, high in session.execute(query):
            out[(sid, tid)] = Joint(frozenset(int(i) for i in result_ids or ()), low, high)
    return out


def _read_intervals(session: Session, ids: Iterable[int] | None) -> dict[int, OverallInterval]:
    out: dict[int, OverallInterval] = {}
    for chunk in _chunks(ids):
        query = (
            select(
                SubmissionUncertainty.submission_id,
                SubmissionUncertainty.tasks,
                SubmissionUncertainty.ci_low,
                SubmissionUncertainty.ci_high,
            )
            .join(Submission, Submission.id == SubmissionUncertainty.submission_id)
            .where(_listed())
        )
        if chunk is not None:
            query = query.where(SubmissionUncertainty.submission_id.in_(chunk))
        for sid, tasks, low, high in session.execute(query):
            out[sid] = (
                {str(k): frozenset(int(i) for i in v) for k, v in (tasks or {}).items()},
                low,
                high,
            )
    return out


def read_source(session: Session, version: Version) -> BoardSource:
    """Every source row, read afresh (the fallback, and the first read of a process)."""
    return BoardSource(
        version=version,
        submissions=_read_submissions(session, None),
        points=_read_points(session, None),
        joints=_read_joints(session, None),
        intervals=_read_intervals(session, None),
    )


def update_source(
    session: Session, old: BoardSource, version: Version, ids: set[int]
) -> BoardSource:
    """`old` with the rows of the submissions `ids` read again (gone when no longer listed)."""
    subs = dict(old.submissions)
    for sid in ids:
        subs.pop(sid, None)
    subs.update(_read_submissions(session, ids))
    fresh_points = _read_points(session, ids)
    points: dict[int, Mapping[int, tuple[SourcePoint, ...]]] = {}
    for tid in old.points.keys() | fresh_points.keys():
        per_sub = dict(old.points.get(tid, {}))
        for sid in ids:
            per_sub.pop(sid, None)
        per_sub.update(fresh_points.get(tid, {}))
        if per_sub:
            points[tid] = per_sub
    joints = {k: v for k, v in old.joints.items() if k[0] not in ids}
    joints.update(_read_joints(session, ids))
    intervals = {k: v for k, v in old.intervals.items() if k not in ids}
    intervals.update(_read_intervals(session, ids))
    return BoardSource(version, subs, points, joints, intervals)


def changed_since(session: Session, old: Version, new: Version) -> set[int] | None:
    """The submissions changed by the bumps after `old` up to `new`, from `board_changes`;
    None when the log cannot tell (a bump of anything, pruned or unknown versions)."""
    if old[0] >= new[0] or old[0] <= 0:
        return None
    rows = session.execute(
        select(BoardChange.version, BoardChange.nonce, BoardChange.submission_id).where(
            BoardChange.version >= old[0], BoardChange.version <= new[0]
        )
    ).all()
    nonces: dict[int, set[int]] = defaultdict(set)
    ids: set[int] = set()
    for r in rows:
        nonces[r.version].add(r.nonce)
        if r.version == old[0]:
            continue
        if r.submission_id is None:
            return None
        ids.add(r.submission_id)
    if nonces.get(old[0]) != {old[1]} or nonces.get(new[0]) != {new[1]}:
        return None
    if len(nonces) != new[0] - old[0] + 1 or any(len(n) != 1 for n in nonces.values()):
        return None
    return ids


class SourceHolder:
    """The latest source per database, updated in place of a full read when the log allows."""

    def __init__(self) -> None:
        self._held: dict[str, BoardSource] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.full_reads = 0
        self.updates = 0

    def get(self, session: Session, version: Version | None = None) -> BoardSource:
        """The source as of the session's committed board version (`version` when given), or,
        for a session with uncommitted board changes, a full read of what it sees."""
        if version is None:
            version = board_version(session)
        if LOCAL_KEY in session.info:
            return read_source(session, version)
        db = session.get_bind().engine.url.render_as_string(hide_password=True)
        with self._lock:
            lock = self._locks.setdefault(db, threading.Lock())
        with lock:
            held = self._held.get(db)
            if held is not None and held.version == version:
                return held
            ids = changed_since(session, held.version, version) if held is not None else None
            if held is None or ids is None or len(ids) >= FULL_READ_FROM:
                source = read_source(session, version)
                self.full_reads += 1
            else:
                source = update_source(session, held, version, ids)
                self.updates += 1
            if held is None or held.version[0] <= version[0]:
                self._held[db] = source
            return source

    def clear(self) -> None:
        with self._lock:
            self._held.clear()


sources = SourceHolder()
