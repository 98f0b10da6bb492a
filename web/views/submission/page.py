"""What a submission's page shows: its live state, its results, and where its costs come from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.leaderboard.service import baseline_label
from core.models import (
    FileRole,
    Result,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionState,
    Task,
    User,
    Visibility,
)
from core.submissions.access import is_admin, is_owner, sees_private_details
from core.submissions.manage import baseline_of
from core.submissions.queries import baseline_curves, read_submission
from core.submissions.schemas import SubmissionRead
from core.submissions.states import CostStatus, Stage
from web.views import format as fmt
from web.views.leaderboard import Badge
from web.views.submission.costs import cost_summaries
from web.views.submission.rows import (
    STAGE_TEXT,
    FileLink,
    Status,
    TaskResults,
    TimelineEntry,
    VerificationView,
    WeightsView,
    _delta_interval,
    _point_row,
    _status,
    _verification_view,
)
from web.views.submission_plot import OwnPlot, own_plots
from web.views.uncertainty import curve_text, diagnostics_json


@dataclass(frozen=True, slots=True)
class OwnerActions:
    """What the owner's forms on the page are filled with."""

    name: str
    description: str
    paper_url: str
    code_url: str
    public: bool
    self_reported: bool
    baseline_of: list[str]  # tasks it is the baseline of: it cannot be withdrawn


@dataclass
class SubmissionView:
    id: int
    name: str
    description: str
    owner: str | None
    kind: str
    badges: list[Badge]
    paper_url: str | None
    code_url: str | None
    tokenizer: str | None
    params: str
    params_title: str
    created: str
    status: Status
    results: list[TaskResults]
    api_url: str
    panel_url: str
    is_owner_view: bool  # owner or admin: log, files, full problems
    error_lines: list[str]
    error_is_list: bool
    sandbox_log: str | None
    files: list[FileLink]
    timeline: list[TimelineEntry]
    is_admin: bool
    hidden: bool
    rerunnable: bool
    baseline_tasks: list[str]  # tasks an admin can make this submission the baseline of
    notes: list[str] = field(default_factory=list)
    baseline_of: list[str] = field(default_factory=list)  # tasks whose baseline it is
    baseline_label: str | None = None  # e.g. "published performance, platform-counted cost"
    verification: VerificationView | None = None
    weights: list[WeightsView] = field(default_factory=list)
    plots: list[OwnPlot] = field(default_factory=list)  # its curve per task vs. the board
    owner_actions: OwnerActions | None = None  # the owner's forms (not withdrawn)


def _positions(session: Session, read: SubmissionRead) -> dict[int, str]:
    """Each point's place against its task's baseline range (as the task pages mark it)."""
    ids = [p.result_id for t in read.results for p in t.points]
    if not ids:
        return {}
    out: dict[int, str] = {}
    curves = baseline_curves(session)
    for rid, flops, task_id in session.execute(
        select(Result.id, Result.flops_mean, Result.task_id).where(Result.id.in_(ids))
    ):
        curve = curves.get(task_id)
        if curve is not None and flops:
            out[rid] = curve.position(flops)
    return out


def _files(session: Session, submission: Submission) -> list[FileLink]:
    rows = session.execute(
        select(SubmissionFile, Task.name)
        .outerjoin(Task, Task.id == SubmissionFile.task_id)
        .where(SubmissionFile.submission_id == submission.id)
        .order_by(SubmissionFile.id)
    ).all()
    gone = submission.state is SubmissionState.WITHDRAWN
    return [
        FileLink(
            role=f.role.value,
            name=f.original_name,
            task=task_name,
            point=f.point or None,
            size=fmt.size(f.size),
            url=None if gone else f"/submissions/{submission.id}/files/{f.id}",
        )
        for f, task_name in rows
    ]


def _baseline_candidates(session: Session, submission: Submission) -> list[str]:
    if (
        submission.state is not SubmissionState.DONE
        or submission.visibility is not Visibility.PUBLIC
        or submission.hidden
    ):
        return []
    return list(
        session.scalars(
            select(Task.name)
            .join(Result, Result.task_id == Task.id)
            .where(
                Result.submission_id == submission.id,
                Result.performance.is_not(None),
                Result.flops_mean > 0,
            )
            .distinct()
            .order_by(Task.name)
        )
    )


def submission_view(
    session: Session, submission: Submission, viewer: User | None
) -> SubmissionView:
    read = read_submission(session, submission, viewer)
    private = sees_private_details(submission, viewer)
    counted = [
        p.result_id for t in read.results for p in t.points if p.cost_status == CostStatus.COUNTED
    ]
    costs = cost_summaries(session, counted)
    positions = _positions(session, read)
    results = []
    for t in read.results:
        score = t.score  # the mean of the points' deltas (core.submissions.queries)
        results.append(
            TaskResults(
                task=t.task,
                display_name=t.display_name,
                url=f"/tasks/{t.task}",
                score=fmt.signed(score),
                points=tuple(
                    replace(
                        _point_row(p, costs.get(p.result_id), positions.get(p.result_id)),
                        performance_ci=fmt.interval(p.ci_low, p.ci_high),
                        delta_ci=_delta_interval(p),
                    )
                    for p in t.points
                ),
                score_ci=""
                if score is None
                else fmt.interval(t.score_ci_low, t.score_ci_high, signed_values=True),
                curve=curve_text(t.curve),
                diagnostics=diagnostics_json(
                    {k: v.model_dump() for k, v in t.exit_diagnostics.items()}
                )
                if t.exit_diagnostics
                else "",
            )
        )
    status = _status(read)
    detail = read.error_detail or ""
    error_lines = [line for line in detail.splitlines() if line.strip()]
    failed_validating = read.error is not None and read.error.failed_stage == Stage.VALIDATING
    badge_list: list[Badge] = []
    if submission.kind is SubmissionKind.SELF_REPORTED:
        scored = session.scalar(  # ELUE's Type 1: prediction files scored here
            select(SubmissionFile.id)
            .where(
                SubmissionFile.submission_id == submission.id,
                SubmissionFile.role == FileRole.PREDICTIONS,
            )
            .limit(1)
        )
        badge_list.append(
            Badge(
                "Self-reported",
                "self-reported",
                "Predictions scored here; FLOPs and parameters typed in by the submitter, not "
                "measured"
                if scored is not None
                else "Numbers typed in from a paper; not measured",
            )
        )
    else:
        badge_list.append(Badge("Measured", "measured", "Costs counted by the platform"))
    if submission.verified:
        badge_list.append(
            Badge(
                "Verified",
                "verified",
                "The platform ran the counted program with the submitted weights and got "
                "these predictions",
            )
        )
    baseline_tasks = baseline_of(session, submission)
    label = None
    if baseline_tasks:
        label = baseline_label(
            submission.kind.value,
            (
                dict(m or {})
                for m in session.scalars(
                    select(Result.metrics).where(Result.submission_id == submission.id)
                )
            ),
        )
        badge_list.insert(
            0,
            Badge(
                f"Baseline: {label}",
                "baseline",
                f"The baseline curve of {', '.join(baseline_tasks)} (ELUE score 0)",
            ),
        )
    if submission.visibility is Visibility.PRIVATE:
        badge_list.append(Badge("Private", "private", "Only you and administrators see it"))
    if submission.hidden:
        badge_list.append(Badge("Hidden", "hidden", "Taken off the public listings by an admin"))
    notes = []
    if submission.hidden and private:
        notes.append("An administrator hid this submission: it is not on any public listing.")
    if submission.visibility is Visibility.PRIVATE and private:
        notes.append("This submission is private: it is not listed, and only you see this page.")
    admin = is_admin(viewer)
    point_params = [p.params for t in read.results for p in t.points if p.params is not None]
    params = submission.params if submission.params is not None else max(point_params, default=None)
    weights = [
        WeightsView(
            file=w.file,
            task=w.task,
            size=fmt.size(w.size),
            size_title=f"{fmt.exact(w.size)} bytes",
            sha256=w.sha256,
            tensors=""
            if w.tensors is None
            else f"{w.tensors:,} tensor{'' if w.tensors == 1 else 's'}",
            elements="" if w.elements is None else fmt.params(w.elements),
        )
        for w in read.weights
    ]
    return SubmissionView(
        weights=weights,
        id=submission.id,
        name=submission.name,
        description=submission.description or "",
        owner=read.owner.display_name if read.owner else None,
        kind="self-reported" if submission.kind is SubmissionKind.SELF_REPORTED else "measured",
        badges=badge_list,
        paper_url=submission.paper_url,
        code_url=submission.code_url,
        tokenizer=submission.tokenizer_name,
        params=fmt.params(params),
        params_title=f"{fmt.exact(params)} parameters" if params else "",
        created=fmt.when(read.timings.created_at),
        status=status,
        results=results,
        api_url=read.url.replace("/submissions/", "/api/v1/submissions/", 1),
        panel_url=f"/submissions/{submission.id}/panel",
        is_owner_view=private,
        error_lines=error_lines,
        error_is_list=failed_validating,
        sandbox_log=read.sandbox_log,
        files=_files(session, submission) if private else [],
        timeline=[
            TimelineEntry(
                state=STAGE_TEXT.get(str(e.get("state")), str(e.get("state"))),
                at=_timeline_time(e.get("at")),
                message=str(e.get("message") or ""),
            )
            for e in (read.timeline or [])
            if isinstance(e, dict)
        ],
        is_admin=admin,
        hidden=submission.hidden,
        rerunnable=admin
        and submission.kind is SubmissionKind.MEASURED
        and submission.state is not SubmissionState.WITHDRAWN,
        baseline_tasks=_baseline_candidates(session, submission) if admin else [],
        notes=notes,
        verification=_verification_view(read),
        plots=own_plots(session, submission, read),
        owner_actions=_owner_actions(session, submission, viewer),
        baseline_of=baseline_tasks,
        baseline_label=label,
    )


def _owner_actions(
    session: Session, submission: Submission, viewer: User | None
) -> OwnerActions | None:
    if not is_owner(submission, viewer) or submission.state is SubmissionState.WITHDRAWN:
        return None
    return OwnerActions(
        name=submission.name,
        description=submission.description or "",
        paper_url=submission.paper_url or "",
        code_url=submission.code_url or "",
        public=submission.visibility is Visibility.PUBLIC,
        self_reported=submission.kind is SubmissionKind.SELF_REPORTED,
        baseline_of=baseline_of(session, submission),
    )


def _timeline_time(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return fmt.when(dt.datetime.fromisoformat(value))
    except ValueError:
        return value
