"""The one mapping from domain errors to HTTP responses: JSON for the API, and an HTML page
for browsers asking for text/html on any path outside /api (rendered by the `html_page` the app
passes in, the site's error template)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from core.errors import STORAGE_FULL_MESSAGE, ParetoboardError, StorageFullError
from core.storage import is_disk_full

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER = 5  # seconds, on a 503 while the database is away
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def error_body(
    code: str, message: str, details: Sequence[Mapping[str, object]] | None = None
) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": list(details or [])}}


def _allowed_methods(request: Request) -> str:
    """Every method some route of the app accepts on this path (for a 405's Allow header)."""
    allowed = []
    for method in ("DELETE", "GET", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


# (request, status, message, details) -> the HTML error page.
HtmlErrorPage = Callable[[Request, int, str, Sequence[Mapping[str, object]]], Response]


def wants_html(request: Request) -> bool:
    """A browser asking for a page (not an API client): text/html accepted, path outside /api."""
    path = request.url.path
    if path == "/api" or path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "").lower()


def install_error_handlers(app: FastAPI, html_page: HtmlErrorPage | None = None) -> None:
    def respond(
        request: Request,
        status: int,
        code: str,
        message: str,
        details: Sequence[Mapping[str, object]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        if html_page is not None and wants_html(request):
            try:
                page = html_page(request, status, message, details)
            except Exception:  # the page must never hide the error it reports
                log.exception("could not render the HTML error page")
            else:
                page.headers.update(headers or {})
                return page
        return JSONResponse(error_body(code, message, details), status, headers=headers)

    @app.exception_handler(ParetoboardError)
    async def _domain(request: Request, exc: ParetoboardError) -> Response:
        details = [p.as_dict() for p in exc.problems]
        # An error may carry response headers (e.g. Retry-After on a 429).
        headers: Mapping[str, str] | None = getattr(exc, "headers", None)
        return respond(request, exc.status_code, exc.code, exc.message, details, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # Framework errors (unknown route, wrong method, body too large...) in the same shape.
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            headers["Allow"] = allowed  # Starlette names only the first route on the path
        return respond(request, exc.status_code, code, str(exc.detail), (), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        details: list[dict[str, object]] = [
            {
                "file": None,
                "line": None,
                "column": ".".join(map(str, e["loc"])),
                "problem": e["msg"],
            }
            for e in exc.errors()
        ]
        return respond(request, 422, "invalid_request", "Invalid request", details)

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.DisconnectionError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _database_away(request: Request, exc: Exception) -> Response:
        if is_disk_full(exc):  # SQLite's "database or disk is full", PostgreSQL's disk_full
            return storage_full(request, exc)
        # The database is unreachable, restarting, or (SQLite) busy past its timeout: the
        # request's transaction was rolled back, so the client may simply try again.
        log.warning("database unavailable: %s", type(exc).__name__)
        return respond(
            request,
            503,
            "database_unavailable",
            "The database is not reachable right now; nothing was changed. Try again shortly.",
            (),
            {"Retry-After": str(DATABASE_RETRY_AFTER)},
        )

    def storage_full(request: Request, exc: BaseException) -> Response:
        # The transaction was rolled back and the request's files removed on the way out.
        log.error("storage full: %s: %s", type(exc).__name__, exc)
        return respond(request, 507, StorageFullError.code, STORAGE_FULL_MESSAGE)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if is_disk_full(exc):  # ENOSPC or EDQUOT wherever it was raised
            return storage_full(request, exc)
        log.exception("unhandled error", exc_info=exc)
        return respond(request, 500, "internal_error", "Internal server error")
