"""`paretoboard` as the light client installs it: the submitter's commands, and `count` when the
full install (the server's counter: torch, the sandbox) is importable."""

from __future__ import annotations

import typer

from paretoboard_client import commands

FULL_INSTALL = (
    "counting needs the full install (the server's counter: PyTorch, the bubblewrap sandbox "
    "and this installation's task data): install paretoboard itself (scripts/install.sh in its "
    "repository), run `paretoboard tasks import DIR`, then `paretoboard count`"
)

app = typer.Typer(
    name="paretoboard",
    help="Submit to a paretoboard server and follow your submissions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("submit")(commands.submit)
app.command("status")(commands.status)
app.command("results")(commands.results)

try:  # the full install: the same command as `paretoboard count` there
    from cli.count_commands import count as _count
except ImportError:

    @app.command(
        "count",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def count() -> None:
        """Count FLOPs and parameters as the platform will (needs the full install)."""
        typer.echo(f"error: {FULL_INSTALL}", err=True)
        raise typer.Exit(code=2)

else:
    app.command("count")(_count)


if __name__ == "__main__":
    app()
