"""`paretoboard worker`, `evaluate ID`, `reconcile`: the evaluation pipeline from the shell."""

from __future__ import annotations

import typer

from cli.common import session_scope, settings
from core.db.session import engine_for


def worker(
    queues: str = typer.Option("score,cost", help="comma-separated queues to consume"),
    concurrency: int = typer.Option(1, help="processes; keep 1 per GPU for the cost queue"),
    beat: bool = typer.Option(
        False, "--beat", help="also run the reconciler schedule (one per site)"
    ),
    loglevel: str = typer.Option("INFO"),
) -> None:
    """Start a Celery worker (Redis broker from PARETOBOARD_BROKER__URL)."""
    from worker.celery_app import get_app

    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        "--prefetch-multiplier=1",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv += ["--beat", f"--schedule={settings().storage.data_dir / 'celerybeat-schedule'}"]
    get_app().worker_main(argv)


def evaluate(
    submission_id: int = typer.Argument(..., help="submission id"),
    device: str = typer.Option("", help="cpu or cuda (default: the settings' cost_device)"),
) -> None:
    """Run the whole pipeline for one submission in the foreground (operators)."""
    from core.models import Submission
    from worker.device import detect_device
    from worker.pipeline import evaluate as run

    s = settings()
    run(
        engine_for(s.database_url),
        s,
        submission_id,
        device=device or detect_device(s.limits.cost_device),
    )
    with session_scope() as session:
        sub = session.get(Submission, submission_id)
        assert sub is not None
        typer.echo(f"submission {submission_id}: {sub.state.value}: {sub.state_message}")
        if sub.error_detail:
            typer.echo(sub.error_detail, err=True)
        if sub.state.value != "done":
            raise typer.Exit(code=1)


def reconcile(
    older_than: int = typer.Option(0, help="seconds unchanged before re-enqueueing (0: settings)"),
) -> None:
    """Re-enqueue submissions stuck in an active state (run periodically, or use --beat)."""
    import datetime as dt

    from worker.reconcile import reconcile as run
    from worker.tasks import send_count, send_score

    s = settings()
    done = run(
        engine_for(s.database_url),
        s,
        send_score=send_score,
        send_count=send_count,
        older_than=dt.timedelta(seconds=older_than) if older_than else None,
    )
    for r in done:
        what = f"re-enqueued (job {r.job_id})" if r.job_id else "failed after too many attempts"
        typer.echo(f"submission {r.submission_id} ({r.state.value}): {what}")
    if not done:
        typer.echo("nothing stuck")
