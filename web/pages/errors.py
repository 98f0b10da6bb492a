"""Error pages in the site's style, for browsers (the API keeps its JSON error shape).

`web.errors` calls `error_page` for requests that ask for text/html on paths outside /api;
it renders without a database (the viewer comes from the session cookie alone), so it works
whatever went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from web.pages.templating import render_anonymous

TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported upload",
    422: "Invalid request",
    429: "Too many attempts",
    500: "Something went wrong",
}
HINTS = {
    401: "This page needs an account.",
    403: "Your account may not do this. If you followed a form, reload it and try again.",
    404: "There is nothing here, or it is private.",
    500: "The error was logged. Try again in a moment.",
}


def _detail_text(detail: Mapping[str, object]) -> str:
    where = [str(detail[k]) for k in ("file", "line", "column") if detail.get(k) not in (None, "")]
    problem = str(detail.get("problem", ""))
    return f"{', '.join(where)}: {problem}" if where else problem


def error_page(
    request: Request, status_code: int, message: str, details: Sequence[Mapping[str, object]]
) -> HTMLResponse:
    """The HTML page for an error (404, 403, 422, 500, ...)."""
    login_url = None
    if status_code == 401:
        login_url = "/login?" + urlencode({"next": request.url.path})
    context = {
        "status": status_code,
        "title": TITLES.get(status_code, "Error"),
        "message": message,
        "hint": HINTS.get(status_code),
        "details": [_detail_text(d) for d in details][:50],
        "login_url": login_url,
    }
    return render_anonymous(request, "error.html", context, status_code=status_code)
