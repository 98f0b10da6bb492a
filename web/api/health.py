"""Liveness (`/healthz`), readiness (`/readyz`: database and broker) and `/metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from server import probes
from web import metrics
from web.deps import SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


# Operator probes, not API: kept out of the OpenAPI document (503 is their normal "no").
@router.get("/readyz", include_in_schema=False)
async def readyz(settings: SettingsDep) -> JSONResponse:
    """Readiness: 200 when the database and the broker answer, else 503 saying which not."""
    db = await run_in_threadpool(probes.database, settings)
    broker = await run_in_threadpool(probes.broker, settings)
    checks: dict[str, Any] = {
        "database": "ok" if db.ok else f"down: {db.error}",
        "broker": "ok" if broker.ok else f"down: {broker.error}",
    }
    ready = db.ok and broker.ok
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(settings: SettingsDep) -> Response:
    body = await run_in_threadpool(metrics.exposition, settings)
    return Response(body, media_type=metrics.CONTENT_TYPE)
