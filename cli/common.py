"""Shared CLI plumbing: settings, a transaction, and printing domain errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy.orm import Session

from core.db.session import engine_for, transaction
from core.errors import ParetoboardError
from core.settings import Settings, get_settings


def settings() -> Settings:
    return get_settings()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction for one command; a domain error prints its problems and exits 1."""
    try:
        with transaction(engine_for(settings().database_url)) as session:
            yield session
    except ParetoboardError as exc:
        fail(exc)


def fail(exc: ParetoboardError) -> None:
    typer.echo(f"error: {exc.message}", err=True)
    for problem in exc.problems:
        typer.echo(f"  - {problem}", err=True)
    raise typer.Exit(code=1)
