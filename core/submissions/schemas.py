"""API shapes of submissions: what is sent in and what is read back."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from core.models import SubmissionKind, SubmissionState, Visibility
from core.paging import Page
from core.submissions.plausibility import FlopsUnit, ParamsUnit
from core.text import SafeMultiline, SafeName, SafeText

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class SubmissionCreated(BaseModel):
    id: int
    url: str  # the submission's page, /submissions/{id}
    api_url: str  # /api/v1/submissions/{id}
    state: SubmissionState
    queued: bool  # False when the queue could not be reached; the reconciler re-sends it


class FileSummary(BaseModel):
    file: str
    task: str
    point: str
    rows: int
    format: str  # simple | elue | exit_layer
    # ELUE's Type 1: the typed-in cost, in FLOPs per sample and parameters (left out for a
    # measured submission)
    self_reported_flops: float | None = Field(None, exclude_if=lambda v: v is None)
    self_reported_params: int | None = Field(None, exclude_if=lambda v: v is None)


class TaskSummary(BaseModel):
    task: str
    points: list[str]


class WeightsSummary(BaseModel):
    file: str
    size: int  # bytes
    tensors: int
    elements: int  # over every tensor


class QuotaRead(BaseModel):
    task: str
    used: int = Field(description="Evaluations counted on this task in the last 24 hours")
    limit: int
    remaining: int = Field(description="Submissions naming this task still allowed now")
    next_slot_at: dt.datetime | None = Field(
        None, description="When the oldest counted evaluation leaves the 24-hour window"
    )


class ValidationSummary(BaseModel):
    valid: bool
    model: str | None
    tokenizer: str | None  # registered name, or the uploaded file's name
    tasks: list[TaskSummary]
    files: list[FileSummary]
    rows: int  # over every file
    weights: WeightsSummary | None = None
    # The model run in a pre-flight worker's sandbox (captured, weights matched), or why not
    model_check: str | None = None
    # What is left of the daily quota on each task named (the check itself uses none)
    quota: list[QuotaRead] = Field(default_factory=list)


class OwnerRead(BaseModel):
    id: int
    display_name: str


class StageRead(BaseModel):
    name: str  # the state's name
    index: int  # 1..total on the happy path (queued=1 ... done=5), 0 when failed or withdrawn
    total: int


class TimingsRead(BaseModel):
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    elapsed_seconds: float | None  # started (or created) until finished, or until now


class FlopsRead(BaseModel):
    """FLOPs per sample: everything the model computes (products at 2 x multiply-accumulates).

    `elue_mean` is the ELUE convention (products + LayerNorm) for comparison with papers.
    `incomplete`: the count met operators no rule covers (named in `incomplete_operators`),
    so the numbers are lower bounds. `disagrees`: fvcore and the rules differ by >1% (the
    larger is shown).
    """

    mean: float | None
    median: float | None
    p10: float | None
    p90: float | None
    max: float | None
    macs_mean: float | None
    elue_mean: float | None = None
    incomplete: bool = False
    disagrees: bool = False
    counter_version: str | None = None
    rule_hash: str | None = None


class LatencyRead(BaseModel):
    """Batch-1 wall-clock time on the verification hardware (never used for ranking)."""

    median_ms: float
    min_ms: float
    max_ms: float
    samples: list[dict[str, Any]]


class PointVerificationRead(BaseModel):
    """docs/verification.md: verified | not_reproduced | not_verified."""

    status: str
    agreement: float | None  # fraction of samples whose platform output gives the prediction
    n: int | None = None
    disagree: int | None = None
    threshold: float
    message: str | None = None
    first_diffs: list[int] | None = None  # owner and administrators only
    latency: LatencyRead | None = None


class VerificationRead(BaseModel):
    """The submission's last verification run; None when it has no weights."""

    status: str  # verified | partly_verified | not_reproduced | not_verified
    hardware: dict[str, Any] | None = None
    peak_memory_bytes: int | None = None
    seconds: float | None = None
    error: str | None = None
    problems: list[str] = Field(default_factory=list)  # weights vs graph mismatches
    weights: dict[str, str] = Field(default_factory=dict)  # task ("*": every task) -> sha256


class PointRead(BaseModel):
    result_id: int
    point: str
    performance: float | None
    metrics: dict[str, Any]
    baseline_delta: float | None
    flops: FlopsRead
    params: int | None
    cost_status: str  # pending | counted | self_reported
    self_reported: bool
    costs_url: str | None  # per-sample FLOPs and breakdowns, once counted
    verified: bool = False
    verification: PointVerificationRead | None = None
    # 95% bootstrap interval of performance (docs/ranking.md); None: not computed
    ci_low: float | None = None
    ci_high: float | None = None


class CurveSummaryRead(BaseModel):
    """Area between the curve and the baseline's over their common FLOPs window (log10 axis,
    per decade) and the hypervolume of the points (docs/ranking.md, "Curve summary")."""

    window_low: float | None  # FLOPs; None: the ranges do not overlap over a width
    window_high: float | None
    gain: float | None
    loss: float | None
    net: float | None
    hypervolume: float
    reference_flops: float  # the baseline's costliest FLOPs
    reference_performance: float  # the baseline's lowest performance


class ExitDiagnosticsRead(BaseModel):
    """One early-exit point: per exit layer, how many samples left there and the metric on
    them (accuracy x100; STS-B: mean absolute error). Aggregates only."""

    measure: str  # "accuracy" | "mean_absolute_error"
    layers: list[int]
    counts: list[int]
    values: list[float]


class TaskResultsRead(BaseModel):
    task: str
    display_name: str
    points: list[PointRead]
    # ELUE task score over the points (None: no baseline, or a point without a delta)
    score: float | None = None
    score_ci_low: float | None = None  # its 95% bootstrap interval (points resampled jointly)
    score_ci_high: float | None = None
    curve: CurveSummaryRead | None = None
    exit_diagnostics: dict[str, ExitDiagnosticsRead] = Field(default_factory=dict)  # by point


class ErrorRead(BaseModel):
    failed_stage: str | None
    message: str
    fault: str | None  # user | service


class FileRead(BaseModel):
    role: str
    name: str
    task: str | None
    point: str | None
    size: int
    sha256: str


class WeightsRead(BaseModel):
    """A weights file (safetensors): what the platform runs the counted graph with."""

    file: str
    task: str | None  # None: the weights of every task
    size: int  # bytes
    sha256: str
    tensors: int | None  # None when not listed at upload
    elements: int | None  # over every tensor (parameters and buffers)


class CostQueueRead(BaseModel):
    """Where a counting submission's cost job is (core/submissions/cost_queue.py)."""

    state: str  # "waiting" (for its owner's share of the cost queue) or "sent"
    ahead: int  # cost jobs before it, queued or running (for a waiting one, an estimate)
    # Until its cost is counted: the median run time of recent cost jobs x (ahead + 1) / the
    # installation's cost slots; None before any cost job has finished.
    estimated_wait_seconds: float | None
    recent_jobs: int  # how many finished cost jobs the median is taken over
    jobs_per_user: int  # each user's share of the cost queue


class SubmissionRead(BaseModel):
    id: int
    url: str
    name: str
    description: str
    paper_url: str | None
    code_url: str | None
    kind: SubmissionKind
    self_reported: bool
    visibility: Visibility
    hidden: bool
    verified: bool  # every point verified (docs/verification.md)
    verification: VerificationRead | None = None
    owner: OwnerRead | None
    tokenizer_name: str | None
    params: int | None
    state: SubmissionState
    stage: StageRead
    state_message: str
    # Active submissions ahead in the same stage (in `counting`, cost jobs ahead in the cost
    # queue); None when not waiting.
    queue_position: int | None
    cost_queue: CostQueueRead | None = None
    timings: TimingsRead
    results: list[TaskResultsRead]
    error: ErrorRead | None
    weights: list[WeightsRead] = Field(default_factory=list)
    # The owner and administrators only (None for everyone else):
    error_detail: str | None = None
    sandbox_log: str | None = None
    files: list[FileRead] | None = None
    timeline: list[dict[str, Any]] | None = None


class SubmissionSummary(BaseModel):
    id: int
    url: str
    name: str
    kind: SubmissionKind
    self_reported: bool
    visibility: Visibility
    hidden: bool
    owner: OwnerRead | None
    state: SubmissionState
    tasks: list[str]
    created_at: dt.datetime
    finished_at: dt.datetime | None


class SubmissionPage(Page[SubmissionSummary]):
    """A page of submissions, newest first; `page` and `per_page` are the older spelling of
    `offset` and `limit` (a page that starts between two of its pages reports the one it is in)."""

    page: int
    per_page: int


class CostsRead(BaseModel):
    submission_id: int
    result_id: int
    task: str
    point: str
    n: int
    flops: list[int]  # per sample, in test index order
    flops_elue: list[int] | None = None  # the ELUE convention, per sample
    incomplete_operators: list[str] = Field(default_factory=list)  # no rule: a lower bound
    per_operator: dict[str, Any]
    per_module: dict[str, Any]
    uncounted: dict[str, Any]
    mismatches: list[Any]
    details: dict[str, Any]


class SubmissionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeName | None = Field(None, min_length=1, max_length=200)
    description: SafeMultiline | None = Field(None, max_length=10_000)
    visibility: Visibility | None = None
    # None: unchanged; "": removed (a self-reported entry keeps its paper link)
    paper_url: HttpUrl | Literal[""] | None = None
    code_url: HttpUrl | Literal[""] | None = None


class PaperPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: SafeText = Field(min_length=1, max_length=64)
    point: SafeText = Field("", max_length=64)
    performance: FiniteFloat = Field(ge=-100, le=100)  # the task's headline metric x100
    # per sample, in `flops_unit`; zero, negative or implausible values are refused with the
    # reason (core/submissions/plausibility.py)
    flops: FiniteFloat
    flops_unit: FlopsUnit = FlopsUnit.FLOPS
    metrics: dict[SafeText, FiniteFloat] | None = None
    # This point's parameter count (e.g. an early exit's layers) in the entry's `params_unit`,
    # checked like the entry's; default: the entry's `params`
    params: FiniteFloat | None = None


class PaperCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeName = Field(min_length=1, max_length=200)
    description: SafeMultiline = Field("", max_length=10_000)
    paper_url: HttpUrl
    code_url: HttpUrl | None = None
    params: FiniteFloat | None = None  # in `params_unit`; checked like the FLOPs
    params_unit: ParamsUnit = ParamsUnit.PARAMS
    visibility: Visibility = Visibility.PUBLIC
    points: list[PaperPoint] = Field(min_length=1, max_length=200)


class FileCost(BaseModel):
    """ELUE's Type 1: one prediction file's FLOPs and parameters, typed in by the submitter
    (ELUE asks for MFLOPs and millions of parameters; the units are stated, never guessed)."""

    model_config = ConfigDict(extra="forbid")

    file: SafeText = Field(min_length=1, max_length=255)  # the prediction file's name
    flops: FiniteFloat  # per sample
    flops_unit: FlopsUnit
    params: FiniteFloat
    params_unit: ParamsUnit


class BaselineSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    submission_id: int = Field(ge=1, le=2**62)  # an id the database can hold


class BaselineRead(BaseModel):
    task: str
    baseline_submission_id: int | None


class RerunReport(BaseModel):
    requeued: list[int]
    queued: bool  # False when the queue could not be reached; the reconciler re-sends them
