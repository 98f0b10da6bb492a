"""Shared request dependencies (`Annotated` aliases used by every router)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from core.db.session import engine_for, session_factory
from core.settings import Settings


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit on success, roll back on error."""
    settings: Settings = request.app.state.settings
    with session_factory(engine_for(settings.database_url))() as session, session.begin():
        yield session


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
