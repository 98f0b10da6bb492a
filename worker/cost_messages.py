"""What a cost worker receives over the broker, and what it reports back.

The cost worker holds no database credentials and no upload folder: everything its sandbox
needs travels in a `CostRequest` (the model file and the task's token ids, never labels), and it
answers with a `CostReport` on the `score` queue, which a score worker checks again against
what it computes itself before anything is stored (the codabench pattern: the compute worker
never touches the database, it reports back).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.cost_output import CostOutput, clean_json
from worker.verification import VerifyOutput, VerifyRequest

MAX_MODEL_BYTES = 64 * 1024 * 1024
MAX_LOG_CHARS = 200_000
_JobId = Field(min_length=1, max_length=64)


class CostRequest(BaseModel):
    """One cost job: the model file (base64) and the sandbox's entries (token ids, exits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    submission_id: int = Field(ge=1)
    job_id: str = _JobId
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


class CostReport(BaseModel):
    """What one cost job gave: a validated cost report, or why there is none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    submission_id: int = Field(ge=1)
    job_id: str = _JobId
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
    # How many times the cost job was delivered (each one an attempt; worker.attempts)
    deliveries: int = Field(1, ge=1, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """No NUL in any text, every number finite (the verification's too): storable as is."""
        return clean_json(data, "")
