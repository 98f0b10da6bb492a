"""The home page (overall leaderboard and parameter tracks) and the task pages.

Anonymous viewers (`is_anonymous`: nobody logged in, no flash message waiting) share one
rendered page per (board version, page, query), kept in `core.leaderboard.cache.pages` and sent
with an ETag (a matching If-None-Match gets 304), like the API's cached bodies. A logged-in
viewer's page names them and carries their CSRF token: it is rendered per request, never kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from core.errors import NotFoundError
from core.leaderboard.cache import pages
from core.models import Task, User
from core.ranking.score import DEFAULT_COVERAGE, Coverage
from core.ranking.tracks import Track
from web.auth import OptionalUser
from web.bodies import Body, send
from web.deps import SessionDep
from web.lookups import PageTaskDep
from web.pages.templating import PAGE_HEADERS, anonymous_html, is_anonymous, render
from web.views.leaderboard import (
    HomeQuery,
    home_view,
    parse_millions,
    task_plot_json,
    task_view,
)

router = APIRouter(include_in_schema=False)

Page = Annotated[int, Query(ge=1, le=100_000)]
HTML = "text/html; charset=utf-8"


def _page(
    request: Request,
    session: Session,
    user: User | None,
    template: str,
    key: Hashable,
    view: Callable[[Session], object],
    *,
    active: str,
) -> Response:
    """`template` with `view(session)`: for an anonymous viewer the page kept for this board
    version and `key` (made once; `view` must read only through the session it is given)."""
    if not is_anonymous(request, user):
        return render(request, template, {"view": view(session)}, user=user, active=active)

    def make(s: Session) -> Body:
        return Body.of(anonymous_html(template, {"view": view(s)}, active=active).encode())

    body = pages.get(session, ("page:html", template, key), make)
    return send(request, body, HTML, PAGE_HEADERS)


def _task(session: Session, task_id: int) -> Task:
    row = session.get(Task, task_id)
    if row is None:  # deleted since the request looked it up
        raise NotFoundError("No such task")
    return row


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
) -> Response:
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
    template = "_board.html" if partial else "home.html"
    return _page(
        request, session, user, template, query, lambda s: home_view(s, query), active="home"
    )


@router.get("/tasks/{task}", response_class=HTMLResponse)
def task_page(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    row: PageTaskDep,
    page: Page = 1,
    papers_page: Page = 1,
    verified: bool = False,
) -> Response:
    """A task: what it is, its performance-vs-cost plots, its measured and paper entries."""
    task_id = row.id
    return _page(
        request,
        session,
        user,
        "task.html",
        (task_id, page, papers_page, verified),
        lambda s: task_view(
            s, _task(s, task_id), page=page, papers_page=papers_page, verified=verified
        ),
        active="tasks",
    )


@router.get("/tasks/{task}/plot.json")
def task_plot(
    request: Request,
    row: PageTaskDep,
    session: SessionDep,
    all: bool = False,
    verified: bool = False,
) -> Response:
    """The task plots' compact data: fronts, baseline and top entries (`all=1`: everyone;
    `verified=1`: verified points only, with the baseline)."""
    plot = task_plot_json(session, row.name, everything=all, verified=verified)
    return send(
        request,
        plot.encoded,
        "application/json",
        {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
