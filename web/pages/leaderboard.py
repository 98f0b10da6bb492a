"""The home page (overall leaderboard and parameter tracks) and the task pages."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from core.ranking.score import DEFAULT_COVERAGE, Coverage
from core.ranking.tracks import Track
from core.tasks.service import get_task
from web.auth import OptionalUser
from web.bodies import send
from web.deps import SessionDep
from web.pages.templating import render
from web.views.leaderboard import (
    HomeQuery,
    home_view,
    parse_millions,
    task_plot_json,
    task_view,
)

router = APIRouter(include_in_schema=False)

Page = Annotated[int, Query(ge=1, le=100_000)]
TaskName = Annotated[str, Path(max_length=64)]


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    track: Track | None = None,
    q: Annotated[str, Query(max_length=200)] = "",
    min_params: Annotated[str | None, Query(max_length=32)] = None,
    max_params: Annotated[str | None, Query(max_length=32)] = None,
    sort: Annotated[str, Query(max_length=80)] = "rank",
    dir: Literal["asc", "desc"] = "asc",
    page: Page = 1,
    partial: bool = False,
    verified: bool = False,
    self_reported: bool = False,
    coverage: Coverage = DEFAULT_COVERAGE,
) -> HTMLResponse:
    """The overall leaderboard, or one parameter track; filtered, sorted and paged by query
    (`self_reported=1`: self-reported entries ranked with the measured ones, flagged)."""
    query = HomeQuery(
        verified=verified,
        self_reported=self_reported,
        coverage=coverage,
        track=track,
        q=q,
        min_params=parse_millions(min_params),
        max_params=parse_millions(max_params),
        sort=sort,
        dir=dir,
        page=page,
    )
    view = home_view(session, query)
    template = "_board.html" if partial else "home.html"
    return render(request, template, {"view": view}, user=user, active="home")


@router.get("/tasks/{task}", response_class=HTMLResponse)
def task_page(
    request: Request,
    task: TaskName,
    session: SessionDep,
    user: OptionalUser,
    page: Page = 1,
    papers_page: Page = 1,
    verified: bool = False,
) -> HTMLResponse:
    """A task: what it is, its performance-vs-cost plots, its measured and paper entries."""
    row = get_task(session, task)  # 404 for an unknown task
    view = task_view(session, row, page=page, papers_page=papers_page, verified=verified)
    return render(request, "task.html", {"view": view}, user=user, active="tasks")


@router.get("/tasks/{task}/plot.json")
def task_plot(
    request: Request,
    task: TaskName,
    session: SessionDep,
    all: bool = False,
    verified: bool = False,
) -> Response:
    """The task plots' compact data: fronts, baseline and top entries (`all=1`: everyone;
    `verified=1`: verified points only, with the baseline)."""
    row = get_task(session, task)
    plot = task_plot_json(session, row.name, everything=all, verified=verified)
    return send(
        request,
        plot.encoded,
        "application/json",
        {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
