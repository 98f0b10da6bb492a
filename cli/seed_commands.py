"""`paretoboard seed`: the first-run data (published baseline, example submissions); idempotent."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import fail, settings
from core.db.session import engine_for
from core.errors import ParetoboardError
from core.locks import LockName, try_lock
from core.settings import Settings

if TYPE_CHECKING:  # the seed modules are imported when the command runs, not on every command
    from core.seed.baseline import CountedFlops, FlopsRequest
    from core.seed.run import FlopsCounter, Sender

log = logging.getLogger(__name__)


class Evaluate(enum.StrEnum):
    WORKER = "worker"  # queue to the Celery worker (scripts/run.sh starts one)
    HERE = "here"  # run the pipeline in this process
    NONE = "none"  # leave them queued


def seed(
    baselines: Path | None = typer.Option(
        None, help="the published baselines (default: <tasks dir>/baselines.json)"
    ),
    examples: bool = typer.Option(
        True, "--examples/--no-examples", help="seed the example submissions"
    ),
    count: bool = typer.Option(
        True, "--count/--no-count", help="count the baseline's unpublished FLOPs in the sandbox"
    ),
    evaluate: Evaluate = typer.Option(
        Evaluate.WORKER, help="how example submissions are evaluated: worker, here or none"
    ),
) -> None:
    """Seed the published ElasticBERT-base baseline and the example submissions (idempotent)."""
    s = settings()
    engine = engine_for(s.database_url)
    path = baselines or s.storage.tasks_dir / "baselines.json"
    start = time.perf_counter()
    # One seed at a time for the whole installation (an advisory lock on PostgreSQL, a file
    # lock beside the SQLite database).
    with try_lock(engine, LockName.SEED) as alone:
        if not alone:
            typer.echo("seed: another seed is running; nothing to do")
            return
        from core.seed.run import seed as run_seed

        try:
            report = run_seed(
                engine,
                s,
                baselines=path,
                count_flops=_counter(s) if count else None,
                send=_sender(s, evaluate),
                examples=examples,
                echo=lambda line: typer.echo(f"seed: {line}"),
            )
        except ParetoboardError as exc:
            fail(exc)
            return
    changed = bool(
        report.baseline
        and (
            report.baseline.created
            or report.baseline.points_created
            or report.baseline.points_updated
            or report.baseline.designated
        )
    ) or bool(report.counted or any(e.job_id for e in report.examples))
    typer.echo(
        f"seed: {'done' if changed else 'nothing to do'} in {time.perf_counter() - start:.1f} s"
    )
    if report.errors:
        for error in report.errors:
            typer.echo(f"seed: error: {error}", err=True)
        raise typer.Exit(code=1)


def baseline_recount(s: Settings) -> None:
    """The seed's baseline step alone (no examples): counts points made by another counter."""
    from core.seed.run import seed as run_seed

    path = s.storage.tasks_dir / "baselines.json"
    if not path.is_file():
        typer.echo(f"recount: no published baselines at {path}; baseline skipped")
        return
    engine = engine_for(s.database_url)
    with try_lock(engine, LockName.SEED) as alone:
        if not alone:
            typer.echo("recount: a seed is running; the baseline is counted by it")
            return
        report = run_seed(
            engine,
            s,
            baselines=path,
            count_flops=_counter(s),
            send=None,
            examples=False,
            echo=lambda line: typer.echo(f"recount: baseline: {line}"),
        )
    for error in report.errors:
        typer.echo(f"recount: baseline error: {error}", err=True)


def _counter(s: Settings) -> FlopsCounter:
    """The sandboxed cost job (worker.seed_costs) on the worker's device."""

    def count(requests: Sequence[FlopsRequest]) -> Mapping[FlopsRequest, CountedFlops]:
        from worker.device import detect_device
        from worker.seed_costs import count_baseline_flops

        device = detect_device(s.limits.cost_device)
        return count_baseline_flops(engine_for(s.database_url), s, requests, device=device)

    return count


def _sender(s: Settings, evaluate: Evaluate) -> Sender | None:
    if evaluate is Evaluate.NONE:
        return None
    if evaluate is Evaluate.HERE:

        def run_here(submission_id: int, job_id: str) -> str:
            from core.db.session import transaction
            from core.models import Submission
            from worker.device import detect_device
            from worker.pipeline import evaluate as run

            engine = engine_for(s.database_url)
            run(engine, s, submission_id, device=detect_device(s.limits.cost_device))
            with transaction(engine) as session:
                sub = session.get(Submission, submission_id)
                state = f"{sub.state.value}: {sub.state_message}" if sub else "gone"
            return f"evaluated in this process ({state})"

        return run_here

    def queue(submission_id: int, job_id: str) -> str:
        from worker.tasks import send_score

        try:
            send_score(submission_id, job_id)
        except Exception as exc:  # broker down: the reconciler re-sends it later
            log.warning("submission %s: could not reach the broker: %s", submission_id, exc)
            return "the queue could not be reached; it stays queued for the reconciler"
        return "queued to the worker"

    return queue
