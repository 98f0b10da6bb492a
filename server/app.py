"""The FastAPI application factory (`uvicorn server.app:create_app --factory`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

import frontend
from core.settings import Settings, get_settings
from frontend.pages.errors import error_page
from frontend.routes import router as pages_router
from server.api_docs import install_api_docs
from server.deps import refuse_control_characters
from server.errors import install_error_handlers
from server.limits import BodySizeLimitMiddleware
from server.metrics import MetricsMiddleware
from server.routers import health, leaderboards, papers, submissions, tasks
from server.routers import session as session_routes
from server.routers import tokens as token_routes
from server.routers import users as user_routes

# Submission uploads, which may carry model weights besides the request limit's worth of files.
UPLOAD_PATHS = frozenset(
    ("/api/v1/submissions", "/api/v1/submissions/validate", "/submit", "/submit/check")
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own settings."""
    settings = settings or get_settings()
    app = FastAPI(
        title="paretoboard",
        version="0.1.0",
        docs_url=None,  # served by server/api_docs.py, with no CDN
        openapi_url="/api/openapi.json",
        redoc_url=None,
        # NUL and other control characters in the path or query: 422, before any handler.
        dependencies=[Depends(refuse_control_characters)],
    )
    app.state.settings = settings
    install_error_handlers(app, html_page=error_page)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie="paretoboard_session",
        max_age=14 * 24 * 3600,
        same_site="lax",
        https_only=settings.mode.value == "production",
    )
    # Counted while the body streams in (and from Content-Length): 413 past the limit.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.limits.request_bytes,
        upload_paths=UPLOAD_PATHS,
        upload_max_bytes=settings.limits.request_bytes + settings.limits.max_weights_bytes,
    )
    # Outermost: times every request, refused ones included (`/metrics`, server/metrics.py).
    app.add_middleware(MetricsMiddleware)
    app.include_router(health.router)
    app.include_router(tasks.router)
    app.include_router(submissions.router)
    app.include_router(papers.router)
    app.include_router(leaderboards.router)
    app.include_router(user_routes.router)
    app.include_router(session_routes.router)
    app.include_router(session_routes.sessions_router)
    app.include_router(token_routes.router)
    app.include_router(pages_router)
    install_api_docs(app, openapi_url="/api/openapi.json")
    static = Path(frontend.__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    return app
