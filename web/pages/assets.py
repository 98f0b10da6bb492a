"""Static assets under content-addressed URLs, served with long cache headers.

Our own files (`web/pages/static/`) are addressed as `/assets/<digest>/<path>`: the digest changes
with the content, so browsers may keep them for a year. The Plotly bundle is the one the
installed `plotly` package ships (`plotly/package_data/plotly.min.js`), addressed by its version;
a gzip copy is made once per process and sent to clients that accept it. Nothing comes from a
CDN and nothing third-party is committed.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from functools import cache
from importlib import metadata, util
from pathlib import Path

from fastapi import APIRouter, Request, Response

from core.errors import NotFoundError

STATIC = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

router = APIRouter(include_in_schema=False)


@cache
def _digests() -> dict[str, str]:
    """Content digest of every file under `static/` (read once per process)."""
    out: dict[str, str] = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            name = path.relative_to(STATIC).as_posix()
            out[name] = hashlib.blake2b(path.read_bytes(), digest_size=6).hexdigest()
    return out


def asset_url(name: str) -> str:
    """The cacheable URL of `web/pages/static/<name>` (KeyError for a file that does not exist)."""
    return f"/assets/{_digests()[name]}/{name}"


@cache
def plotly_version() -> str:
    """The installed `plotly` package's version (its bundle's URL carries it)."""
    return metadata.version("plotly")


def plotly_url() -> str:
    return f"/assets/vendor/plotly-{plotly_version()}.min.js"


def _plotly_path() -> Path:
    spec = util.find_spec("plotly")  # located, not imported (importing plotly is slow)
    if spec is None or spec.origin is None:
        raise NotFoundError("The plotly package is not installed")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


class _Bundle:
    """The Plotly bundle's bytes and a gzip copy, loaded on first use (a few MB, once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._raw: bytes | None = None
        self._gzipped: bytes | None = None

    def get(self, *, gzipped: bool) -> bytes:
        with self._lock:
            if self._raw is None:
                self._raw = _plotly_path().read_bytes()
            if not gzipped:
                return self._raw
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._raw, compresslevel=6, mtime=0)
            return self._gzipped


_bundle = _Bundle()


@router.get("/assets/vendor/plotly-{version}.min.js")
def plotly_bundle(version: str, request: Request) -> Response:
    """The installed package's Plotly bundle (gzip when accepted), cached for a year."""
    if version != plotly_version():
        raise NotFoundError(f"No Plotly bundle {version} (this server has {plotly_version()})")
    headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
    gz = "gzip" in request.headers.get("accept-encoding", "").lower()
    if gz:
        headers["Content-Encoding"] = "gzip"
    return Response(_bundle.get(gzipped=gz), media_type=_TYPES[".js"], headers=headers)


@cache
def _asset_bytes(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@router.get("/assets/{digest}/{name:path}")
def asset(digest: str, name: str) -> Response:
    """One of our own static files at its content-addressed URL."""
    known = _digests().get(name)
    if known is None or known != digest:
        raise NotFoundError("No such asset")
    path = STATIC / name
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
    return Response(
        _asset_bytes(name),
        media_type=media,
        headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"},
    )
