"""The Jinja2 environment and the one helper every page renders through.

Templates only print what the views (`web/views/`) prepared; autoescaping is on for every
`.html` template, so names and descriptions always come out escaped. Page responses carry a
Content-Security-Policy that allows scripts and styles from this origin only (Plotly adds inline
styles, hence `style-src 'unsafe-inline'`; its PNG export draws the figure from a `blob:` image,
hence `img-src blob:`; no inline script is allowed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from core.db.outbox import Outbox, discard, outbox
from core.errors import ParetoboardError
from core.models import User, UserRole
from web.auth import SESSION_KEY, csrf_token
from web.pages.assets import asset_url, plotly_url

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals.update(asset_url=asset_url, plotly_url=plotly_url)
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages name the logged-in user and carry the CSRF token: never kept by shared caches.
    "Cache-Control": "private, no-cache",
}
FLASH_KEY = "flash"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking, as the navigation shows it."""

    logged_in: bool
    name: str | None = None
    is_admin: bool = False


def viewer_of(user: User | None) -> Viewer:
    if user is None:
        return Viewer(logged_in=False)
    return Viewer(logged_in=True, name=user.display_name, is_admin=user.role is UserRole.ADMIN)


def session_viewer(request: Request) -> Viewer:
    """The viewer as far as the session cookie says, without the database (error pages)."""
    session = request.scope.get("session") or {}
    return Viewer(logged_in=isinstance(session.get(SESSION_KEY), str))


def flash(request: Request, message: str) -> None:
    """A one-line notice shown on the next page this browser renders."""
    messages = request.session.get(FLASH_KEY)
    request.session[FLASH_KEY] = [*(messages if isinstance(messages, list) else []), message][-5:]


def flash_when_done(request: Request, session: Session, notice: Callable[[Outbox], str]) -> None:
    """Flash `notice` once the request's transaction committed and sent its messages (it may
    say whether they reached the queue); a rolled-back request shows nothing."""
    outbox(session).then(lambda box: flash(request, notice(box)))


def flash_refusal(request: Request, session: Session, exc: ParetoboardError) -> None:
    """Roll back a form's refused change and say why on the next page ("Not done: ...")."""
    discard(session)
    problems = "; ".join(p.problem for p in exc.problems)
    flash(request, f"Not done: {exc.message}" + (f" ({problems})" if problems else ""))


def _take_flash(request: Request) -> list[str]:
    if "session" not in request.scope:
        return []
    messages = request.session.pop(FLASH_KEY, None)
    return [str(m) for m in messages] if isinstance(messages, list) else []


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    user: User | None,
    status_code: int = 200,
    active: str | None = None,
    headers: Mapping[str, str] | None = None,
    with_csrf: bool = False,
) -> HTMLResponse:
    """A page: the template with the viewer, flash messages and (for forms) the CSRF token."""
    needs_csrf = with_csrf or user is not None
    base = {
        "viewer": viewer_of(user),
        "active": active,
        "flash": _take_flash(request),
        "csrf": csrf_token(request) if needs_csrf and "session" in request.scope else "",
    }
    return templates.TemplateResponse(
        request,
        template,
        {**base, **context},
        status_code=status_code,
        headers={**PAGE_HEADERS, **(headers or {})},
    )


def is_anonymous(request: Request, user: User | None) -> bool:
    """Whether `render` gives this request the page everyone logged out sees: nobody logged in
    and no flash message waiting (so the page may come from a cache shared by such viewers)."""
    if user is not None:
        return False
    return "session" not in request.scope or not request.session.get(FLASH_KEY)


def anonymous_html(template: str, context: Mapping[str, Any], *, active: str | None) -> str:
    """The page `render` gives an anonymous viewer (`is_anonymous`), made without the request
    (so it can be made once and kept; the template must not read `request`)."""
    base: dict[str, Any] = {
        "viewer": Viewer(logged_in=False),
        "active": active,
        "flash": [],
        "csrf": "",
    }
    return templates.get_template(template).render({**base, **context})


def render_anonymous(
    request: Request, template: str, context: Mapping[str, Any], *, status_code: int
) -> HTMLResponse:
    """A page rendered without a database (error pages): the viewer comes from the cookie."""
    base: dict[str, Any] = {
        "viewer": session_viewer(request),
        "active": None,
        "flash": [],
        "csrf": "",
    }
    return templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code, headers=PAGE_HEADERS
    )
