"""Submission state transitions: the row is the source of truth, with a timeline of changes."""

from __future__ import annotations

import math
import uuid
from typing import Any

from core.db.base import utcnow
from core.models import Submission
from core.submissions.states import Fault, SubmissionState, check_transition

MESSAGE_LIMIT = 2_000  # state_message and the timeline's messages
DETAIL_LIMIT = 20_000  # error_detail (tracebacks)
LOG_LIMIT = 200_000  # sandbox_log (the tail)


def new_job_id() -> str:
    """A fresh job id (the web app assigns one per upload: kept out of `worker.pipeline`,
    whose import pulls in torch and scipy, ~10 s and ~300 MB in a web process)."""
    return uuid.uuid4().hex


def queue_submission(submission: Submission, message: str = "Waiting for a worker") -> str:
    """Put a submission (back) at the start of the pipeline with a fresh job id (flush by caller)."""
    submission.job_id = new_job_id()
    set_state(submission, SubmissionState.QUEUED, message)
    return submission.job_id


def storable(text: str, limit: int, *, tail: bool = False) -> str:
    """Text the database accepts as it is: no NUL (PostgreSQL refuses it), at most `limit` chars.

    Worker-side text (tracebacks, logs, reports) can hold anything; storing it must never fail,
    or the job would be retried for a fault that no retry fixes.
    """
    text = text.replace("\x00", "\ufffd")
    if len(text) <= limit:
        return text
    return ("..." + text[-(limit - 3) :]) if tail else (text[: limit - 3] + "...")


def finite_json(value: Any, *, where: str = "") -> Any:
    """`value` with every string storable and every number finite (ValueError names the first
    NaN or Infinity): what a JSON column may take from a worker's report."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where or 'the value'} is {value}, not a finite number")
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {
            storable(str(k), 300): finite_json(v, where=f"{where}.{k}" if where else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [finite_json(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


# The happy path, in order (pages draw it as the stage list).
PIPELINE_STAGES: tuple[SubmissionState, ...] = (
    SubmissionState.QUEUED,
    SubmissionState.VALIDATING,
    SubmissionState.SCORING,
    SubmissionState.COUNTING,
    SubmissionState.DONE,
)


def set_state(
    submission: Submission,
    state: SubmissionState,
    message: str = "",
    *,
    failed_stage: str | None = None,
    error_detail: str | None = None,
    fault: Fault | None = None,
) -> None:
    """Move a submission to `state`, stamping the time and appending to its timeline
    (`IllegalTransitionError` for a change `states.TRANSITIONS` does not allow)."""
    check_transition(submission.state, state)
    now = utcnow()
    message = storable(message, MESSAGE_LIMIT)
    if error_detail is not None:
        error_detail = storable(error_detail, DETAIL_LIMIT, tail=True)
    submission.state = state
    submission.state_message = message
    submission.state_changed_at = now
    if state is SubmissionState.VALIDATING and submission.started_at is None:
        submission.started_at = now
    if state is SubmissionState.QUEUED:
        submission.failed_stage = None
        submission.error_detail = None
        submission.fault = None
        submission.finished_at = None
    if state.is_final:
        submission.finished_at = now
    if state is SubmissionState.FAILED:
        submission.failed_stage = failed_stage[:32] if failed_stage else failed_stage
        submission.error_detail = error_detail
        submission.fault = fault or Fault.USER
    entry = {"state": state.value, "at": now.isoformat(), "message": message}
    if failed_stage:
        entry["stage"] = failed_stage
    # Reassign (not append) so the JSON column is marked dirty.
    submission.timeline = [*(submission.timeline or []), entry]


def stage_index(state: SubmissionState) -> int:
    """Position in the happy path (failed sorts last)."""
    return PIPELINE_STAGES.index(state) if state in PIPELINE_STAGES else len(PIPELINE_STAGES)
