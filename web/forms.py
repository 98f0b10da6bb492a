"""The one form parser: every form body (uploads, the CSRF check, login and account pages) is read
here, once per request, with the service's limits, never by Starlette's defaults.

Starlette's `request.form()` keeps up to 1 MiB of each of 1,000 files in memory (a cookie
upload read that way for its CSRF field grew the web process by 713 MB). Here:

- Submission uploads (`UPLOAD_PATHS`, POST): at most `limits.max_prediction_files` + 3 files,
  each spooled to disk past 64 KiB, a few text fields of at most 64 KiB, and every part but the
  weights counted against `limits.request_bytes` while it streams (413 past it); the body as a
  whole is bounded by `BodySizeLimitMiddleware`.
- Every other form: no files, at most 32 fields of at most 64 KiB each.

The parsed form is cached on the request, so `request.form()` returns this same parse too.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import FormData
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from core.errors import InvalidInputError, Problem, TooLargeError
from core.settings import Settings
from web.limits import too_large_message

# Submission uploads, which may carry model weights besides the request limit's worth of files.
UPLOAD_PATHS = frozenset(
    ("/api/v1/submissions", "/api/v1/submissions/validate", "/submit", "/submit/check")
)
WEIGHTS_FIELD = "weights"  # may go past the request limit, up to limits.max_weights_bytes
FILE_FIELDS = ("model", "predictions", "tokenizer", WEIGHTS_FIELD)
TEXT_FIELDS = (
    "name",
    "description",
    "paper_url",
    "code_url",
    "visibility",
    "tokenizer_name",
    # ELUE's Type 1: self-reported FLOPs and parameters per file, as JSON (`costs`) or as the
    # web form's table with its units (core/submissions/self_reported.py)
    "costs",
    "costs_table",
    "costs_flops_unit",
    "costs_params_unit",
    "csrf_token",
)
TEXT_FIELD_BYTES = 64 * 1024
SPOOL_BYTES = 64 * 1024  # of each file part, in memory; the rest goes to a temporary file
FORM_FIELDS = 32  # any other form (login, account, admin pages)
_STATE_KEY = "paretoboard_form"


class _PartsTooLarge(MultiPartException):
    """The parts other than the weights went past the request limit."""


class _UploadParser(MultiPartParser):
    """Spools at most 64 KiB of a file in memory; counts every part but the weights against
    `other_max_bytes` (the request limit) while the body streams in."""

    spool_max_size = SPOOL_BYTES

    def __init__(self, *args: Any, other_max_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.other_max_bytes = other_max_bytes
        self.other_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.field_name != WEIGHTS_FIELD:
            self.other_bytes += end - start
            if self.other_bytes > self.other_max_bytes:
                raise _PartsTooLarge(too_large_message(self.other_max_bytes))
        super().on_part_data(data, start, end)


def is_upload(request: Request) -> bool:
    return request.method == "POST" and request.url.path in UPLOAD_PATHS


async def read_form(request: Request) -> FormData:
    """The request's form body, parsed once with the service's limits (422 or 413 past them)."""
    cached = getattr(request.state, _STATE_KEY, None)
    if isinstance(cached, FormData):
        return cached
    settings: Settings = request.app.state.settings
    content_type = request.headers.get("content-type", "").lower()
    upload = is_upload(request)
    parser: MultiPartParser | FormParser | None
    if content_type.startswith("multipart/form-data"):
        parser = (
            _UploadParser(
                request.headers,
                request.stream(),
                max_files=settings.limits.max_prediction_files + len(FILE_FIELDS) - 1,
                max_fields=len(TEXT_FIELDS) + 5,
                max_part_size=TEXT_FIELD_BYTES,
                other_max_bytes=settings.limits.request_bytes,
            )
            if upload
            else _UploadParser(
                request.headers,
                request.stream(),
                max_files=0,
                max_fields=FORM_FIELDS,
                max_part_size=TEXT_FIELD_BYTES,
                other_max_bytes=FORM_FIELDS * TEXT_FIELD_BYTES,
            )
        )
    elif content_type.startswith("application/x-www-form-urlencoded") and not upload:
        parser = FormParser(
            request.headers,
            request.stream(),
            max_fields=FORM_FIELDS,
            max_part_size=TEXT_FIELD_BYTES,
        )
    elif upload:
        raise InvalidInputError(
            "Expected a multipart/form-data upload",
            [Problem(f"content type is {content_type or 'missing'!r}", column="content-type")],
        )
    else:
        parser = None  # no form: no fields (as Starlette answers), the body is not read
    if parser is None:
        form = FormData()
        setattr(request.state, _STATE_KEY, form)
        return form
    try:
        form = await parser.parse()
    except _PartsTooLarge as exc:
        raise TooLargeError(exc.message) from exc
    except MultiPartException as exc:
        raise InvalidInputError(
            "The upload could not be read" if upload else "The form could not be read",
            [Problem(exc.message, column="body")],
        ) from exc
    setattr(request.state, _STATE_KEY, form)
    request._form = form  # Starlette's request.form() now returns this parse, not its own
    return form


async def text_fields(request: Request, limit: int) -> dict[str, str]:
    """The form's text fields (as `read_form` parsed them), each cut at `limit` characters."""
    form = await read_form(request)
    return {k: v[:limit] for k, v in form.items() if isinstance(v, str)}


def parsed_form(request: Request) -> FormData | None:
    """The form `read_form` parsed for this request, if it got that far."""
    form = getattr(request.state, _STATE_KEY, None)
    return form if isinstance(form, FormData) else None


async def close_form(request: Request) -> None:
    """Close the form's spooled files now (not at the end of the request)."""
    if (form := parsed_form(request)) is not None:
        await form.close()
