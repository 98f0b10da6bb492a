"""Server-rendered pages: every page route, and the assets they load."""

from __future__ import annotations

from fastapi import APIRouter

from frontend import assets
from frontend.pages import about, accounts, admin, leaderboard, papers, submissions

router = APIRouter(include_in_schema=False)
for _module in (assets, leaderboard, papers, submissions, accounts, about, admin):
    router.include_router(_module.router)
