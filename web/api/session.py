"""`/api/v1/session`: browser log-in (a server-side session, its key in the signed cookie, with a
CSRF token), log-out; `/api/v1/sessions`: the caller's sessions, "log out everywhere"; and the
password check shared with `/api/v1/tokens` and the password change."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from core.errors import NotFoundError
from core.users import sessions as user_sessions
from web.api.schemas.users import (
    SessionCreate,
    SessionInfo,
    SessionRead,
    SessionsEnded,
    UserRead,
)
from web.auth import (
    CurrentUser,
    OptionalUser,
    WriterUser,
    csrf_token,
    current_session,
    end_browser_session,
    start_browser_session,
)
from web.deps import SessionDep
from web.errors import error_responses
from web.login import CsrfChecked, LoginLimiterDep, check_password, remember_device

router = APIRouter(prefix="/api/v1/session", tags=["session"])
sessions_router = APIRouter(prefix="/api/v1/sessions", tags=["session"])


@router.post(
    "",
    responses=error_responses(400, 401, 422, 429),
    summary="Log in (browser session)",
)
def log_in(
    body: SessionCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    limiter: LoginLimiterDep,
) -> SessionRead:
    """Check email and password, then start a new signed session cookie with a new CSRF token.

    Wrong email and wrong password give the same 401. Failures slow further attempts (429 with
    Retry-After, exponential backoff, capped): per IP, per account and IP, and per account for
    browsers the account does not know; the answer sets a signed known-device cookie, and a
    browser holding it is only ever slowed by its own failures.
    """
    user = check_password(session, limiter, request, email=body.email, password=body.password)
    start_browser_session(request, session, user)  # nothing from before the login carries over
    remember_device(request, response, email=user.email)
    return SessionRead(user=UserRead.model_validate(user), csrf_token=csrf_token(request))


@router.get("", responses=error_responses(401, 404), summary="The current browser session")
def get_session(request: Request, user: OptionalUser) -> SessionRead:
    """The logged-in user and the session's CSRF token (404 without a browser session)."""
    if user is None or request.state.auth != "cookie":
        raise NotFoundError("No browser session; log in with POST /api/v1/session")
    return SessionRead(user=UserRead.model_validate(user), csrf_token=csrf_token(request))


@router.delete(
    "",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403),
    summary="Log out",
)
def log_out(request: Request, session: SessionDep, _user: OptionalUser, _csrf: CsrfChecked) -> None:
    """End the browser session: deleted on the server (a copy of the cookie no longer works)
    and the cookie cleared; CSRF-checked like any cookie write."""
    end_browser_session(request, session)


@sessions_router.get("", responses=error_responses(401), summary="Your browser sessions")
def list_sessions(request: Request, user: CurrentUser, session: SessionDep) -> list[SessionInfo]:
    """Where you are logged in: each session's start, last use, address and browser."""
    this = current_session(request)
    return [
        SessionInfo.from_row(row, current=this is not None and row.id == this.id)
        for row in user_sessions.list_sessions(session, user=user)
    ]


@sessions_router.delete(
    "",
    responses=error_responses(401, 403),
    summary="Log out everywhere",
)
def end_all_sessions(request: Request, user: WriterUser, session: SessionDep) -> SessionsEnded:
    """End every browser session of the caller, this one included (API tokens stay valid:
    revoke them with DELETE /api/v1/tokens/{id})."""
    ended = user_sessions.end_sessions(session, user=user)
    if request.state.auth == "cookie":
        request.session.clear()
    return SessionsEnded(ended=ended)
