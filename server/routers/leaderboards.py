"""`/api/v1/leaderboard` and `/api/v1/tasks/{task}/leaderboard`: JSON or CSV.

Rendered bodies are cached with the leaderboards themselves (same fingerprint rule, see
`core.leaderboard.cache`), so a warm request costs at most one fingerprint query and no
rendering. Each body carries an ETag; a matching If-None-Match gets 304.

The JSON is written straight from the `core.leaderboard.types` dataclasses with pydantic-core
(no per-request validation); their field names are those of the documented response models in
`server.leaderboard_schemas` (the tests check the two agree).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic_core import to_json
from sqlalchemy.orm import Session

from core.leaderboard import cache, overall_csv, overall_leaderboard, task_csv, task_leaderboard
from core.ranking.tracks import Track
from server.deps import SessionDep
from server.leaderboard_schemas import OverallLeaderboardRead, TaskLeaderboardRead

router = APIRouter(prefix="/api/v1", tags=["leaderboards"])

Format = Literal["json", "csv"]
FormatQuery = Annotated[
    Format, Query(alias="format", description="json (default) or csv (one header row)")
]
JSON = "application/json"
CSV = "text/csv; charset=utf-8"

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown task (error body: {error: {code, message, details}})"},
    422: {"description": "Invalid query parameter, e.g. an unknown track"},
}


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
    body: bytes
    media_type: str
    etag: str
    filename: str | None  # sent as an attachment (CSV)

    @classmethod
    def of(cls, body: bytes, media_type: str, *, filename: str | None = None) -> _Rendered:
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        return cls(body, media_type, f'"{digest}"', filename)


def _respond(request: Request, rendered: _Rendered) -> Response:
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    if rendered.filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{rendered.filename}"'
    sent = request.headers.get("if-none-match")
    if sent is not None and (
        sent.strip() == "*" or rendered.etag in (t.strip() for t in sent.split(","))
    ):
        return Response(status_code=304, headers=headers)
    return Response(content=rendered.body, media_type=rendered.media_type, headers=headers)


# --- overall ----------------------------------------------------------------------------------


def _fields(board: Any) -> dict[str, Any]:
    return {f.name: getattr(board, f.name) for f in dataclasses.fields(board)}


def _render_overall(
    session: Session, track: Track | None, fmt: Format, offset: int, limit: int | None
) -> _Rendered:
    board = overall_leaderboard(session, track)
    end = None if limit is None else offset + limit
    page = board.entries[offset:end]
    if fmt == "csv":
        name = "leaderboard" if track is None else f"leaderboard-{track.value}"
        csv_text = overall_csv(dataclasses.replace(board, entries=page))
        return _Rendered.of(csv_text.encode(), CSV, filename=f"{name}.csv")
    body = {**_fields(board), "total": len(board.entries), "offset": offset, "limit": limit}
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
    offset: Annotated[int, Query(ge=0, description="Skip this many ranked entries")] = 0,
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="At most this many")] = None,
) -> Response:
    """Every listed submission: per-task ELUE scores, overall score, coverage, best performances.

    Ranked by tasks covered, then overall ELUE score; with `track`, only entries within the
    parameter budget, ranked by average performance (coverage first, then fewer parameters).
    """
    if offset == 0 and limit is None:  # the whole board: rendered once per change
        rendered = cache.get(
            session,
            ("overall-body", track, fmt),
            lambda: _render_overall(session, track, fmt, 0, None),
        )
    else:
        rendered = _render_overall(session, track, fmt, offset, limit)
    return _respond(request, rendered)


# --- per task ---------------------------------------------------------------------------------


def _render_task(session: Session, task_name: str, fmt: Format) -> _Rendered:
    board = task_leaderboard(session, task_name)  # NotFoundError (404) for an unknown task
    if fmt == "csv":
        filename = f"{board.task.name}-leaderboard.csv"
        return _Rendered.of(task_csv(board).encode(), CSV, filename=filename)
    return _Rendered.of(to_json({**_fields(board), "scored": board.baseline is not None}), JSON)


@router.get(
    "/tasks/{task}/leaderboard",
    response_model=TaskLeaderboardRead,
    responses=_responses("(one row per point)"),
    summary="One task: every point, Pareto-front flags, baseline curve and task scores",
    tags=["tasks"],
)
def get_task_leaderboard(
    request: Request, task: str, session: SessionDep, fmt: FormatQuery = "json"
) -> Response:
    """Every listed point on the task with its delta against the baseline curve at its FLOPs,
    its position relative to the baseline's FLOPs range, and its Pareto-front membership in
    (performance, FLOPs) and (performance, params); per submission its ELUE task score."""
    # Task names are case-insensitive; an unknown one raises inside (nothing is cached).
    rendered = cache.get(
        session, ("task-body", task.lower(), fmt), lambda: _render_task(session, task, fmt)
    )
    return _respond(request, rendered)
