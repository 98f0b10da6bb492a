"""Server-rendered pages: every page route, and the assets they load."""

from __future__ import annotations

from fastapi import APIRouter

from web.pages import (
    about,
    accounts,
    admin,
    assets,
    compare,
    leaderboard,
    login,
    manage,
    papers,
    submissions,
)

router = APIRouter(include_in_schema=False)
for _module in (
    assets,
    leaderboard,
    compare,
    papers,
    submissions,
    manage,
    login,
    accounts,
    about,
    admin,
):
    router.include_router(_module.router)
