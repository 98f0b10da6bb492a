"""The password check shared by the API (`web/api/session.py`, `tokens.py`, `users.py`) and the
log-in and account pages: the login rate limiter, the known-device cookie, the password change."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session

from core.db.session import engine_for
from core.errors import InvalidInputError, Problem
from core.models import User
from core.settings import Settings
from core.users import devices
from core.users import service as users
from core.users import sessions as user_sessions
from core.users.errors import InvalidCredentialsError
from core.users.login_limits import LoginLimiter
from web.auth import check_csrf
from web.deps import SettingsDep


def get_login_limiter(settings: SettingsDep) -> LoginLimiter:
    """The rate limiter on password checks (tests override this dependency for other limits)."""
    return LoginLimiter(engine_for(settings.database_url))


LoginLimiterDep = Annotated[LoginLimiter, Depends(get_login_limiter)]
CsrfChecked = Annotated[None, Depends(check_csrf)]


def client_ip(request: Request) -> str:
    """The peer address; behind a proxy run uvicorn with --forwarded-allow-ips so it is real."""
    return request.client.host if request.client else "unknown"


def _secret(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.secret_key.get_secret_value()


def check_password(
    session: Session, limiter: LoginLimiter, request: Request, *, email: str, password: str
) -> User:
    """The user with these credentials, else InvalidCredentialsError.

    When throttled it raises RateLimitedError (429, Retry-After) without checking anything; a
    browser holding the account's known-device cookie is throttled on its own failures only.
    """
    users.refuse_control_in_email(email)  # 422 before the limiter or the database sees it
    device = devices.known_device(
        _secret(request), request.cookies.get(devices.DEVICE_COOKIE), email=email
    )
    attempt = limiter.check_in(email=email, ip=client_ip(request), device=device)
    # Nothing pending on the request's session may be written before the limiter's own
    # transaction below (on SQLite that would lock it out).
    with session.no_autoflush:
        user = users.authenticate(session, email=email, password=password)
    if user is None:
        raise InvalidCredentialsError  # the attempt stays recorded as a failure
    limiter.succeeded(attempt)
    return user


def remember_device(request: Request, response: Response, *, email: str) -> None:
    """Mark this browser as known to the account (after a successful login or reset)."""
    settings: Settings = request.app.state.settings
    value = devices.remember_device(
        _secret(request), request.cookies.get(devices.DEVICE_COOKIE), email=email
    )
    response.set_cookie(
        devices.DEVICE_COOKIE,
        value,
        max_age=devices.DEVICE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=settings.mode.value == "production",
    )


def change_password_of(
    request: Request,
    session: Session,
    limiter: LoginLimiter,
    *,
    user: User,
    current: str,
    new: str,
) -> None:
    """Check the current password (422 naming the field when wrong) and the new one."""
    problems: list[Problem] = []
    if (problem := user_sessions.new_password_problem(new)) is not None:
        problems.append(Problem(problem, column="new_password"))
    try:
        check_password(session, limiter, request, email=user.email, password=current)
    except InvalidCredentialsError:
        problems.insert(0, Problem("the current password is wrong", column="current_password"))
    if problems:
        raise InvalidInputError("The password was not changed", problems)
