"""The default login throttle with long waits, so that no test can outrun a backoff."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from fastapi import FastAPI

from core.db.session import engine_for
from core.settings import Settings
from core.users.login_limits import Backoff, LoginLimiter, LoginLimits
from web.login import get_login_limiter


class _App(Protocol):
    app: FastAPI
    settings: Settings


def _slow(backoff: Backoff) -> Backoff:
    return Backoff(backoff.free, dt.timedelta(hours=1), dt.timedelta(minutes=10))


def slow_login_limits(api: _App) -> None:
    """The default buckets (same free failures), each first wait 10 minutes."""
    engine = engine_for(api.settings.database_url)
    d = LoginLimits()
    chosen = LoginLimits(
        per_ip=_slow(d.per_ip),
        per_account_ip=_slow(d.per_account_ip),
        per_account=_slow(d.per_account),
        per_device=_slow(d.per_device),
    )
    api.app.dependency_overrides[get_login_limiter] = lambda: LoginLimiter(engine, chosen)
