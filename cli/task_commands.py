"""`paretoboard tasks ...`: import and list tasks."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import session_scope, settings
from core.scoring import BootstrapConfig, rescorer
from core.storage import blob_store
from core.tasks import service

app = typer.Typer(help="Tasks: import from folders, list.", no_args_is_help=True)


@app.command("import")
def import_(
    directory: Path = typer.Argument(..., help="a task folder, or a folder of task folders"),
    replace: bool = typer.Option(
        False, "--replace", help="replace changed inputs/gold and re-score existing results"
    ),
) -> None:
    """Import tasks (test.tsv, test_full.tsv, dev.tsv, optional task.json per folder)."""
    s = settings()
    store = blob_store(s)
    rescore = rescorer(
        store,
        max_bytes=s.limits.prediction_file_bytes,
        max_problems=s.limits.max_problems,
        bootstrap=BootstrapConfig(s.scoring.bootstrap_resamples, s.scoring.bootstrap_seed),
    )
    with session_scope() as session:
        outcomes = [
            service.import_task(session, data, replace=replace, rescore=rescore)
            for data in service.read_task_folders(directory)
        ]
    for o in outcomes:
        extra = f", {o.rescored} result(s) re-scored" if o.rescored else ""
        typer.echo(f"{o.name}: {o.action.value} ({o.test_size} test rows{extra})")


@app.command("list")
def list_() -> None:
    """List imported tasks."""
    with session_scope() as session:
        tasks = service.list_tasks(session)
        if not tasks:
            typer.echo("no tasks imported yet (paretoboard tasks import DIR)")
        for t in tasks:
            typer.echo(
                f"{t.name:<10} {t.family:<11} {t.metric:<17} test={t.test_size:<6} "
                f"dev={t.dev_size:<6} {t.display_name}"
            )
