"""The one mapping from domain errors to HTTP responses (JSON for the API)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.errors import ParetoboardError

log = logging.getLogger(__name__)


def error_body(
    code: str, message: str, details: Sequence[Mapping[str, object]] | None = None
) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": list(details or [])}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ParetoboardError)
    async def _domain(_request: Request, exc: ParetoboardError) -> JSONResponse:
        details = [p.as_dict() for p in exc.problems]
        return JSONResponse(error_body(exc.code, exc.message, details), exc.status_code)

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
