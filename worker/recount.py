"""`paretoboard recount`: count every stored measured result again under the current counter.

A result records the counter version and the rule table's hash that produced it. A result
whose version or hash differs from the current one (or that has none: counted before the
trusted counter) is counted again, its submission's whole job at once, through the same
sandboxed capture and trusted counter as a new submission. Idempotent: a second run finds
nothing to do. A submission whose model can no longer be counted keeps its old numbers marked
incomplete (off the fronts, out of the ELUE score), with the reason in its cost details.
The published baseline's points are counted again by the seed (`ensure_baseline` lists points
counted by another version).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, or_, select

from core.cost_counter import COUNTER_VERSION
from core.db.session import transaction
from core.models import Result, ResultCost, Submission, SubmissionKind, SubmissionState
from core.settings import Settings
from core.storage import blob_store
from worker import counting_stage
from worker.tokenize_job import TokenizerError

log = logging.getLogger(__name__)


@dataclass
class RecountReport:
    recounted: list[int] = field(default_factory=list)  # submission ids
    failed: dict[int, str] = field(default_factory=dict)  # submission id -> why
    results: int = 0  # results written


def current_rule_hash() -> str:
    from worker.graphcount.rules import rule_table_hash

    return rule_table_hash()


def stale_submissions(engine: Engine, rule_hash: str) -> list[int]:
    """Measured, evaluated submissions with a result counted by another counter or rules."""
    with transaction(engine) as session:
        stale = (
            select(Result.submission_id)
            .join(Submission, Submission.id == Result.submission_id)
            .where(
                Submission.kind == SubmissionKind.MEASURED,
                Submission.state == SubmissionState.DONE,
                Result.cost_status == "counted",
                or_(
                    Result.counter_version.is_(None),
                    Result.counter_version != COUNTER_VERSION,
                    Result.rule_hash.is_(None),
                    Result.rule_hash != rule_hash,
                ),
            )
            .distinct()
            .order_by(Result.submission_id)
        )
        return [int(sid) for sid in session.scalars(stale)]


def recount(
    engine: Engine,
    settings: Settings,
    *,
    device: str = "cpu",
    progress: Callable[[int, int, int, str], None] | None = None,
    runner: Callable[..., counting_stage.SandboxRun] = counting_stage.run_cost_job,
) -> RecountReport:
    """Count every stale submission again; `progress(i, n, submission_id, outcome)`."""
    report = RecountReport()
    store = blob_store(settings)
    todo = stale_submissions(engine, current_rule_hash())
    for i, sid in enumerate(todo, start=1):
        with transaction(engine) as session:
            sub = session.get(Submission, sid)
            if sub is None:
                continue
            try:
                texts = counting_stage.job_texts(session, store, sub, settings)
                model = store.read_bytes(counting_stage.model_sha256(session, sub))
            except LookupError as exc:
                _mark_failed(session, sid, f"could not be recounted: {exc}")
                report.failed[sid] = str(exc)
                _say(progress, i, len(todo), sid, f"failed: {exc}")
                continue
        try:  # outside any transaction: a slow tokenizer holds no lock
            inputs = counting_stage.tokenize_inputs(texts, settings)
        except TokenizerError as exc:
            with transaction(engine) as session:
                _mark_failed(session, sid, f"could not be recounted: {exc.message}")
            report.failed[sid] = exc.message
            _say(progress, i, len(todo), sid, f"failed: {exc.message[:200]}")
            continue
        with transaction(engine) as session:
            sub = session.get(Submission, sid)
            if sub is None:
                continue
            try:
                job = counting_stage.build_job(session, store, sub, settings, inputs)
            except LookupError as exc:
                _mark_failed(session, sid, f"could not be recounted: {exc}")
                report.failed[sid] = str(exc)
                _say(progress, i, len(todo), sid, f"failed: {exc}")
                continue
        try:
            run = runner(model, job, settings, device=device)
            failure = run.failure
        except counting_stage.CounterError as exc:
            run, failure = None, f"the counter failed: {exc}"
        with transaction(engine) as session:
            sub = session.get(Submission, sid, with_for_update=True)
            if sub is None:
                continue
            if failure is None and run is not None and run.output is not None:
                counting_stage.store_costs(session, sub, job, run.output)
                report.recounted.append(sid)
                report.results += len(job.result_entry)
                _say(progress, i, len(todo), sid, f"recounted ({len(job.result_entry)} results)")
            else:
                why = failure or "no output"
                _mark_failed(session, sid, f"could not be recounted: {why}")
                report.failed[sid] = why
                _say(progress, i, len(todo), sid, f"failed: {why[:200]}")
    return report


def _mark_failed(session: object, submission_id: int, why: str) -> None:
    """Old numbers stay, as lower bounds: incomplete, off the fronts, the reason recorded."""
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    results = session.scalars(
        select(Result).where(Result.submission_id == submission_id, Result.cost_status == "counted")
    )
    for result in results:
        result.cost_incomplete = True
        result.counter_version = COUNTER_VERSION
        result.rule_hash = current_rule_hash()
        cost = session.get(ResultCost, result.id)
        if cost is not None:
            cost.details = {**dict(cost.details or {}), "recount_failed": why[:2000]}
    session.flush()


def _say(
    progress: Callable[[int, int, int, str], None] | None, i: int, n: int, sid: int, text: str
) -> None:
    log.info("recount %d/%d: submission %d %s", i, n, sid, text)
    if progress is not None:
        progress(i, n, sid, text)
