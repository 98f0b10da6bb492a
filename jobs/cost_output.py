"""Validation of what the sandbox printed: bounded, typed, and checked against the job."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ParetoboardError

MAX_SAMPLES = 5_000_000  # per entry, and in all the entries of one report together
FLOPS_CEILING = 10**18  # per sample; anything above is not a real count
# Bytes of a report beyond its per-sample numbers (breakdowns, notes, the cross-check).
REPORT_OVERHEAD_BYTES = 8 * 1024 * 1024
BYTES_PER_SAMPLE = 3 * 21  # three per-sample lists of numbers up to 10**18, with separators
MAX_CROSS_CHECK_BYTES = 64 * 1024
MAX_DEPTH = 16
_Flops = Annotated[int, Field(ge=0, le=FLOPS_CEILING)]
_Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Breakdown = Annotated[
    dict[Annotated[str, Field(max_length=300)], Annotated[float, Field(ge=0, allow_inf_nan=False)]],
    Field(max_length=400),
]


class SandboxOutputError(ParetoboardError):
    """The sandbox printed something that is not a valid cost report."""

    status_code = 422
    code = "invalid_cost_output"


def clean_json(value: Any, where: str, depth: int = 0) -> Any:
    """Strings without NUL, numbers finite, nesting bounded: what the database will take."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where or 'the report'} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'a number'} is {value}: costs must be finite numbers")
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {
            (k.replace("\x00", "\ufffd") if isinstance(k, str) else k): clean_json(
                v, f"{where}.{k}" if where else str(k), depth + 1
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        # per-sample lists are long: check their numbers without rebuilding them
        if value and all(type(v) is int for v in value[:64]) and all(type(v) is int for v in value):
            return value
        return [clean_json(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Disagreement(_Strict):
    module: str = Field(max_length=300)
    shape: list[int] = Field(max_length=16)
    flops: int
    cross_check: int | None


class EntryOutput(_Strict):
    per_sample_flops: list[_Flops] = Field(max_length=MAX_SAMPLES)
    per_sample_flops_without_norm: list[_Flops] = Field(max_length=MAX_SAMPLES)
    per_operator: _Breakdown
    per_module: _Breakdown
    uncounted: _Breakdown
    n_counts: int = Field(ge=0)
    all_agree: bool
    disagreements: list[Disagreement] = Field(max_length=50)
    seconds: _Seconds
    content_dependent: bool
    per_sample_counted: bool
    n_traces: int = Field(ge=0)
    n_new_traces: int = Field(0, ge=0)  # counts made for this entry (cache hits excluded)
    n_check_traces: int = Field(0, ge=0)
    # Counter 2 (graph capture + rule table): the ELUE convention beside the ranking FLOPs,
    # the operators no rule covers (the count is then a lower bound: "incomplete"), and
    # fvcore's count of the same graph.
    per_sample_flops_elue: list[_Flops] = Field(default_factory=list, max_length=MAX_SAMPLES)
    incomplete: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=400
    )
    cross_check: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _small_cross_check(self) -> EntryOutput:
        if len(json.dumps(self.cross_check)) > MAX_CROSS_CHECK_BYTES:
            raise ValueError(f"the cross-check is larger than {MAX_CROSS_CHECK_BYTES} bytes")
        return self


class ErrorOutput(_Strict):
    type: str = Field(max_length=200)
    message: str = Field(max_length=8000)
    # "model" (the submission's fault), "counter" (ours), or the capture's kinds
    kind: str = Field("model", max_length=40)
    problems: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    traceback: str = Field("", max_length=40000)


class CostOutput(_Strict):
    ok: bool
    params: int | None = Field(None, ge=0, le=10**13)
    device: str | None = Field(None, max_length=64)  # results.device is String(64)
    versions: dict[str, Annotated[str, Field(max_length=100)]] = Field(
        default_factory=dict, max_length=10
    )
    notes: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list, max_length=50)
    entries: dict[str, EntryOutput] = Field(default_factory=dict, max_length=1000)
    workers: int | None = Field(None, ge=1, le=4096)  # processes that made the counts
    counter_version: str | None = Field(None, max_length=20)
    rule_hash: str | None = Field(None, max_length=64)
    param_kinds: dict[Annotated[str, Field(max_length=40)], Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=10
    )
    polynomial: str | None = Field(None, max_length=2000)  # FLOPs as a function of L
    load_seconds: _Seconds | None = None
    seconds: _Seconds | None = None
    error: ErrorOutput | None = None

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return clean_json(data, "")

    @model_validator(mode="after")
    def _bounded(self) -> CostOutput:
        total = sum(len(e.per_sample_flops) for e in self.entries.values())
        if total > MAX_SAMPLES:
            raise ValueError(f"the report holds {total} per-sample costs, more than {MAX_SAMPLES}")
        return self


def report_byte_limit(expected: dict[str, int]) -> int:
    """The most bytes a report on a job with these entries (key -> samples) can take."""
    return REPORT_OVERHEAD_BYTES + BYTES_PER_SAMPLE * sum(expected.values())


def parse_cost_output(raw: bytes, expected: dict[str, int]) -> CostOutput:
    """Parse stdout of a cost job; `expected` maps entry key -> number of samples."""
    limit = report_byte_limit(expected)
    if len(raw) > limit:
        raise SandboxOutputError(
            f"the cost report is {len(raw)} bytes, more than the {limit} a job of "
            f"{sum(expected.values())} samples can need"
        )
    try:
        out = CostOutput.model_validate_json(raw)
    except ValidationError as exc:
        raise SandboxOutputError(
            f"the cost job printed an invalid report: {str(exc)[:1500]}"
        ) from exc
    return check_cost_output(out, expected)


def check_cost_output(out: CostOutput, expected: dict[str, int]) -> CostOutput:
    """Check a parsed report against the job (entries present, one cost per sample)."""
    if not out.ok:
        if out.error is None:
            raise SandboxOutputError("the cost job failed without saying why")
        return out
    if out.params is None:
        raise SandboxOutputError("the cost report has no parameter count")
    unasked = sorted(set(out.entries) - set(expected))
    if unasked:
        shown = ", ".join(repr(k[:80]) for k in unasked[:5])
        raise SandboxOutputError(
            f"the cost report has {len(unasked)} entries the job did not ask for ({shown})"
        )
    for key, n in expected.items():
        entry = out.entries.get(key)
        if entry is None:
            raise SandboxOutputError(f"the cost report has no entry {key!r}")
        if (
            len(entry.per_sample_flops) != n
            or len(entry.per_sample_flops_without_norm) != n
            or (entry.per_sample_flops_elue and len(entry.per_sample_flops_elue) != n)
        ):
            raise SandboxOutputError(
                f"entry {key!r} has {len(entry.per_sample_flops)} per-sample costs, expected {n}"
            )
    return out
