"""`paretoboard`: the operator's command line."""

from __future__ import annotations

import typer

from cli import (
    count_commands,
    db_commands,
    export_commands,
    score_commands,
    seed_commands,
    serve_commands,
    task_commands,
    user_commands,
    worker_commands,
)
from paretoboard_client import commands as client_commands

app = typer.Typer(
    name="paretoboard",
    help="Operate a paretoboard installation: database, tasks, scoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_commands.app, name="db")
app.add_typer(task_commands.app, name="tasks")
app.add_typer(user_commands.app, name="users")
app.add_typer(user_commands.app, name="user", hidden=True)  # `paretoboard user reset-link`
app.add_typer(export_commands.export_app, name="export")
app.add_typer(export_commands.import_app, name="import")
app.command("score")(score_commands.score)
app.command("seed")(seed_commands.seed)
app.command("serve")(serve_commands.serve)
app.command("worker")(worker_commands.worker)
app.command("evaluate")(worker_commands.evaluate)
app.command("reconcile")(worker_commands.reconcile)
app.command("recount")(worker_commands.recount)
app.command("uncertainty")(score_commands.uncertainty)
# The submitter's client (talks to a server over HTTP).
app.command("submit")(client_commands.submit)
app.command("status")(client_commands.status)
app.command("results")(client_commands.results)
# The server's counter run locally (the model captured in the sandbox, counted by the same code).
app.command("count")(count_commands.count)


if __name__ == "__main__":
    app()
