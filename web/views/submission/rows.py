"""The parts of a submission's page that follow its state: status, results per point,
verification.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.models import SubmissionState
from core.submissions.schemas import CostQueueRead, PointRead, SubmissionRead
from core.submissions.state import PIPELINE_STAGES
from core.submissions.states import CostStatus
from web.views import format as fmt
from web.views.submission.costs import CostSummary
from web.views.uncertainty import CurveText

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
    if p.cost_status == CostStatus.COUNTED and f.incomplete:
        status = "incomplete count: a lower bound (operators without a rule), not scored"
    elif p.cost_status == CostStatus.COUNTED and f.disagrees:
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
