"""The FastAPI application factory (`uvicorn server.app:create_app --factory`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import frontend
from core.settings import Settings, get_settings
from frontend.routes import router as pages_router
from server.errors import install_error_handlers
from server.routers import health, tasks


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own settings."""
    app = FastAPI(
        title="paretoboard",
        version="0.1.0",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings or get_settings()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(tasks.router)
    app.include_router(pages_router)
    static = Path(frontend.__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    return app
