"""Reading submissions back: one submission with its results, pages of them, per-sample costs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from core.arrays import unpack_array
from core.db.base import utcnow
from core.errors import NotFoundError
from core.leaderboard.cache import cache
from core.leaderboard.service import curve_entry, listed_point, listed_submission
from core.models import (
    FileRole,
    Result,
    ResultCost,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionState,
    SubmissionWeights,
    Task,
    TaskUncertainty,
    User,
    Visibility,
)
from core.paging import Window
from core.ranking.score import BaselineCurve, CurvePoint, baseline_delta
from core.settings import Settings, get_settings
from core.submissions import cost_queue
from core.submissions.access import sees_private_details
from core.submissions.schemas import (
    CostQueueRead,
    CostsRead,
    CurveSummaryRead,
    ErrorRead,
    ExitDiagnosticsRead,
    FileRead,
    FlopsRead,
    LatencyRead,
    OwnerRead,
    PointRead,
    PointVerificationRead,
    StageRead,
    SubmissionPage,
    SubmissionRead,
    SubmissionSummary,
    TaskResultsRead,
    TimingsRead,
    VerificationRead,
    WeightsRead,
)
from core.submissions.state import stage_index
from core.submissions.states import CostStatus

ACTIVE = (
    SubmissionState.QUEUED,
    SubmissionState.VALIDATING,
    SubmissionState.SCORING,
    SubmissionState.COUNTING,
)
HAPPY_PATH = 5  # queued, validating, scoring, counting, done
API = "/api/v1"


def page_url(submission_id: int) -> str:
    return f"/submissions/{submission_id}"


def api_url(submission_id: int) -> str:
    return f"{API}/submissions/{submission_id}"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC


def queue_position(session: Session, submission: Submission) -> int | None:
    """How many active submissions are ahead of this one in its stage (None when not active)."""
    if submission.state not in ACTIVE:
        return None
    ahead = session.scalar(
        select(func.count(Submission.id)).where(
            Submission.state == submission.state,
            or_(
                Submission.state_changed_at < submission.state_changed_at,
                and_(
                    Submission.state_changed_at == submission.state_changed_at,
                    Submission.id < submission.id,
                ),
            ),
        )
    )
    return int(ahead or 0)


def _owner(session: Session, owner_id: int | None) -> OwnerRead | None:
    if owner_id is None:
        return None
    user = session.get(User, owner_id)
    return None if user is None else OwnerRead(id=user.id, display_name=user.display_name)


def baseline_curve(session: Session, task: Task) -> BaselineCurve | None:
    """The task's baseline curve, when it has a listed baseline with points (as the boards do)."""
    if task.baseline_submission_id is None:
        return None
    points = session.execute(
        select(Result.flops_mean, Result.performance)
        .join(Submission, Submission.id == Result.submission_id)
        .where(
            Result.submission_id == task.baseline_submission_id,
            Result.task_id == task.id,
            listed_submission(),
            listed_point(),
        )
    ).all()
    try:
        curve = [
            CurvePoint(flops=float(f), performance=float(p))
            for f, p in points
            if f is not None and p is not None
        ]
        return BaselineCurve(curve) if curve else None
    except ValueError:  # a non-finite stored value: no curve rather than a crash
        return None


def _point(result: Result, curve: BaselineCurve | None = None) -> PointRead:
    self_reported = result.cost_status == CostStatus.SELF_REPORTED
    return PointRead(
        result_id=result.id,
        point=result.point,
        performance=result.performance,
        metrics=dict(result.metrics or {}),
        baseline_delta=baseline_delta(
            result.performance, result.flops_mean, curve, incomplete=result.cost_incomplete
        ),
        flops=FlopsRead(
            mean=result.flops_mean,
            median=result.flops_median,
            p10=result.flops_p10,
            p90=result.flops_p90,
            max=result.flops_max,
            macs_mean=result.macs_mean,
            elue_mean=result.flops_elue_mean,
            incomplete=result.cost_incomplete,
            disagrees=result.cost_disagrees,
            counter_version=result.counter_version,
            rule_hash=result.rule_hash,
        ),
        params=result.params,
        cost_status=result.cost_status,
        self_reported=self_reported,
        costs_url=(
            f"{api_url(result.submission_id)}/costs/{result.id}"
            if result.cost_status == CostStatus.COUNTED
            else None
        ),
        verified=result.verify_status == "verified",
        verification=_point_verification(result),
        ci_low=result.ci_low,
        ci_high=result.ci_high,
    )


def _point_verification(result: Result) -> PointVerificationRead | None:
    if result.verify_status is None:
        return None
    v = dict(result.verification or {})
    latency = v.get("latency")
    return PointVerificationRead(
        status=result.verify_status,
        agreement=result.verify_agreement,
        n=v.get("n"),
        disagree=v.get("disagree"),
        threshold=float(v.get("threshold", 0.995)),
        message=v.get("message"),
        first_diffs=list(v.get("first_diffs") or []),
        latency=LatencyRead.model_validate(latency) if isinstance(latency, dict) else None,
    )


def _verification(submission: Submission, private: bool) -> VerificationRead | None:
    v = submission.verification
    if not isinstance(v, dict):
        return None
    return VerificationRead(
        status=str(v.get("status", "not_verified")),
        hardware=v.get("hardware"),
        peak_memory_bytes=v.get("peak_memory_bytes"),
        seconds=v.get("seconds"),
        error=v.get("error"),
        problems=list(v.get("problems") or []) if private else [],
        weights=dict(v.get("weights") or {}),
    )


def baseline_curves(session: Session) -> dict[int, BaselineCurve | None]:
    """Every task's `baseline_curve` by task id, kept in the leaderboard cache under the board
    version (a baseline's points and a task's baseline are board changes): for read paths."""
    return cache.get(
        session,
        ("baseline-curves",),
        lambda s: {task.id: baseline_curve(s, task) for task in s.scalars(select(Task))},
    )


def results_of(session: Session, submission: Submission) -> list[TaskResultsRead]:
    """Per task (in display order), its points with metrics, baseline delta and cost summary."""
    rows = session.execute(
        select(Result, Task)
        .join(Task, Task.id == Result.task_id)
        .where(Result.submission_id == submission.id)
        # points by cost (the order of a curve), uncounted ones after, then by name
        .order_by(
            Task.position, Task.name, Result.flops_mean.is_(None), Result.flops_mean, Result.point
        )
    ).all()
    grouped: dict[int, TaskResultsRead] = {}
    curves = baseline_curves(session) if rows else {}
    for result, task in rows:
        entry = grouped.setdefault(
            task.id, TaskResultsRead(task=task.name, display_name=task.display_name, points=[])
        )
        entry.points.append(_point(result, curves[task.id]))
    for task_id, entry in grouped.items():
        _task_summary(session, submission.id, task_id, entry, curves[task_id])
    return list(grouped.values())


def _task_summary(
    session: Session,
    submission_id: int,
    task_id: int,
    entry: TaskResultsRead,
    curve: BaselineCurve | None,
) -> None:
    """The task score with its interval, the curve summary and exit diagnostics of `entry`."""
    joint = session.get(TaskUncertainty, (submission_id, task_id))
    if joint is not None:
        entry.exit_diagnostics = {
            point: ExitDiagnosticsRead.model_validate(d)
            for point, d in (joint.diagnostics or {}).items()
        }
    deltas = [p.baseline_delta for p in entry.points if p.baseline_delta is not None]
    if not deltas or len(deltas) != len(entry.points) or curve is None:
        return
    entry.score = float(np.mean(deltas))
    perfs = [p.performance for p in entry.points if p.performance is not None]
    if (
        joint is not None
        and joint.ci_low is not None
        and joint.ci_high is not None
        and set(joint.result_ids or ()) == {p.result_id for p in entry.points}
        and len(perfs) == len(entry.points)
    ):
        shift = entry.score - float(np.mean(perfs))  # the fixed baseline terms
        entry.score_ci_low, entry.score_ci_high = joint.ci_low + shift, joint.ci_high + shift
    points = [
        CurvePoint(flops=p.flops.mean, performance=p.performance)
        for p in entry.points
        if p.flops.mean and p.performance is not None
    ]
    if points:
        # the same summary the task board shows for the entry
        entry.curve = CurveSummaryRead(**dataclasses.asdict(curve_entry(points, curve.points)))


def _files(session: Session, submission: Submission) -> list[FileRead]:
    rows = session.execute(
        select(SubmissionFile, Task.name)
        .outerjoin(Task, Task.id == SubmissionFile.task_id)
        .where(SubmissionFile.submission_id == submission.id)
        .order_by(SubmissionFile.id)
    ).all()
    return [
        FileRead(
            role=f.role.value,
            name=f.original_name,
            task=task_name,
            point=f.point,
            size=f.size,
            sha256=f.sha256,
        )
        for f, task_name in rows
    ]


def read_weights(session: Session, submission: Submission) -> list[WeightsRead]:
    """The submission's weights files (one for every task, or one per task), with what each
    holds when it was listed at upload."""
    rows = session.execute(
        select(SubmissionFile, Task.name, SubmissionWeights)
        .outerjoin(Task, Task.id == SubmissionFile.task_id)
        .outerjoin(SubmissionWeights, SubmissionWeights.file_id == SubmissionFile.id)
        .where(
            SubmissionFile.submission_id == submission.id,
            SubmissionFile.role == FileRole.WEIGHTS,
        )
        .order_by(Task.name.is_not(None), Task.name, SubmissionFile.id)
    ).all()
    return [
        WeightsRead(
            file=file.original_name,
            task=task_name,
            size=file.size,
            sha256=file.sha256,
            tensors=listing.tensor_count if listing is not None else None,
            elements=listing.element_count if listing is not None else None,
        )
        for file, task_name, listing in rows
    ]


def read_submission(
    session: Session,
    submission: Submission,
    viewer: User | None,
    *,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
) -> SubmissionRead:
    """Everything a viewer may see about a submission (owner-only parts for owner and admins)."""
    now = now or utcnow()
    place = cost_queue.position(session, submission, settings or get_settings())
    cost_place = (
        None
        if place is None
        else CostQueueRead(
            state=place.state.value,
            ahead=place.ahead,
            estimated_wait_seconds=(
                None
                if place.estimated_wait_seconds is None
                else round(place.estimated_wait_seconds, 1)
            ),
            recent_jobs=place.recent_jobs,
            jobs_per_user=place.jobs_per_user,
        )
    )
    created = _aware(submission.created_at)
    assert created is not None
    started = _aware(submission.started_at)
    finished = _aware(submission.finished_at)
    begin = started or created
    elapsed = ((finished or now) - begin).total_seconds()
    private = sees_private_details(submission, viewer)
    failed = submission.state is SubmissionState.FAILED
    index = stage_index(submission.state) + 1
    return SubmissionRead(
        id=submission.id,
        url=page_url(submission.id),
        name=submission.name,
        description=submission.description,
        paper_url=submission.paper_url,
        code_url=submission.code_url,
        kind=submission.kind,
        self_reported=submission.kind is SubmissionKind.SELF_REPORTED,
        visibility=submission.visibility,
        hidden=submission.hidden,
        verified=submission.verified,
        verification=_verification(submission, private),
        owner=_owner(session, submission.owner_id),
        tokenizer_name=submission.tokenizer_name,
        params=submission.params,
        state=submission.state,
        stage=StageRead(
            name=submission.state.value,
            index=index if index <= HAPPY_PATH else 0,
            total=HAPPY_PATH,
        ),
        state_message=submission.state_message,
        queue_position=(
            queue_position(session, submission) if cost_place is None else cost_place.ahead
        ),
        cost_queue=cost_place,
        timings=TimingsRead(
            created_at=created,
            started_at=started,
            finished_at=finished,
            elapsed_seconds=round(max(elapsed, 0.0), 3),
        ),
        results=_owner_view(results_of(session, submission), private),
        error=(
            ErrorRead(
                failed_stage=submission.failed_stage,
                message=submission.state_message,
                fault=submission.fault,
            )
            if failed
            else None
        ),
        weights=read_weights(session, submission),
        error_detail=submission.error_detail if private else None,
        sandbox_log=submission.sandbox_log if private else None,
        files=_files(session, submission) if private else None,
        timeline=list(submission.timeline or []) if private else None,
    )


def _owner_view(results: list[TaskResultsRead], private: bool) -> list[TaskResultsRead]:
    """Which samples differ from the platform's run: the owner's and administrators' only."""
    if not private:
        for task in results:
            for point in task.points:
                if point.verification is not None:
                    point.verification.first_diffs = None
    return results


def _task_names(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    names: dict[int, set[tuple[int, str]]] = defaultdict(set)
    if not ids:
        return {}
    for sid, position, name in session.execute(
        select(SubmissionFile.submission_id, Task.position, Task.name)
        .join(Task, Task.id == SubmissionFile.task_id)
        .where(SubmissionFile.submission_id.in_(ids))
    ):
        names[sid].add((position, name))
    for sid, position, name in session.execute(
        select(Result.submission_id, Task.position, Task.name)
        .join(Task, Task.id == Result.task_id)
        .where(Result.submission_id.in_(ids))
    ):
        names[sid].add((position, name))
    return {sid: [n for _, n in sorted(v)] for sid, v in names.items()}


def list_submissions(
    session: Session,
    *,
    owner: User | None,
    task: Task | None = None,
    kind: SubmissionKind | None = None,
    page: int = 1,
    per_page: int = 20,
    window: Window | None = None,
) -> SubmissionPage:
    """The owner's own submissions (`owner` given), else public, listed ones; newest first.

    `window` (offset and limit) replaces `page` / `per_page` when given."""
    window = window or Window.of_page(page, per_page)
    conditions = [Submission.state != SubmissionState.WITHDRAWN]
    if owner is not None:
        conditions.append(Submission.owner_id == owner.id)
    else:
        conditions += [Submission.visibility == Visibility.PUBLIC, Submission.hidden.is_(False)]
    if kind is not None:
        conditions.append(Submission.kind == kind)
    if task is not None:
        conditions.append(
            or_(
                exists(
                    select(SubmissionFile.id).where(
                        SubmissionFile.submission_id == Submission.id,
                        SubmissionFile.task_id == task.id,
                        SubmissionFile.role == FileRole.PREDICTIONS,
                    )
                ),
                exists(
                    select(Result.id).where(
                        Result.submission_id == Submission.id, Result.task_id == task.id
                    )
                ),
            )
        )
    total = session.scalar(select(func.count(Submission.id)).where(*conditions)) or 0
    subs = session.scalars(
        select(Submission)
        .where(*conditions)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .offset(window.offset)
        .limit(window.limit)
    ).all()
    tasks = _task_names(session, [s.id for s in subs])
    owners = {
        u.id: OwnerRead(id=u.id, display_name=u.display_name)
        for u in session.scalars(
            select(User).where(User.id.in_({s.owner_id for s in subs if s.owner_id is not None}))
        )
    }
    items = [
        SubmissionSummary(
            id=s.id,
            url=page_url(s.id),
            name=s.name,
            kind=s.kind,
            self_reported=s.kind is SubmissionKind.SELF_REPORTED,
            visibility=s.visibility,
            hidden=s.hidden,
            owner=owners.get(s.owner_id) if s.owner_id is not None else None,
            state=s.state,
            tasks=tasks.get(s.id, []),
            created_at=_aware(s.created_at) or s.created_at,
            finished_at=_aware(s.finished_at),
        )
        for s in subs
    ]
    return SubmissionPage(
        items=items,
        total=int(total),
        offset=window.offset,
        limit=window.limit,
        page=window.page,
        per_page=window.limit,
    )


def read_costs(session: Session, submission: Submission, result_id: int) -> CostsRead:
    """Per-sample FLOPs and the breakdowns of one of the submission's results."""
    row = session.execute(
        select(Result, Task.name)
        .join(Task, Task.id == Result.task_id)
        .where(Result.id == result_id, Result.submission_id == submission.id)
    ).first()
    if row is None:
        raise NotFoundError(f"Submission {submission.id} has no result {result_id}")
    result, task_name = row
    cost = session.get(ResultCost, result.id)
    if cost is None:
        why = (
            "is self-reported: nothing was measured"
            if result.cost_status == CostStatus.SELF_REPORTED
            else "has not been counted yet"
        )
        raise NotFoundError(f"Result {result_id} {why}")
    values = unpack_array(cost.flops)
    if values.dtype.kind == "f":
        values = np.rint(values)
    elue = unpack_array(cost.flops_elue) if cost.flops_elue is not None else None
    details = dict(cost.details or {})
    return CostsRead(
        submission_id=submission.id,
        result_id=result.id,
        task=task_name,
        point=result.point,
        n=cost.n,
        flops=[int(v) for v in values.astype(np.int64).tolist()],
        flops_elue=[int(v) for v in np.rint(elue).astype(np.int64).tolist()]
        if elue is not None
        else None,
        incomplete_operators=[str(op) for op in details.get("incomplete", [])],
        per_operator=dict(cost.per_operator or {}),
        per_module=dict(cost.per_module or {}),
        uncounted=dict(cost.uncounted or {}),
        mismatches=list(cost.mismatches or []),
        details=details,
    )
