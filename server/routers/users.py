"""`/api/v1/users`: registration and the caller's own account."""

from __future__ import annotations

from fastapi import APIRouter, Request

from core.errors import ConflictError
from core.users import service as users
from server.auth import CurrentUser
from server.deps import SessionDep
from server.routers.session import LoginLimiterDep, client_ip
from server.schemas_users import UserCreate, UserRead, error_responses

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
        session.rollback()
        limiter.record_failure(ip=ip)
        raise
    return UserRead.model_validate(user)


@router.get("/me", responses=error_responses(401), summary="Your account")
def me(user: CurrentUser) -> UserRead:
    """The caller's own account (by session cookie or API token)."""
    return UserRead.model_validate(user)
