"""Who is calling: a Bearer API token, or the session cookie of a logged-in browser.

The signed cookie (Starlette's SessionMiddleware) carries the CSRF token, flash messages and,
once logged in, the random key of a server-side session (`user_sessions`): logging out deletes
that row, so a copy of the old cookie no longer logs anyone in.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core.errors import ParetoboardError
from core.models import User, UserRole, UserSession
from core.users import sessions as user_sessions
from core.users.service import user_for_token
from web.deps import SessionDep, release_connection
from web.forms import read_form

SESSION_KEY = "sid"  # the server-side session's key, inside the signed cookie


class UnauthenticatedError(ParetoboardError):
    status_code = 401
    code = "unauthenticated"


class ForbiddenError(ParetoboardError):
    status_code = 403
    code = "forbidden"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def optional_user(request: Request, session: SessionDep) -> User | None:
    """The caller, if authenticated by token or session cookie; None for anonymous callers."""
    token = _bearer(request)
    if token is not None:
        user = user_for_token(session, token)
        if user is None:
            raise UnauthenticatedError("Invalid or revoked API token")
        request.state.auth = "token"
        return user
    request.state.user_session = None
    key = request.session.get(SESSION_KEY) if "session" in request.scope else None
    if isinstance(key, str):
        row = user_sessions.session_for_key(session, key)
        user = session.get(User, row.user_id) if row is not None else None
        if user is not None:
            request.state.auth = "cookie"
            request.state.user_session = row
            return user
        request.session.pop(SESSION_KEY, None)  # ended or expired: the browser is logged out
    request.state.auth = None
    return None


def current_session(request: Request) -> UserSession | None:
    """The server-side session that authenticated this request (None for token callers)."""
    row = getattr(request.state, "user_session", None)
    return row if isinstance(row, UserSession) else None


def start_browser_session(request: Request, session: Session, user: User) -> None:
    """Log this browser in as `user`: a fresh cookie (nothing from before carries over)."""
    row, key = user_sessions.start_session(
        session,
        user=user,
        ip=request.client.host if request.client else "unknown",
        user_agent=request.headers.get("user-agent", ""),
    )
    request.session.clear()
    request.session[SESSION_KEY] = key
    request.state.auth = "cookie"
    request.state.user_session = row


def end_browser_session(request: Request, session: Session) -> None:
    """Log this browser out: its server-side session is deleted and its cookie cleared."""
    key = request.session.get(SESSION_KEY) if "session" in request.scope else None
    if isinstance(key, str):
        user_sessions.end_session(session, key)
    if "session" in request.scope:
        request.session.clear()


def require_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise UnauthenticatedError("Log in or send an API token (Authorization: Bearer ...)")
    return user


CSRF_SESSION_KEY = "csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use); pages put it in forms and headers."""
    token = request.session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF_SESSION_KEY] = token
    return token


async def check_csrf(request: Request, session: SessionDep) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token (header or form field)."""
    if getattr(request.state, "auth", None) != "cookie":
        return  # token auth and anonymous calls carry no ambient credentials
    expected = request.session.get(CSRF_SESSION_KEY)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        # An upload's body may be large: its pooled connection is given back while it streams.
        await run_in_threadpool(release_connection, session)
        form = await read_form(request)  # the one parser, with the service's limits
        value = form.get(CSRF_FORM_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or sent is None or not secrets.compare_digest(expected, sent):
        raise ForbiddenError("Missing or wrong CSRF token")


def require_writer(
    user: Annotated[User, Depends(require_user)], _csrf: Annotated[None, Depends(check_csrf)]
) -> User:
    """An authenticated caller making a write (cookie callers passed the CSRF check)."""
    return user


def require_admin(user: Annotated[User, Depends(require_writer)]) -> User:
    """An administrator (for writes, CSRF-checked like any writer)."""
    if user.role is not UserRole.ADMIN:
        raise ForbiddenError("Administrators only")
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(require_user)]
WriterUser = Annotated[User, Depends(require_writer)]
AdminUser = Annotated[User, Depends(require_admin)]
