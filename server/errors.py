"""The one mapping from domain errors to HTTP responses (JSON for the API)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from core.errors import ParetoboardError

log = logging.getLogger(__name__)
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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ParetoboardError)
    async def _domain(_request: Request, exc: ParetoboardError) -> JSONResponse:
        details = [p.as_dict() for p in exc.problems]
        # An error may carry response headers (e.g. Retry-After on a 429).
        headers: Mapping[str, str] | None = getattr(exc, "headers", None)
        return JSONResponse(
            error_body(exc.code, exc.message, details), exc.status_code, headers=headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Framework errors (unknown route, wrong method, body too large...) in the same shape.
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            headers["Allow"] = allowed  # Starlette names only the first route on the path
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details: list[dict[str, object]] = [
            {
                "file": None,
                "line": None,
                "column": ".".join(map(str, e["loc"])),
                "problem": e["msg"],
            }
            for e in exc.errors()
        ]
        return JSONResponse(error_body("invalid_request", "Invalid request", details), 422)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "Internal server error"), 500)
