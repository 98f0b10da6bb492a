"""Large cached response bodies, compressed once: the full CSV exports and `plot.json?all=1`.

At 100,000 submissions the whole-board CSV is about 20 MB and a task's every-point plot data
about 9 MB; sent as they are, their transfer (not the server's work, which is a cache hit) is
what a request costs. A body of `GZIP_FROM` bytes or more gets a gzip copy made when the body is
made, i.e. once per board version inside the leaderboard cache, never per request; a client
that accepts gzip (every browser, httpx, curl --compressed) gets that copy with
`Content-Encoding: gzip`, others the bytes as they are. Both answers carry `Vary:
Accept-Encoding` and an ETag of their own (the gzip one ends in `-gz`), so a cache never hands
one encoding to a client that asked for the other.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass

from fastapi import Request, Response

GZIP_FROM = 1 << 20  # smaller bodies (every paged JSON) are sent as they are
GZIP_LEVEL = 5  # ~6x smaller CSV/JSON; ~0.1 s per 10 MB, once per board version


@dataclass(frozen=True, slots=True)
class Body:
    raw: bytes
    etag: str
    gzipped: bytes | None  # only for bodies of GZIP_FROM bytes or more

    @classmethod
    def of(cls, raw: bytes) -> Body:
        digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
        packed = gzip.compress(raw, GZIP_LEVEL, mtime=0) if len(raw) >= GZIP_FROM else None
        return cls(raw, f'"{digest}"', packed)

    def gzip_etag(self) -> str:
        return f'{self.etag[:-1]}-gz"'


def accepts_gzip(request: Request) -> bool:
    """Whether Accept-Encoding lists gzip (or *) without `q=0`."""
    for item in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
        try:
            if float(q) > 0:
                return True
        except ValueError:
            continue
    return False


def send(
    request: Request, body: Body, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    """`body` (its gzip copy when it has one and the client accepts it), or 304 when the
    client's If-None-Match holds the ETag of what it would get."""
    out = dict(headers or {})
    content = body.raw
    etag = body.etag
    if body.gzipped is not None:
        out["Vary"] = "Accept-Encoding"
        if accepts_gzip(request):
            content, etag = body.gzipped, body.gzip_etag()
            out["Content-Encoding"] = "gzip"
    out["ETag"] = etag
    sent = request.headers.get("if-none-match")
    if sent is not None and (sent.strip() == "*" or etag in (t.strip() for t in sent.split(","))):
        out.pop("Content-Encoding", None)
        return Response(status_code=304, headers=out)
    return Response(content=content, media_type=media_type, headers=out)
