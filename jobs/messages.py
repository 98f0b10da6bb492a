"""Every message sent over the broker: what the pipeline's tasks take, and what they report.

Score and count jobs carry ids (`ScoreJob`, `CountJob`): the score worker reads the rest from the
database. The cost worker holds no database credentials and no upload folder: everything its
sandbox needs travels in a `CostRequest` (the model file and the task's token ids, never labels),
and it answers with a `CostReport` on the `score` queue, which a score worker checks again against
what it computes itself before anything is stored (the codabench pattern: the compute worker
never touches the database, it reports back). A `PreflightRequest` is answered with a
`PreflightResult` while the web request waits.

Each job message names its task, its stage in the job records (`jobs.records`) and its
positional arguments (`args`); `jobs.send.send` sends any of them. A new field goes on the model;
a task that must read it takes the model's JSON as an argument, as the cost job does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobs.app import COST_TASK, COUNT_TASK, REPORT_TASK, SCORE_TASK
from jobs.cost_output import CostOutput, clean_json
from jobs.records import JobStage

MAX_MODEL_BYTES = 64 * 1024 * 1024
MAX_LOG_CHARS = 200_000
MAX_WIDTH = 64  # the widest output vector a verified entry may have
_JobId = Field(min_length=1, max_length=64)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Job(_Model):
    """A message that runs one stage of a submission's pipeline (`jobs.send.send`)."""

    TASK: ClassVar[str]
    STAGE: ClassVar[JobStage]
    COMPRESSED: ClassVar[bool] = False  # bodies with token ids or per-sample costs

    submission_id: int = Field(ge=1)
    job_id: str = _JobId

    def args(self) -> list[Any]:
        """The task's positional arguments."""
        return [self.submission_id, self.job_id]

    def argsrepr(self) -> str | None:
        """What the logs show instead of the arguments (None: the arguments themselves)."""
        return None


class ScoreJob(Job):
    """Stages 1-2: validate and score (score queue)."""

    TASK = SCORE_TASK
    STAGE = JobStage.SCORE


class CountJob(Job):
    """Stage 3, trusted half: prepare the cost job and send it to a cost queue (score queue)."""

    TASK = COUNT_TASK
    STAGE = JobStage.COUNT


class _BodyJob(Job):
    """A job whose whole body travels as its third argument (compressed on the wire)."""

    COMPRESSED = True

    def args(self) -> list[Any]:
        return [self.submission_id, self.job_id, self.model_dump(mode="json")]

    def argsrepr(self) -> str:
        return f"({self.submission_id}, {self.job_id!r}, <{type(self).__name__}>)"


# --- verified entries: what the cost worker runs, and what it reports -------------------------


class LatencyPoint(_Model):
    index: int = Field(ge=0)
    length: int = Field(ge=0)
    median_ms: float = Field(ge=0, allow_inf_nan=False)
    min_ms: float = Field(ge=0, allow_inf_nan=False)
    max_ms: float = Field(ge=0, allow_inf_nan=False)
    repeats: int = Field(ge=1, le=1000)


class VerifyEntry(_Model):
    outputs: list[list[float]] | None = Field(None, max_length=2_000_000)
    error: str | None = Field(None, max_length=4000)
    latency: list[LatencyPoint] = Field(default_factory=list, max_length=20)
    nonfinite: list[int] = Field(default_factory=list, max_length=2_000_000)  # NaN/inf outputs
    # early exit: each sample's exit as the model's graph decides it (an integer output)
    derived_exits: list[int] | None = Field(None, max_length=2_000_000)


class Hardware(_Model):
    kind: str = Field(max_length=10)
    name: str = Field(max_length=200)
    threads: int | None = Field(None, ge=1, le=4096)


class VerifyOutput(_Model):
    """What a verification run gave (or why there is none)."""

    ok: bool
    problems: list[str] = Field(default_factory=list, max_length=500)  # weights mismatches
    error: str | None = Field(None, max_length=8000)
    entries: dict[str, VerifyEntry] = Field(default_factory=dict, max_length=1000)
    hardware: Hardware | None = None
    peak_memory_bytes: int | None = Field(None, ge=0)
    seconds: float | None = Field(None, ge=0, allow_inf_nan=False)
    weights_sha256: str | None = Field(None, max_length=64)


class VerifyTask(_Model):
    """One task's inputs as the platform tokenised them (no labels)."""

    token_ids: list[list[int]] = Field(max_length=2_000_000)
    first_segments: list[int] | None = None


class VerifyJobEntry(_Model):
    key: str = Field(max_length=200)
    task: str = Field(max_length=100)
    width: int = Field(ge=1, le=MAX_WIDTH)
    targets: list[str] | None = None  # per sample: the module whose output is read (paths)


class VerifyRequest(_Model):
    """What the cost worker needs to verify, besides the capture it makes itself."""

    weights: dict[str, str] = Field(max_length=100)  # task name -> weights sha256
    inputs: dict[str, VerifyTask] = Field(max_length=100)
    entries: list[VerifyJobEntry] = Field(max_length=1000)


# --- cost jobs ---------------------------------------------------------------------------------


class CostRequest(_BodyJob):
    """One cost job: the model file (base64) and the sandbox's entries (token ids, exits)."""

    TASK = COST_TASK
    STAGE = JobStage.COST

    version: Literal[1] = 1
    model_b64: str = Field(max_length=MAX_MODEL_BYTES * 4 // 3 + 4)
    entries: list[dict[str, Any]] = Field(max_length=1000)
    sizes: dict[str, int] = Field(max_length=1000)
    # Weights were given: run the captured graph with them after counting (verified entries)
    verify: VerifyRequest | None = None

    @classmethod
    def build(
        cls,
        *,
        submission_id: int,
        job_id: str,
        model: bytes,
        entries: list[dict[str, Any]],
        sizes: dict[str, int],
        verify: VerifyRequest | None = None,
    ) -> CostRequest:
        """A request from the trusted side's job (model bytes encoded here)."""
        return cls(
            submission_id=submission_id,
            job_id=job_id,
            model_b64=base64.b64encode(model).decode("ascii"),
            entries=entries,
            sizes=sizes,
            verify=verify,
        )

    def model_bytes(self) -> bytes:
        """The model file's bytes (ValueError if the encoding is broken)."""
        try:
            return base64.b64decode(self.model_b64, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"the cost request's model is not valid base64: {exc}") from exc


class CostReport(_BodyJob):
    """What one cost job gave: a validated cost report, or why there is none."""

    TASK = REPORT_TASK
    STAGE = JobStage.REPORT

    version: Literal[1] = 1
    device: str = Field(max_length=64)  # results.device is String(64)
    worker: str = Field("", max_length=255)  # host name of the cost worker, for operators
    output: CostOutput | None = None
    log: str = Field("", max_length=MAX_LOG_CHARS)
    failure: str | None = Field(None, max_length=20_000)  # user-facing, None when output is valid
    reason: str | None = Field(None, max_length=64)  # machine-readable failure reason (metrics)
    # Set when the worker itself could not run the job (sandbox unavailable after retries):
    # the submission then fails as the service's fault, not the submitter's.
    service_error: str | None = Field(None, max_length=20_000)
    verification: VerifyOutput | None = None
    seconds: float = Field(0.0, ge=0, allow_inf_nan=False)
    # How many times the cost job was delivered (each one an attempt; jobs.records)
    deliveries: int = Field(1, ge=1, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """No NUL in any text, every number finite (the verification's too): storable as is."""
        return clean_json(data, "")


# --- pre-flight checks (queue `preflight`, answered while the web waits) -----------------------


class PreflightSample(_Model):
    """One real test input of a task the submission names, tokenized by the web process."""

    task: str = Field(max_length=64)
    index: int  # its row in the task's test split
    ids: list[int] = Field(max_length=100_000)
    first: int | None = None  # tokens of the first segment (pairs)


class PreflightPaths(_Model):
    """The distinct module paths (or exit layers) one prediction file names."""

    file: str = Field(max_length=600)
    task: str = Field(max_length=64)
    # per path: (module name, input shape without the batch dimension) steps
    modules: list[list[tuple[str, list[int]]]] = Field(default_factory=list, max_length=256)
    exit_layers: list[int] = Field(default_factory=list, max_length=256)
    rows: list[int] = Field(default_factory=list, max_length=256)  # a test row of each path


class PreflightRequest(_Model):
    model_b64: str = Field(max_length=64 * 1024 * 1024 * 4 // 3 + 4)
    # file label -> tensor name -> (shape, dtype)
    weights: dict[str, dict[str, tuple[list[int], str]]] = Field(max_length=100)
    samples: list[PreflightSample] = Field(default_factory=list, max_length=64)
    paths: list[PreflightPaths] = Field(default_factory=list, max_length=200)


class PreflightResult(_Model):
    ok: bool  # the model was captured and every weights file matches
    captured: bool
    error: str | None = Field(None, max_length=8000)  # why the capture failed
    stopped: bool = False  # stopped by the pre-flight limit (not a verdict on the model)
    problems: list[str] = Field(default_factory=list, max_length=1000)  # weights mismatches
    seconds: float = 0.0
    # the model's run on real test samples: "SST-2 row 17 (52 tokens): IndexError: ..."
    sample_problems: list[str] = Field(default_factory=list, max_length=64)
    samples_run: dict[str, int] = Field(default_factory=dict)  # task -> samples that ran
    # module paths / exit layers that do not match the captured graph (file, line, problem)
    path_problems: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    paths_checked: int = 0  # distinct paths checked against the graph
