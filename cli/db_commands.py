"""`paretoboard db ...`: schema migrations."""

from __future__ import annotations

import typer

from cli.common import settings
from core.db import migrate

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database up to REVISION (default: the latest)."""
    migrate.upgrade(settings().database_url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def downgrade(revision: str = typer.Argument(..., help="target revision, e.g. base")) -> None:
    """Migrate the database down to REVISION."""
    migrate.downgrade(settings().database_url, revision)
    typer.echo(f"database at {revision}")
