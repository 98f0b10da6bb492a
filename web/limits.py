"""The request size limit, enforced while the body streams in (ASGI middleware).

A declared Content-Length above the limit is refused at once, before the app runs; a body that
grows past it while streaming (chunked uploads, or a lying header) makes the next `receive()`
raise a 413 HTTPException, which unwinds whatever is reading the body (the multipart parser
closes its temporary files) and is answered in the API's error shape.

Submission uploads (`upload_paths`, POST) may carry model weights as well, so their limit is
`upload_max_bytes` (the request limit plus the weights limit); the weights file's own limit is
checked when the upload is read.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.errors import error_body


def too_large_message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit:,} bytes"


class RequestTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


class BodySizeLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        upload_paths: frozenset[str] = frozenset(),
        upload_max_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_paths = upload_paths
        self.upload_max_bytes = max(upload_max_bytes or max_bytes, max_bytes)

    def limit_for(self, scope: Scope) -> int:
        """The limit of this request: larger for a submission upload."""
        if scope.get("method") == "POST" and scope.get("path") in self.upload_paths:
            return self.upload_max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            body = error_body("too_large", too_large_message(limit))
            await JSONResponse(body, 413, headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
