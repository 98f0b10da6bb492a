"""The evaluation pipeline: queued -> validating -> scoring -> counting -> done (or failed).

Each stage runs in its own transaction; the submission row is the source of truth. A stage
runs only if the row still carries the job id it was started with, so a re-delivered or
superseded message does nothing, and results are upserted, so nothing is written twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db.session import transaction
from core.models import Submission, SubmissionKind, SubmissionState
from core.settings import Settings
from core.storage import BlobStore, LocalBlobStore, blob_store
from core.submissions import cost_queue
from core.submissions.state import LOG_LIMIT, queue_submission, set_state, storable
from core.submissions.states import Fault, Stage
from jobs.cost_output import SandboxOutputError, check_cost_output
from jobs.messages import CostReport, CostRequest, VerifyOutput, VerifyRequest
from worker import counting_stage, metrics, scoring_stage, verification_stage
from worker import verification as verification_mod
from worker.sandbox import SandboxUnavailableError
from worker.tokenize_job import TaskInputs, TokenizerError

log = logging.getLogger(__name__)
TRACEBACK_LIMIT = 20_000
SERVICE_FAULT_MESSAGE = "The service could not finish this evaluation (our fault, not yours); an operator will re-run it."
GAVE_UP_MESSAGE = "Gave up after {n} attempts (our fault, not yours); an operator will re-run it."
MODEL_KILLED_MESSAGE = (
    "Your model stopped its cost worker {n} times while it ran (out of memory, or past the "
    "time limit), so it was not counted; check its memory use and speed on the task's longest "
    "inputs"
)


class Outcome:
    CONTINUE = "continue"  # the next stage should run
    STOP = "stop"  # done, failed, or superseded: nothing more to do


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


def start_attempt(
    engine: Engine,
    settings: Settings,
    submission_id: int,
    job_id: str,
    expected: set[SubmissionState],
    *,
    skip: Callable[[Submission], bool] | None = None,
    counts: Callable[[Session, Submission], bool] | None = None,
) -> bool:
    """Count one delivery of a stage's task in its own committed transaction, before any work.

    False when there is nothing to do: the job was superseded, the row is in another state,
    `skip(row)` says so, or this delivery is past `limits.max_attempts` (the submission then
    fails, as the service's fault: this stage runs only trusted code on bounded inputs).
    `counts(session, row)` False: run it without counting (it will not do the stage's work).
    """
    final: Submission | None = None
    with transaction(engine) as session:
        sub = _current(session, submission_id, job_id, expected)
        if sub is None or (skip is not None and skip(sub)):
            return False
        if counts is not None and not counts(session, sub):
            return True
        sub.attempts += 1
        if sub.attempts > settings.limits.max_attempts:
            set_state(
                sub,
                SubmissionState.FAILED,
                GAVE_UP_MESSAGE.format(n=sub.attempts - 1),
                failed_stage=sub.state.value,
                error_detail=f"{sub.state.value}: its worker stopped {sub.attempts - 1} times "
                "before finishing this stage",
                fault=Fault.SERVICE,
            )
            final = sub
    if final is not None:
        _record_final(final)
        return False
    return True


def run_scoring(engine: Engine, settings: Settings, submission_id: int, job_id: str) -> str:
    """Stages 1-2 (queue `score`): validate and score; leaves the row in `counting`."""
    started = time.monotonic()
    store = blob_store(settings)
    valid = True
    with transaction(engine) as session:
        sub = _current(
            session,
            submission_id,
            job_id,
            {SubmissionState.QUEUED, SubmissionState.VALIDATING, SubmissionState.SCORING},
        )
        if sub is None:
            return Outcome.STOP
        valid = scoring_stage.validate(session, store, sub, settings)
    if not valid:
        _record_final(sub)
        return Outcome.STOP
    with transaction(engine) as session:
        sub = _current(session, submission_id, job_id, {SubmissionState.VALIDATING})
        if sub is None:
            return Outcome.STOP
        scoring_stage.score(session, store, sub, settings)
        sub.attempts = 0  # counting gets its own `max_attempts`
        self_reported = sub.kind is SubmissionKind.SELF_REPORTED
        if self_reported:  # ELUE's Type 1: the costs were typed in; nothing to count
            set_state(
                sub,
                SubmissionState.DONE,
                "Scored; FLOPs and parameters are self-reported (not measured)",
            )
        else:
            set_state(
                sub,
                SubmissionState.COUNTING,
                "Waiting for a cost worker to count FLOPs and parameters",
            )
    metrics.record_stage("scoring", time.monotonic() - started)
    if self_reported:
        _record_final(sub)
        return Outcome.STOP
    return Outcome.CONTINUE


def prepare_counting(
    engine: Engine, settings: Settings, submission_id: int, job_id: str, *, fair: bool = True
) -> CostRequest | None:
    """Stage 3a (queue `score`, trusted): the cost job a cost worker runs; None if nothing to do.

    Everything the sandbox needs goes into the request (the model file, token ids), so that
    cost workers need neither database credentials nor the upload folder. The inputs are read
    in one transaction and tokenized outside any (`worker.tokenize_job`: a bounded child
    process; a bad tokenizer fails this submission alone), then the job is built in another.
    With `fair`, a submission whose owner has their share of the cost queue waits instead
    (`core.submissions.cost_queue`); it is sent again when one of their jobs ends.
    """
    started = time.monotonic()
    store = blob_store(settings)
    per_user = settings.limits.cost_jobs_per_user if fair else None
    final: Submission | None = None
    with transaction(engine) as session:
        sub = _current(session, submission_id, job_id, {SubmissionState.COUNTING})
        if sub is None or cost_queue.is_sent(sub):
            return None
        if per_user is not None and not cost_queue.has_share(session, sub, per_user=per_user):
            _wait_for_share(sub, per_user)
            return None
        try:
            texts = counting_stage.job_texts(session, store, sub, settings)
        except LookupError as exc:
            _fail_counting(sub, str(exc), fault=Fault.SERVICE)
            final = sub
    if final is not None:
        _record_final(final)
        return None
    try:  # no transaction is open: the tokenizer holds no lock, however long it takes
        inputs = counting_stage.tokenize_inputs(texts, settings)
    except TokenizerError as exc:
        _fail_tokenizing(engine, submission_id, job_id, exc)
        return None
    with transaction(engine) as session:
        sub = _current(session, submission_id, job_id, {SubmissionState.COUNTING})
        if sub is None or cost_queue.is_sent(sub):
            return None
        try:
            job = counting_stage.build_job(session, store, sub, settings, inputs)
            counting_stage.keep_token_counts(session, store, sub, settings, inputs)
            model = store.read_bytes(counting_stage.model_sha256(session, sub))
            verify = counting_stage.build_verify_request(session, sub, job)
        except LookupError as exc:
            _fail_counting(sub, str(exc), fault=Fault.SERVICE)
            final = sub
        else:
            if not cost_queue.claim(session, sub, per_user=per_user):
                _wait_for_share(sub, per_user or 0)  # the last share went meanwhile
                return None
            set_state(
                sub,
                SubmissionState.COUNTING,
                "Sent to a cost worker: FLOPs and parameters are counted in its sandbox",
            )
    if final is not None:
        _record_final(final)
        return None
    if verify is not None:
        _weights_for_cost_workers(store, settings, verify)
    metrics.record_stage("cost_prepare", time.monotonic() - started)
    return CostRequest.build(
        submission_id=submission_id,
        job_id=job_id,
        model=model,
        entries=job.entries,
        sizes=job.sizes,
        verify=verify,
    )


def _weights_for_cost_workers(store: BlobStore, settings: Settings, verify: VerifyRequest) -> None:
    """With an object store, a copy of the weights in this host's upload folder: cost workers
    hold no store credentials and read them from that folder (mounted read-only, as with the
    local store). Copies no live submission uses go with the orphans (`core.leftovers`)."""
    if isinstance(store, LocalBlobStore):
        return
    local = LocalBlobStore(settings.storage.uploads_dir)
    for sha in sorted(set(verify.weights.values())):
        if not local.exists(sha):
            with store.open(sha) as stream:
                local.put_stream(stream)


def _wait_for_share(sub: Submission, per_user: int) -> None:
    """Hold the submission back until its owner has a free share of the cost queue."""
    if cost_queue.is_waiting(sub):
        return  # already waiting: keep its message, time and place
    cost_queue.hold(sub)
    set_state(
        sub,
        SubmissionState.COUNTING,
        f"Waiting for a place in the cost queue: you have {per_user} cost job"
        f"{'s' if per_user != 1 else ''} queued or running (the most one user may have); "
        "this one is sent when one of them finishes",
    )


def _fail_counting(
    sub: Submission, message: str, *, fault: Fault, detail: str | None = None
) -> None:
    """Fail the submission at the counting stage, blaming `fault`."""
    set_state(
        sub,
        SubmissionState.FAILED,
        message,
        failed_stage=Stage.COUNTING,
        error_detail=detail,
        fault=fault,
    )


def _fail_tokenizer(sub: Submission, exc: TokenizerError) -> None:
    """Fail the submission whose tokenizer could not tokenize its inputs, as the error says."""
    detail = exc.detail.replace("\x00", "\ufffd") or None
    _fail_counting(sub, exc.message[:2000], detail=detail, fault=exc.fault)


def _fail_tokenizing(engine: Engine, submission_id: int, job_id: str, exc: TokenizerError) -> None:
    """Fail the submission whose tokenizer could not tokenize its inputs (it alone)."""
    with transaction(engine) as session:
        sub = _current(session, submission_id, job_id, {SubmissionState.COUNTING})
        if sub is None:
            return
        _fail_tokenizer(sub, exc)
    _record_final(sub)


def execute_counting(
    settings: Settings,
    request: CostRequest,
    *,
    device: str = "cpu",
    runner: Callable[..., counting_stage.SandboxRun] = counting_stage.run_cost_job,
    worker: str = "",
) -> CostReport:
    """Stage 3b (queue `cost`): run the request in the sandbox; touches no database.

    SandboxUnavailableError propagates: an infrastructure fault, retried by the caller.
    """
    started = time.monotonic()
    job = counting_stage.CostJob(entries=request.entries, sizes=dict(request.sizes))
    try:
        run = runner(request.model_bytes(), job, settings, device=device)
    except counting_stage.CounterError as exc:  # our counter broke: the service's fault
        log.error("trusted counter failed: %s", str(exc)[:2000])
        return CostReport(
            submission_id=request.submission_id,
            job_id=request.job_id,
            device=device,
            worker=worker,
            service_error=str(exc)[:20_000],
            seconds=time.monotonic() - started,
        )
    verification = None
    if request.verify is not None and run.failure is None and run.capture is not None:
        try:
            with blob_store(settings) as store:  # the weights: a local copy from an object store
                checked = verification_mod.run_verification(
                    run.capture,
                    request.verify,
                    settings,
                    device=device,
                    store=store,
                )
        except SandboxUnavailableError:
            raise
        except Exception as exc:  # the runner's own plumbing broke: report it, keep the cost
            log.error("verification failed: %s", str(exc)[:2000])
            checked = verification_mod.VerifyRun(
                VerifyOutput(
                    ok=False, error=f"the verification run failed on the worker: {exc}"[:2000]
                ),
                "",
            )
        verification = checked.output
        run = replace(run, log=(run.log + "\n[verification]\n" + checked.log)[-LOG_LIMIT:])
    seconds = time.monotonic() - started
    metrics.record_stage("cost_job", seconds)
    metrics.record_cost_job(device, run.reason if run.failure is not None else None)
    if run.failure is not None:
        log.info("cost job failed in the sandbox (%s): %s", run.reason, run.failure[:300])
    return CostReport(
        submission_id=request.submission_id,
        job_id=request.job_id,
        device=device,
        worker=worker,
        output=run.output,
        log=run.log[-LOG_LIMIT:],
        failure=run.failure,
        reason=run.reason if run.failure is not None else None,
        seconds=seconds,
        verification=verification,
    )


def finish_counting(engine: Engine, settings: Settings, report: CostReport) -> str:
    """Stage 3c (queue `score`, trusted): check a cost worker's report, store costs, finish.

    The report is checked against the job as this side computes it again (entries, sample
    counts), never against what came back with it.
    """
    started = time.monotonic()
    store = blob_store(settings)
    # A valid report is checked against the job computed again, from the token counts that
    # `prepare_counting` kept; a job prepared without them has its inputs read in one
    # transaction and tokenized outside any (as in `prepare_counting`).
    inputs: Mapping[int, TaskInputs] | Exception = {}
    if report.service_error is None and report.failure is None and report.output is not None:
        kept: Mapping[int, TaskInputs] | None = None
        with transaction(engine) as session:
            sub = _current(session, report.submission_id, report.job_id, {SubmissionState.COUNTING})
            if sub is None:
                return Outcome.STOP
            try:
                kept = counting_stage.kept_token_counts(session, store, sub, settings)
                if kept is None:
                    texts = counting_stage.job_texts(session, store, sub, settings)
            except LookupError as exc:
                inputs = exc
        if kept is not None:
            inputs = kept
        elif not isinstance(inputs, Exception):
            try:
                inputs = counting_stage.tokenize_inputs(texts, settings)
            except TokenizerError as exc:
                inputs = exc
    with transaction(engine) as session:
        sub = _current(session, report.submission_id, report.job_id, {SubmissionState.COUNTING})
        if sub is None:
            return Outcome.STOP
        if report.seconds > 0:
            sub.cost_seconds = report.seconds
        _finish(session, store, sub, settings, report, inputs)
    _record_final(sub)
    metrics.record_stage("cost_store", time.monotonic() - started)
    return Outcome.STOP


def _finish(
    session: Session,
    store: BlobStore,
    sub: Submission,
    settings: Settings,
    report: CostReport,
    inputs: Mapping[int, TaskInputs] | Exception,
) -> None:
    if report.service_error is not None:
        _fail_counting(
            sub,
            SERVICE_FAULT_MESSAGE,
            detail=f"counting: {report.service_error}",
            fault=Fault.SERVICE,
        )
        return
    # every redelivery of the cost job was an attempt too
    sub.attempts += max(report.deliveries - 1, 0)
    # the log is the model's own output: no NUL (PostgreSQL refuses it in text)
    sub.sandbox_log = storable(report.log, LOG_LIMIT, tail=True)
    output = report.output
    if report.failure is not None or output is None:
        detail = report.failure or "no output"
        if output is not None and output.error is not None:
            err = output.error
            problems = "\n".join(_problem_line(p) for p in err.problems)
            detail = f"{err.type}: {err.message}\n{problems}\n\n{err.traceback}"[-TRACEBACK_LIMIT:]
        message = f"Counting failed: {(report.failure or 'no output')[:500]}"
        _fail_counting(sub, message, detail=detail, fault=Fault.USER)
        return
    if isinstance(inputs, TokenizerError):
        _fail_tokenizer(sub, inputs)
        return
    try:
        if isinstance(inputs, Exception):
            raise inputs
        job = counting_stage.build_job(session, store, sub, settings, inputs)
        check_cost_output(output, job.sizes)
    except (LookupError, SandboxOutputError) as exc:
        # The cost worker validated this report already: a mismatch here is ours.
        _fail_counting(
            sub,
            SERVICE_FAULT_MESSAGE,
            detail=f"counting: the cost report does not match the job: {exc}",
            fault=Fault.SERVICE,
        )
        return
    counting_stage.store_costs(session, sub, job, output)
    verification_stage.store_verification(session, store, sub, settings, job, report.verification)
    set_state(sub, SubmissionState.DONE, "Evaluated")


def _problem_line(problem: dict[str, Any]) -> str:
    """One listed problem: "- FILE, line N: text" (file and line where known)."""
    where = ", ".join(
        part
        for part in (
            str(problem["file"]) if problem.get("file") else "",
            f"line {problem['line']}" if problem.get("line") is not None else "",
        )
        if part
    )
    text = problem.get("problem", problem)
    return f"- {where}: {text}" if where else f"- {text}"


def run_counting(
    engine: Engine,
    settings: Settings,
    submission_id: int,
    job_id: str,
    *,
    device: str = "cpu",
    runner: Callable[..., counting_stage.SandboxRun] = counting_stage.run_cost_job,
) -> str:
    """Stage 3 in one process (tests, `paretoboard evaluate`): prepare, count, store."""
    request = prepare_counting(engine, settings, submission_id, job_id, fair=False)
    if request is None:
        return Outcome.STOP
    report = execute_counting(settings, request, device=device, runner=runner)
    return finish_counting(engine, settings, report)


def _record_final(submission: Submission) -> None:
    """Count a submission that reached its final state (after the commit)."""
    outcome = metrics.outcome_of(submission)
    if outcome is not None:
        metrics.record_final(outcome, metrics.evaluation_seconds(submission))


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
            fault=Fault.SERVICE,
        )
    _record_final(sub)


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
