"""Shared request dependencies (`Annotated` aliases used by every router)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from core.db.session import engine_for, session_factory
from core.errors import InvalidInputError, Problem
from core.settings import Settings
from core.text import text_problem


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit on success, roll back on error.

    Used with `scope="function"` (`SessionDep`): the commit happens when the handler returns,
    before the response is sent, so a client that got a 2xx can rely on the write (a token
    created is usable, a token revoked is refused, on the very next request). With FastAPI's
    default scope the commit ran after the response had gone out.
    """
    settings: Settings = request.app.state.settings
    with session_factory(engine_for(settings.database_url))() as session:
        try:
            yield session
            session.commit()  # what the handler left open (it may have committed part already)
        except BaseException:
            session.rollback()
            raise


def release_connection(session: Session) -> None:
    """End the request's transaction so far (what it read, e.g. the caller's token or session)
    and give its pooled connection back while a large body streams in: 50 uploads at once must
    not hold 50 connections (bench/bench_load.py: the pool ran dry and reads answered 503).
    Objects stay loaded; the next query takes a connection again."""
    keep = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = keep


def refuse_control_characters(request: Request) -> None:
    """422 for a path or query parameter holding NUL or another control character.

    Installed on the whole app, so every route (API and pages) refuses them before any handler,
    and the database, sees them; the error names the parameter.
    """
    problems: list[Problem] = []
    if (problem := text_problem(request.url.path)) is not None:
        problems.append(Problem(f"path: {problem}", column="path"))
    for key, value in request.query_params.multi_items():
        if (problem := text_problem(key)) is not None:
            problems.append(Problem(f"query parameter name: {problem}", column="query"))
        elif (problem := text_problem(value)) is not None:
            problems.append(Problem(f"{key}: {problem}", column=f"query.{key}"))
    if problems:
        raise InvalidInputError("Invalid request: control characters are not allowed", problems)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
