"""The FastAPI application factory (`uvicorn web.app:create_app --factory`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

import web.pages
from core.db.session import engine_for
from core.leftovers import clean_orphan_blobs, clean_staging
from core.settings import Settings, get_settings
from core.storage import blob_store
from web.api import health, leaderboards, papers, submissions, tasks
from web.api import session as session_routes
from web.api import tokens as token_routes
from web.api import users as user_routes
from web.api_docs import install_api_docs
from web.deps import refuse_control_characters
from web.errors import install_error_handlers
from web.forms import UPLOAD_PATHS
from web.limits import BodySizeLimitMiddleware
from web.metrics import MetricsMiddleware
from web.pages.errors import error_page
from web.pages.routes import router as pages_router

log = logging.getLogger(__name__)


def _clean_leftovers(settings: Settings) -> None:
    """Orphan blobs of uploads killed before their commit (the database may be away: logged,
    and `paretoboard reconcile` does it later)."""
    try:
        clean_orphan_blobs(
            engine_for(settings.database_url),
            blob_store(settings),
            grace_seconds=settings.storage.orphan_grace_seconds,
            report=True,
        )
    except Exception as exc:
        log.warning("could not look for orphan blobs at start: %s", exc)


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Staging folders of killed requests go before the first request (cheap); the blob
        # store is walked in the background, so a large one does not delay the start.
        clean_staging(settings.storage.data_dir / "staging", report=True)
        threading.Thread(
            target=_clean_leftovers, args=(settings,), name="leftovers", daemon=True
        ).start()
        yield

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own settings."""
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_lifespan(settings),
        title="paretoboard",
        version="0.1.0",
        docs_url=None,  # served by web/api_docs.py, with no CDN
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
    # Outermost: times every request, refused ones included (`/metrics`, web/metrics.py).
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
    static = Path(web.pages.__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    return app
