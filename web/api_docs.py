"""The API reference (`/api/docs`), served entirely from this server: no CDN.

Swagger UI's files come from the `fastapi-offline` package (a pinned Swagger UI 5 build, the
version that renders OpenAPI 3.1), served under `/api/docs/assets/`, so the reference works on
a machine without internet access.
"""

from __future__ import annotations

from importlib import util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/api/docs/assets"


def swagger_ui_dir() -> Path:
    spec = util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("the fastapi-offline package (Swagger UI's files) is not installed")
    return Path(spec.origin).parent / "static"


def install_api_docs(app: FastAPI, *, openapi_url: str, path: str = "/api/docs") -> None:
    """`path`: Swagger UI for `openapi_url`, its scripts and styles served by this app."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_dir()), name="api-docs-assets")

    @app.get(path, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )
