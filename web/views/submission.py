"""What a submission's page shows: its live state, its results, and where its costs come from.

The per-sample costs of a result are summarised once (histogram bins, sorted breakdowns) and
the summary is kept in a small in-process LRU keyed by the result's id and `updated_at`, so a
page view does not unpack per-sample arrays again until the result changes.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.arrays import unpack_array
from core.leaderboard.service import baseline_label
from core.models import (
    FileRole,
    Result,
    ResultCost,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionState,
    Task,
    User,
    Visibility,
)
from core.ranking.score import BaselineCurve
from core.submissions.access import is_admin, is_owner, sees_private_details
from core.submissions.manage import baseline_of
from core.submissions.queries import baseline_curve, read_submission
from core.submissions.schemas import CostQueueRead, PointRead, SubmissionRead
from core.submissions.state import PIPELINE_STAGES
from web.views import format as fmt
from web.views.leaderboard import Badge
from web.views.submission_plot import OwnPlot, own_plots
from web.views.uncertainty import CurveText, curve_text, diagnostics_json

STAGES = tuple(stage.value for stage in PIPELINE_STAGES)
STAGE_TEXT = {
    "queued": "Queued",
    "validating": "Validating files",
    "scoring": "Scoring predictions",
    "counting": "Counting FLOPs",
    "done": "Done",
    "failed": "Failed",
    "withdrawn": "Withdrawn",
}
BINS = 30
BREAKDOWN_ROWS = 25


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


# --- cost summaries (cached) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    x: float  # svg coordinates (viewBox 0 0 600 160)
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Histogram:
    bars: tuple[Bar, ...]
    low: str
    high: str
    peak: int
    label: str  # the accessible description


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    name: str
    value: str  # per sample
    share: float  # percent of the largest / of the total, for the bar
    share_text: str


@dataclass(frozen=True, slots=True)
class CostSummary:
    n: str
    stats: tuple[tuple[str, str], ...]  # (label, value): min, p10, median, mean, p90, max
    histogram: Histogram | None
    per_module: tuple[BreakdownRow, ...]
    per_operator: tuple[BreakdownRow, ...]
    uncounted: tuple[BreakdownRow, ...]
    mismatches: tuple[tuple[str, str, str], ...]  # (index, declared, tokenized)
    mismatch_count: str
    checks: tuple[str, ...]  # plain sentences: cross-check, content dependence, notes
    problems: tuple[str, ...]  # things a reader should not miss (shown as warnings)


_WIDTH, _HEIGHT = 600.0, 160.0


def _histogram(values: np.ndarray) -> Histogram | None:
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if low == high:
        counts = np.array([values.size])
        edges = np.array([low, high])
    else:
        counts, edges = np.histogram(values, bins=BINS)
    peak = int(counts.max())
    slot = _WIDTH / len(counts)
    bars = []
    for i, count in enumerate(counts.tolist()):
        height = 0.0 if peak == 0 else _HEIGHT * count / peak
        lo, hi = float(edges[i]), float(edges[i + 1])
        span = fmt.flops(lo) if lo == hi else f"{fmt.flops(lo)} to {fmt.flops(hi)}"
        bars.append(
            Bar(
                x=round(i * slot + 0.5, 2),
                y=round(_HEIGHT - height, 2),
                width=round(max(slot - 1.0, 1.0), 2),
                height=round(height, 2),
                title=f"{span}: {count:,} sample{'s' if count != 1 else ''}",
            )
        )
    label = (
        f"Histogram of FLOPs per sample over {values.size:,} samples, from {fmt.flops(low)} to "
        f"{fmt.flops(high)}; the tallest bar holds {peak:,} samples."
    )
    return Histogram(tuple(bars), fmt.flops(low), fmt.flops(high), peak, label)


def _breakdown(
    values: Mapping[str, Any], unit: str, *, of_total: float | None
) -> tuple[BreakdownRow, ...]:
    items = [(str(k), float(v)) for k, v in values.items() if isinstance(v, int | float)]
    items.sort(key=lambda kv: -kv[1])
    largest = items[0][1] if items else 0.0
    whole = of_total if of_total else largest
    rows = []
    for name, value in items[:BREAKDOWN_ROWS]:
        share = fmt.percent(value, whole)
        rows.append(
            BreakdownRow(
                name=name or "(whole model)",
                value=f"{fmt.si(value)}{unit}".strip(),
                share=round(share, 1),
                share_text=f"{share:.1f}%" if of_total else "",
            )
        )
    return tuple(rows)


def summarise_cost(cost: ResultCost, flops_mean: float | None) -> CostSummary:
    """Histogram and breakdowns of one result's per-sample costs."""
    values = unpack_array(cost.flops).astype(np.float64)
    stats: tuple[tuple[str, str], ...] = ()
    if values.size:
        p10, median, p90 = np.percentile(values, [10, 50, 90]).tolist()
        stats = (
            ("min", fmt.flops(float(values.min()))),
            ("p10", fmt.flops(p10)),
            ("median", fmt.flops(median)),
            ("mean", fmt.flops(float(values.mean()))),
            ("p90", fmt.flops(p90)),
            ("max", fmt.flops(float(values.max()))),
        )
    details = dict(cost.details or {})
    total = flops_mean if flops_mean and flops_mean > 0 else None
    module_values = {k: v for k, v in (cost.per_module or {}).items() if k}  # "" is the total
    checks: list[str] = []
    problems: list[str] = []
    if details.get("counter_version"):
        checks.append(
            f"Counted by the trusted counter {details['counter_version']} (rule table "
            f"{str(details.get('rule_hash') or '')[:12]}): the graph was captured in the sandbox "
            "and every number was computed outside it."
        )
    else:
        problems.append(
            "Counted by the first counter (in the sandbox, with the model): run "
            "`paretoboard recount`."
        )
    if details.get("polynomial"):
        checks.append(f"FLOPs as a function of the length L: {details['polynomial']}.")
    elue = details.get("flops_elue_mean")
    if isinstance(elue, int | float) and total:
        checks.append(
            f"ELUE convention (products + LayerNorm): {fmt.flops(float(elue))} per sample "
            f"({fmt.percent(float(elue), total):.1f}% of the FLOPs shown)."
        )
    raw_cross = details.get("cross_check")
    cross: dict[str, Any] = raw_cross if isinstance(raw_cross, dict) else {}
    points = [p for p in cross.get("points", []) if isinstance(p, dict)]
    if details.get("cross_check_agrees") is True and points:
        checks.append("fvcore, counting the same graph, agrees within 1% (ELUE convention).")
    elif details.get("cross_check_agrees") is False and points:
        p0 = points[0]
        problems.append(
            f"fvcore, counting the same graph at {p0.get('length')} tokens, finds "
            f"{fmt.flops(float(p0.get('fvcore', 0)))} against the rules' "
            f"{fmt.flops(float(p0.get('rules', 0)))} (ELUE convention): they differ by more "
            "than 1%, and the larger number is the one published."
        )
    elif cross.get("skipped"):
        problems.append(f"No fvcore cross-check: {cross['skipped']}.")
    incomplete = [str(op) for op in details.get("incomplete") or []]
    if incomplete:
        problems.append(
            "Incomplete count: no cost rule covers "
            + ", ".join(incomplete[:10])
            + ". The FLOPs shown are a lower bound; the point is kept off the Pareto fronts "
            "and out of the ELUE score."
        )
    if details.get("recount_failed"):
        problems.append(str(details["recount_failed"]))
    if details.get("kind"):
        checks.append(f"Counted as: {details['kind']}.")
    for note in details.get("notes") or []:
        problems.append(str(note))
    mismatch_count = int(details.get("mismatch_count") or len(cost.mismatches or []))
    if mismatch_count:
        problems.append(
            f"{mismatch_count:,} sample(s) declare a length in their module path that differs "
            "from the tokenized length."
        )
    uncounted = dict(cost.uncounted or {})
    if uncounted:
        problems.append(
            f"{len(uncounted)} operator(s) have no cost rule; they are listed below with the "
            "number of elements they produce per sample."
        )
    mismatches = tuple(
        (str(m.get("index", "")), str(m.get("declared", "")), str(m.get("tokenized", "")))
        for m in (cost.mismatches or [])
        if isinstance(m, dict)
    )
    return CostSummary(
        n=f"{int(cost.n):,}",
        stats=stats,
        histogram=_histogram(values),
        per_module=_breakdown(module_values, "FLOPs", of_total=total),
        per_operator=_breakdown(dict(cost.per_operator or {}), "FLOPs", of_total=total),
        uncounted=_breakdown(uncounted, "", of_total=None),
        mismatches=mismatches,
        mismatch_count=f"{mismatch_count:,}",
        checks=tuple(checks),
        problems=tuple(problems),
    )


class _SummaryCache:
    """An LRU of cost summaries keyed by (result id, result updated_at)."""

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: OrderedDict[tuple[int, str], CostSummary] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: tuple[int, str]) -> CostSummary | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple[int, str], value: CostSummary) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


summaries = _SummaryCache()


def cost_summaries(session: Session, result_ids: Iterable[int]) -> dict[int, CostSummary]:
    """Summaries of the given counted results (cached; per-sample arrays read on a miss only)."""
    ids = list(result_ids)
    if not ids:
        return {}
    stamps = {
        rid: (str(updated), mean)
        for rid, updated, mean in session.execute(
            select(Result.id, Result.updated_at, Result.flops_mean).where(Result.id.in_(ids))
        )
    }
    out: dict[int, CostSummary] = {}
    missing = []
    for rid, (stamp, _) in stamps.items():
        cached = summaries.get((rid, stamp))
        if cached is None:
            missing.append(rid)
        else:
            out[rid] = cached
    if missing:
        for cost in session.scalars(select(ResultCost).where(ResultCost.result_id.in_(missing))):
            stamp, mean = stamps[cost.result_id]
            summary = summarise_cost(cost, mean)
            summaries.put((cost.result_id, stamp), summary)
            out[cost.result_id] = summary
    return out


# --- the page ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageStep:
    name: str
    label: str
    status: str  # done | current | todo | failed


@dataclass(frozen=True, slots=True)
class Status:
    state: str
    label: str
    final: bool
    failed: bool
    steps: tuple[StageStep, ...]
    message: str
    queue: str | None
    elapsed: str
    elapsed_seconds: float
    started: str
    finished: str
    error_stage: str | None
    error_fault: str | None


@dataclass(frozen=True, slots=True)
class PointRow:
    result_id: int
    point: str
    performance: str
    components: str
    delta: str
    position: str | None
    flops_mean: str
    flops_title: str
    flops_range: str
    params: str
    params_title: str
    cost_status: str
    cost: CostSummary | None
    verify: str = ""  # "" without weights (docs/verification.md)
    verify_kind: str = ""  # css: verified | not-reproduced | not-verified
    verify_diffs: str = ""  # owner: the first differing sample indexes
    latency: str = ""  # batch-1 median on the verification hardware
    performance_ci: str = ""  # 95% bootstrap interval ("—": not computed)
    delta_ci: str = ""  # the same interval, less the baseline (a fixed reference)


@dataclass(frozen=True, slots=True)
class VerificationView:
    status: str  # a sentence
    kind: str
    hardware: str
    peak_memory: str
    seconds: str
    problems: list[str]  # owner: weights vs graph mismatches
    error: str | None


@dataclass(frozen=True, slots=True)
class TaskResults:
    task: str
    display_name: str
    url: str
    score: str
    points: tuple[PointRow, ...]
    score_ci: str = ""  # 95% interval of the task score ("—": not computed)
    curve: CurveText | None = None
    diagnostics: str = ""  # exit-layer diagnostics as embeddable JSON ("" for none)


@dataclass(frozen=True, slots=True)
class FileLink:
    role: str
    name: str
    task: str | None
    point: str | None
    size: str
    url: str | None  # None when its bytes are gone (withdrawn)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    state: str
    at: str
    message: str


@dataclass(frozen=True, slots=True)
class WeightsView:
    file: str
    task: str | None
    size: str
    size_title: str
    sha256: str
    tensors: str
    elements: str


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


def _status(read: SubmissionRead) -> Status:
    state = read.state.value
    failed = read.state is SubmissionState.FAILED
    failed_at = (read.error.failed_stage if read.error else None) or ""
    steps = []
    reached = STAGES.index(state) if state in STAGES else -1
    if failed and failed_at in STAGES:
        reached = STAGES.index(failed_at)
    for i, name in enumerate(STAGES):
        if failed and i == reached:
            status = "failed"
        elif failed and i > reached:
            status = "todo"
        elif i < reached or state == "done":
            status = "done"
        elif i == reached:
            status = "current"
        else:
            status = "todo"
        steps.append(StageStep(name, STAGE_TEXT[name], status))
    queue = None
    if read.cost_queue is not None:
        queue = _cost_queue_text(read.cost_queue)
    elif read.queue_position is not None:
        ahead = read.queue_position
        queue = (
            "next in line"
            if ahead == 0
            else f"{ahead:,} submission{'s' if ahead != 1 else ''} ahead in this stage"
        )
    elapsed = read.timings.elapsed_seconds or 0.0
    return Status(
        state=state,
        label=STAGE_TEXT.get(state, state),
        final=read.state.is_final,
        failed=failed,
        steps=tuple(steps),
        message=read.state_message,
        queue=queue,
        elapsed=fmt.duration(elapsed),
        elapsed_seconds=elapsed,
        started=fmt.when(read.timings.started_at),
        finished=fmt.when(read.timings.finished_at),
        error_stage=STAGE_TEXT.get(failed_at, failed_at) if failed else None,
        error_fault=(read.error.fault if read.error else None),
    )


def _cost_queue_text(place: CostQueueRead) -> str:
    """ "3 cost jobs ahead (queued or running); estimated wait about 4 min (median of 20 jobs)"."""
    ahead = place.ahead
    if place.state == "waiting":
        where = (
            f"waiting for one of your {place.jobs_per_user} queued or running cost jobs to "
            f"finish (each user's share of the cost queue); about {ahead:,} cost "
            f"job{'s' if ahead != 1 else ''} ahead"
        )
    elif ahead == 0:
        where = "next in the cost queue (or running)"
    else:
        where = f"{ahead:,} cost job{'s' if ahead != 1 else ''} ahead in the cost queue"
    if place.estimated_wait_seconds is None:
        return f"{where}; no wait estimate yet (no cost job has finished)"
    return (
        f"{where}; estimated wait about {fmt.duration(place.estimated_wait_seconds)} "
        f"(median of the last {place.recent_jobs} cost "
        f"job{'s' if place.recent_jobs != 1 else ''})"
    )


def _components(metrics: Mapping[str, Any]) -> str:
    parts = []
    for key, value in metrics.items():
        if isinstance(value, int | float) and math.isfinite(value):
            parts.append(f"{key.replace('_', ' ')} {fmt.perf(float(value))}")
    return ", ".join(parts)


_POSITION_TEXT = {
    "below": "below the baseline's FLOPs range (compared with its cheapest point)",
    "above": "above the baseline's FLOPs range (compared with its costliest point)",
}


def _delta_interval(p: PointRead) -> str:
    """The delta's interval: the performance's, shifted by the baseline (not resampled)."""
    if p.baseline_delta is None or p.performance is None:
        return ""
    base = p.performance - p.baseline_delta
    low = None if p.ci_low is None else p.ci_low - base
    high = None if p.ci_high is None else p.ci_high - base
    return fmt.interval(low, high, signed_values=True)


def _point_row(p: PointRead, summary: CostSummary | None, position: str | None) -> PointRow:
    f = p.flops
    rng = ""
    if f.p10 is not None and f.p90 is not None:
        rng = f"p10 {fmt.flops(f.p10)}, median {fmt.flops(f.median)}, p90 {fmt.flops(f.p90)}, max {fmt.flops(f.max)}"
    status = {
        "counted": "counted",
        "pending": "not counted yet",
        "self_reported": "self-reported (not measured)",
    }.get(p.cost_status, p.cost_status)
    if p.cost_status == "counted" and f.incomplete:
        status = "incomplete count: a lower bound (operators without a rule), not scored"
    elif p.cost_status == "counted" and f.disagrees:
        status = "counted; fvcore differs by more than 1% (the larger is shown)"
    elue = (
        f"; ELUE convention (products + LayerNorm): {fmt.exact(f.elue_mean)}"
        if f.elue_mean is not None
        else ""
    )
    verify, kind, diffs, latency = _point_verification(p)
    return PointRow(
        verify=verify,
        verify_kind=kind,
        verify_diffs=diffs,
        latency=latency,
        result_id=p.result_id,
        point=p.point or "(only point)",
        performance=fmt.perf(p.performance),
        components=_components(p.metrics),
        delta=fmt.signed(p.baseline_delta),
        position=_POSITION_TEXT.get(position or ""),
        flops_mean=("\u2265 " if f.incomplete else "") + fmt.flops(f.mean),
        flops_title=f"{fmt.exact(f.mean)} FLOPs per sample{elue}" if f.mean else "",
        flops_range=rng,
        params=fmt.params(p.params),
        params_title=f"{fmt.exact(p.params)} parameters" if p.params else "",
        cost_status=status,
        cost=summary,
    )


def _point_verification(p: PointRead) -> tuple[str, str, str, str]:
    v = p.verification
    if v is None:
        return "", "", "", ""
    n = v.n or 0
    if v.status == "verified":
        text = f"verified: {100 * (v.agreement or 0):.1f}% of {n:,} samples reproduced"
    elif v.status == "not_reproduced":
        text = (
            f"not reproduced: {v.disagree or 0:,} of {n:,} samples differ "
            f"(verified needs {100 * v.threshold:.1f}%)"
        )
    else:
        text = f"not verified: {v.message or 'the run could not be made'}"
    diffs = ""
    if v.first_diffs:
        diffs = "first differing samples (test index): " + ", ".join(str(i) for i in v.first_diffs)
    latency = ""
    if v.latency is not None:
        latency = (
            f"{v.latency.median_ms:.1f} ms (range {v.latency.min_ms:.1f}-"
            f"{v.latency.max_ms:.1f}) at batch size 1"
        )
    return text, v.status.replace("_", "-"), diffs, latency


_VERIFY_TEXT = {
    "verified": "Verified: the platform ran the counted program with the submitted weights and "
    "reproduced every point's predictions",
    "partly_verified": "Partly verified: some points were reproduced, others not (see each point)",
    "not_reproduced": "Not reproduced: the platform's run of the counted program with the "
    "submitted weights does not give the submitted predictions",
    "not_verified": "Not verified: the verification run could not be made",
}


def _verification_view(read: SubmissionRead) -> VerificationView | None:
    v = read.verification
    if v is None:
        return None
    hw = v.hardware or {}
    hardware = str(hw.get("name") or "")
    if hw.get("kind") == "cpu" and hw.get("threads"):
        hardware += f", {hw['threads']} thread(s)"
    return VerificationView(
        status=_VERIFY_TEXT.get(v.status, v.status),
        kind=v.status.replace("_", "-"),
        hardware=hardware or "-",
        peak_memory=f"{v.peak_memory_bytes / 2**20:,.0f} MiB" if v.peak_memory_bytes else "-",
        seconds=f"{v.seconds:.1f} s" if v.seconds is not None else "-",
        problems=list(v.problems),
        error=v.error,
    )


def _positions(session: Session, read: SubmissionRead) -> dict[int, str]:
    """Each point's place against its task's baseline range (as the task pages mark it)."""
    ids = [p.result_id for t in read.results for p in t.points]
    if not ids:
        return {}
    out: dict[int, str] = {}
    curves: dict[int, BaselineCurve | None] = {}
    for rid, flops, task in session.execute(
        select(Result.id, Result.flops_mean, Task)
        .join(Task, Task.id == Result.task_id)
        .where(Result.id.in_(ids))
    ):
        if task.id not in curves:
            curves[task.id] = baseline_curve(session, task)
        curve = curves[task.id]
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
    counted = [p.result_id for t in read.results for p in t.points if p.cost_status == "counted"]
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
    failed_validating = read.error is not None and read.error.failed_stage == "validating"
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
