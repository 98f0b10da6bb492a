"""The evaluation pipeline: queued -> validating -> scoring -> counting -> done (or failed).

Each stage runs in its own transaction; the submission row is the source of truth. A stage
runs only if the row still carries the job id it was started with, so a re-delivered or
superseded message does nothing, and results are upserted, so nothing is written twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db.session import transaction
from core.models import Submission, SubmissionState
from core.settings import Settings
from core.storage import BlobStore
from core.submissions.state import set_state
from worker import counting_stage, scoring_stage

log = logging.getLogger(__name__)
TRACEBACK_LIMIT = 20_000
LOG_LIMIT = 200_000


class Outcome:
    CONTINUE = "continue"  # the next stage should run
    STOP = "stop"  # done, failed, or superseded: nothing more to do


def new_job_id() -> str:
    return uuid.uuid4().hex


def queue_submission(submission: Submission, message: str = "Waiting for a worker") -> str:
    """Put a submission (back) at the start of the pipeline with a fresh job id (flush by caller)."""
    submission.job_id = new_job_id()
    set_state(submission, SubmissionState.QUEUED, message)
    return submission.job_id


def _current(
    session: Session, submission_id: int, job_id: str, expected: set[SubmissionState]
) -> Submission | None:
    sub = session.get(Submission, submission_id, with_for_update=True)
    if sub is None:
        log.warning("submission %s: gone", submission_id)
        return None
    if sub.job_id != job_id:
        log.info("submission %s: job %s superseded by %s", submission_id, job_id, sub.job_id)
        return None
    if sub.state not in expected:
        log.info("submission %s: in state %s, nothing to do", submission_id, sub.state)
        return None
    return sub


def run_scoring(engine: Engine, settings: Settings, submission_id: int, job_id: str) -> str:
    """Stages 1-2 (queue `score`): validate and score; leaves the row in `counting`."""
    store = BlobStore(settings.storage.uploads_dir)
    with transaction(engine) as session:
        sub = _current(
            session,
            submission_id,
            job_id,
            {SubmissionState.QUEUED, SubmissionState.VALIDATING, SubmissionState.SCORING},
        )
        if sub is None:
            return Outcome.STOP
        sub.attempts += 1
        if not scoring_stage.validate(session, store, sub, settings):
            return Outcome.STOP
    with transaction(engine) as session:
        sub = _current(session, submission_id, job_id, {SubmissionState.VALIDATING})
        if sub is None:
            return Outcome.STOP
        scoring_stage.score(session, store, sub, settings)
        set_state(
            sub, SubmissionState.COUNTING, "Waiting for a cost worker to count FLOPs and parameters"
        )
    return Outcome.CONTINUE


def run_counting(
    engine: Engine,
    settings: Settings,
    submission_id: int,
    job_id: str,
    *,
    device: str = "cpu",
    runner: Callable[..., counting_stage.SandboxRun] = counting_stage.run_cost_job,
) -> str:
    """Stage 3 (queue `cost`): count in the sandbox, then store costs and finish."""
    store = BlobStore(settings.storage.uploads_dir)
    with transaction(engine) as session:
        sub = _current(session, submission_id, job_id, {SubmissionState.COUNTING})
        if sub is None:
            return Outcome.STOP
        try:
            job = counting_stage.build_job(session, store, sub, settings)
            model = counting_stage.model_sha256(session, sub)
        except LookupError as exc:
            set_state(
                sub, SubmissionState.FAILED, str(exc), failed_stage="counting", fault="service"
            )
            return Outcome.STOP
        set_state(sub, SubmissionState.COUNTING, f"Counting FLOPs in the sandbox ({device})")
    # SandboxUnavailableError propagates: an infrastructure fault, retried by the caller.
    run = runner(store, model, job, settings, device=device)
    with transaction(engine) as session:
        sub = _current(session, submission_id, job_id, {SubmissionState.COUNTING})
        if sub is None:
            return Outcome.STOP
        sub.sandbox_log = run.log[-LOG_LIMIT:]
        if run.failure is not None or run.output is None:
            detail = run.failure or "no output"
            if run.output is not None and run.output.error is not None:
                err = run.output.error
                problems = "\n".join(f"- {p.get('problem', p)}" for p in err.problems)
                detail = f"{err.type}: {err.message}\n{problems}\n\n{err.traceback}"[
                    -TRACEBACK_LIMIT:
                ]
            set_state(
                sub,
                SubmissionState.FAILED,
                f"Counting failed: {(run.failure or 'no output')[:500]}",
                failed_stage="counting",
                error_detail=detail,
                fault="user",
            )
            return Outcome.STOP
        counting_stage.store_costs(session, sub, job, run.output)
        set_state(sub, SubmissionState.DONE, "Evaluated")
    return Outcome.STOP


def fail_for_service(
    engine: Engine, submission_id: int, job_id: str, message: str, detail: str
) -> None:
    """Fail a submission through the service's own fault (does not count against quota)."""
    with transaction(engine) as session:
        sub = session.get(Submission, submission_id, with_for_update=True)
        if sub is None or sub.job_id != job_id or sub.state.is_final:
            return
        set_state(
            sub,
            SubmissionState.FAILED,
            message,
            failed_stage=sub.state.value,
            error_detail=detail,
            fault="service",
        )


def evaluate(
    engine: Engine, settings: Settings, submission_id: int, *, device: str = "cpu"
) -> None:
    """Run the whole pipeline in the foreground (`paretoboard evaluate ID`)."""
    with transaction(engine) as session:
        sub = session.get(Submission, submission_id)
        if sub is None:
            raise LookupError(f"no submission {submission_id}")
        job_id = queue_submission(sub, "Re-evaluating in the foreground")
    if run_scoring(engine, settings, submission_id, job_id) == Outcome.CONTINUE:
        run_counting(engine, settings, submission_id, job_id, device=device)
