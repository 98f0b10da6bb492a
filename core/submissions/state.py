"""Submission state transitions: the row is the source of truth, with a timeline of changes."""

from __future__ import annotations

from core.db.base import utcnow
from core.models import Submission, SubmissionState

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
    fault: str | None = None,
) -> None:
    """Move a submission to `state`, stamping the time and appending to its timeline."""
    now = utcnow()
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
        submission.failed_stage = failed_stage
        submission.error_detail = error_detail
        submission.fault = fault or "user"
    entry = {"state": state.value, "at": now.isoformat(), "message": message}
    if failed_stage:
        entry["stage"] = failed_stage
    # Reassign (not append) so the JSON column is marked dirty.
    submission.timeline = [*(submission.timeline or []), entry]


def stage_index(state: SubmissionState) -> int:
    """Position in the happy path (failed sorts last)."""
    return PIPELINE_STAGES.index(state) if state in PIPELINE_STAGES else len(PIPELINE_STAGES)
