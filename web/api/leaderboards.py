"""`/api/v1/leaderboard` and `/api/v1/tasks/{task}/leaderboard`: JSON or CSV.

Bodies are paged: JSON answers `limit` entries (default 100, at most 1,000) from `offset`;
CSV, an export, answers the whole board unless `limit` is given. The overall board takes a
name search `q` (a word of the name starts with it: `core.leaderboard.search`, an index, not a
scan). The first page and the whole CSV are rendered once per board version and cached with
the leaderboards (`core.leaderboard.cache`), so a warm request for them costs one read of the
board version and no rendering; other pages are sliced and rendered per request. Each body
carries an ETag; a matching If-None-Match gets 304. A body of 1 MiB or more (the whole CSV)
gets a gzip copy made with it, sent to clients that accept gzip (`web.bodies`).

The JSON is written straight from the `core.leaderboard.types` dataclasses with pydantic-core
(no per-request validation); those dataclasses are the documented response schemas, under the
page envelopes of `web.api.schemas.leaderboard`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic_core import to_json
from sqlalchemy.orm import Session

from core.leaderboard import cache, overall_csv, overall_leaderboard, task_csv, task_leaderboard
from core.leaderboard.paging import DEFAULT_PAGE, MAX_PAGE, search_entries, task_page
from core.ranking.score import DEFAULT_COVERAGE, Coverage
from core.ranking.tracks import Track
from web.api.schemas.leaderboard import OverallLeaderboardRead, TaskLeaderboardRead
from web.bodies import Body, send
from web.deps import SessionDep
from web.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["leaderboards"])

Format = Literal["json", "csv"]
FormatQuery = Annotated[
    Format, Query(alias="format", description="json (default) or csv (one header row)")
]
OffsetQuery = Annotated[int, Query(ge=0, le=10_000_000, description="Skip this many entries")]
VerifiedQuery = Annotated[
    bool,
    Query(
        description="Only verified entries and points (the platform reproduced their "
        "predictions by running the counted graph with their weights; docs/verification.md), "
        "ranked among themselves, with the baseline"
    ),
]
CoverageQuery = Annotated[
    Coverage,
    Query(
        description="all (default): only entries that cover every task with a baseline (every "
        "task on a track), so leaving out a weak task cannot raise a rank; any: every entry, "
        "by the same score (its coverage alongside). docs/ranking.md"
    ),
]
LimitQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_PAGE,
        description=f"At most this many entries (JSON default {DEFAULT_PAGE}; CSV: all)",
    ),
]
JSON = "application/json"
CSV = "text/csv; charset=utf-8"

_ERRORS = error_responses(
    (404, "Unknown task"), (422, "Invalid query parameter, e.g. an unknown track")
)


def _responses(csv_description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": f"The leaderboard as JSON, or with ?format=csv {csv_description}",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        304: {"description": "Unchanged since the ETag sent in If-None-Match"},
        **_ERRORS,
    }


@dataclass(frozen=True, slots=True)
class _Rendered:
    body: Body
    media_type: str
    filename: str | None  # sent as an attachment (CSV)

    @classmethod
    def of(cls, body: bytes, media_type: str, *, filename: str | None = None) -> _Rendered:
        return cls(Body.of(body), media_type, filename)  # a gzip copy when large (CSV)

    @property
    def etag(self) -> str:
        return self.body.etag


def _respond(request: Request, rendered: _Rendered) -> Response:
    headers = {"Cache-Control": "no-cache"}
    if rendered.filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{rendered.filename}"'
    return send(request, rendered.body, rendered.media_type, headers)


# --- overall ----------------------------------------------------------------------------------


def _fields(board: Any) -> dict[str, Any]:
    return {f.name: getattr(board, f.name) for f in dataclasses.fields(board)}


def _page_limit(fmt: Format, limit: int | None) -> int | None:
    return DEFAULT_PAGE if limit is None and fmt == "json" else limit


def _render_overall(
    session: Session,
    track: Track | None,
    fmt: Format,
    q: str,
    offset: int,
    limit: int | None,
    verified: bool = False,
    self_reported: bool = False,
    coverage: Coverage = DEFAULT_COVERAGE,
) -> _Rendered:
    board = overall_leaderboard(
        session,
        track,
        verified_only=verified,
        self_reported=self_reported,
        coverage=coverage,
    )
    entries = search_entries(board, q)
    end = None if limit is None else offset + limit
    page = entries[offset:end]
    if fmt == "csv":
        name = "leaderboard" if track is None else f"leaderboard-{track.value}"
        name += "-verified" if verified else ""
        name += "-with-self-reported" if self_reported else ""
        name += "-any-coverage" if coverage == "any" else ""
        csv_text = overall_csv(dataclasses.replace(board, entries=page))
        return _Rendered.of(csv_text.encode(), CSV, filename=f"{name}.csv")
    body = {
        **_fields(board),
        "total": len(entries),
        "offset": offset,
        "limit": limit,
        "verified_only": verified,
        "self_reported": self_reported,
        "coverage": coverage,
    }
    return _Rendered.of(to_json({**body, "entries": page}), JSON)


@router.get(
    "/leaderboard",
    response_model=OverallLeaderboardRead,
    responses=_responses("(one row per entry)"),
    summary="Overall leaderboard (ELUE score), or a parameter-budget track",
)
def get_overall_leaderboard(
    request: Request,
    session: SessionDep,
    track: Annotated[
        Track | None,
        Query(description="Rank by average performance within this parameter budget"),
    ] = None,
    fmt: FormatQuery = "json",
    q: Annotated[
        str,
        Query(max_length=200, description="Only names with a word starting with this (any case)"),
    ] = "",
    offset: OffsetQuery = 0,
    limit: LimitQuery = None,
    verified: VerifiedQuery = False,
    self_reported: Annotated[
        bool,
        Query(
            description="Rank entries with self-reported costs (typed in, not measured; "
            "flagged `self_reported`) with the measured ones; by default they are kept apart "
            "(only the baselines among them are listed)"
        ),
    ] = False,
    coverage: CoverageQuery = DEFAULT_COVERAGE,
) -> Response:
    """Listed submissions, a page at a time: per-task ELUE scores, overall score, coverage,
    best performances; `total` counts the entries matching `q` before paging. Entries with
    self-reported costs are left out unless `self_reported=true`.

    Ranked by overall ELUE score, higher first (as ELUE ranked; equal scores: more tasks
    covered first); with `track`, only entries within the parameter budget, ranked by average
    performance (then fewer parameters). `coverage` filters, it never reorders.
    """
    limit = _page_limit(fmt, limit)
    if offset == 0 and not q.strip() and limit in (None, DEFAULT_PAGE):
        rendered = cache.get(  # the first page, the whole CSV: rendered once per version
            session,
            ("overall-body", track, fmt, limit, verified, self_reported, coverage),
            lambda s: _render_overall(
                s, track, fmt, "", 0, limit, verified, self_reported, coverage
            ),
        )
    else:
        rendered = _render_overall(
            session, track, fmt, q, offset, limit, verified, self_reported, coverage
        )
    return _respond(request, rendered)


# --- per task ---------------------------------------------------------------------------------


def _render_task(
    session: Session,
    task_name: str,
    fmt: Format,
    offset: int,
    limit: int | None,
    verified: bool = False,
) -> _Rendered:
    # NotFoundError (404) for an unknown task
    board = task_leaderboard(session, task_name, verified_only=verified)
    page = task_page(board, offset, limit)
    if fmt == "csv":
        filename = f"{board.task.name}-leaderboard{'-verified' if verified else ''}.csv"
        sliced = dataclasses.replace(board, submissions=page.submissions, points=page.points)
        return _Rendered.of(task_csv(sliced).encode(), CSV, filename=filename)
    body = {
        **_fields(board),
        "scored": board.baseline is not None,
        "total": page.total,
        "offset": offset,
        "limit": limit,
        "total_points": len(board.points),
        "submissions": page.submissions,
        "points": page.points,
        "front_points": page.front_points,
        "verified_only": verified,
    }
    return _Rendered.of(to_json(body), JSON)


@router.get(
    "/tasks/{task}/leaderboard",
    response_model=TaskLeaderboardRead,
    responses=_responses("(one row per point)"),
    summary="One task: a page of ranked entries with their points, fronts, baseline and scores",
    tags=["tasks"],
)
def get_task_leaderboard(
    request: Request,
    task: str,
    session: SessionDep,
    fmt: FormatQuery = "json",
    offset: OffsetQuery = 0,
    limit: LimitQuery = None,
    verified: VerifiedQuery = False,
) -> Response:
    """Ranked submissions from `offset` (at most `limit`), and every listed point of theirs
    with its delta against the baseline curve at its FLOPs, its position relative to the
    baseline's FLOPs range, and its Pareto-front membership in (performance, FLOPs) and
    (performance, params); per submission its ELUE task score. `front_points` holds every
    point on either front, whatever the page."""
    # Task names are case-insensitive; an unknown one raises inside (nothing is cached).
    limit = _page_limit(fmt, limit)
    if offset == 0 and limit in (None, DEFAULT_PAGE):
        rendered = cache.get(
            session,
            ("task-body", task.lower(), fmt, limit, verified),
            lambda s: _render_task(s, task, fmt, 0, limit, verified),
        )
    else:
        rendered = _render_task(session, task, fmt, offset, limit, verified)
    return _respond(request, rendered)
