"""`paretoboard`: the operator's command line."""

from __future__ import annotations

import typer

from cli import db_commands, score_commands, task_commands, worker_commands

app = typer.Typer(
    name="paretoboard",
    help="Operate a paretoboard installation: database, tasks, scoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_commands.app, name="db")
app.add_typer(task_commands.app, name="tasks")
app.command("score")(score_commands.score)
app.command("worker")(worker_commands.worker)
app.command("evaluate")(worker_commands.evaluate)
app.command("reconcile")(worker_commands.reconcile)


if __name__ == "__main__":
    app()
