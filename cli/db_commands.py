"""`paretoboard db ...`: schema migrations."""

from __future__ import annotations

import typer

from cli.common import settings
from core.db import migrate
from core.settings import StorageBackend

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database up to REVISION (default: the latest); with the S3 blob store, create
    its bucket when it does not exist."""
    s = settings()
    migrate.upgrade(s.database_url, revision)
    typer.echo(f"database at {revision}")
    if s.storage.backend is StorageBackend.S3:
        from core.storage_s3 import S3BlobStore

        store = S3BlobStore.from_settings(s.storage)
        created = store.ensure_bucket()
        typer.echo(f"blob store: bucket {store.bucket!r} {'created' if created else 'exists'}")


@app.command()
def downgrade(revision: str = typer.Argument(..., help="target revision, e.g. base")) -> None:
    """Migrate the database down to REVISION."""
    migrate.downgrade(settings().database_url, revision)
    typer.echo(f"database at {revision}")
