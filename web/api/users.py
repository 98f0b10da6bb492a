"""`/api/v1/users`: registration and the caller's own account."""

from __future__ import annotations

from fastapi import APIRouter, Request

from core.db.outbox import discard
from core.errors import ConflictError
from core.users import service as users
from core.users import sessions as user_sessions
from web.api.schemas.users import (
    PasswordChange,
    SessionsEnded,
    UserCreate,
    UserRead,
)
from web.auth import CurrentUser, WriterUser, current_session
from web.deps import SessionDep
from web.errors import error_responses
from web.login import LoginLimiterDep, change_password_of, client_ip

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.post(
    "",
    status_code=201,
    responses=error_responses(400, 409, 422, 429),
    summary="Register",
)
def register(
    body: UserCreate, request: Request, session: SessionDep, limiter: LoginLimiterDep
) -> UserRead:
    """Create an account with the role user.

    A taken email is refused with 409 (a signup cannot hide that), and each such refusal
    counts against the caller's IP in the login rate limit, so probing for accounts here is
    throttled like probing at the login.
    """
    ip = client_ip(request)
    limiter.check(ip=ip)
    try:
        user = users.create_user(
            session, email=body.email, display_name=body.display_name, password=body.password
        )
    except ConflictError:
        # The request fails anyway; rolling back first frees SQLite's one writer slot for the
        # limiter's own transaction (a lost signup race leaves a failed INSERT open).
        discard(session)
        limiter.record_failure(ip=ip)
        raise
    return UserRead.model_validate(user)


@router.get("/me", responses=error_responses(401), summary="Your account")
def me(user: CurrentUser) -> UserRead:
    """The caller's own account (by session cookie or API token)."""
    return UserRead.model_validate(user)


@router.put(
    "/me/password",
    responses=error_responses(401, 403, 422, 429),
    summary="Change your password",
)
def change_password(
    body: PasswordChange,
    request: Request,
    user: WriterUser,
    session: SessionDep,
    limiter: LoginLimiterDep,
) -> SessionsEnded:
    """Set a new password, given the current one (checked and rate-limited like a login).

    Every other browser session of the account ends; the one making the change stays logged
    in. API tokens stay valid (revoke them with DELETE /api/v1/tokens/{id}).
    """
    change_password_of(
        request, session, limiter, user=user, current=body.current_password, new=body.new_password
    )
    ended = user_sessions.set_password(
        session, user=user, new_password=body.new_password, keep=current_session(request)
    )
    return SessionsEnded(ended=ended)
