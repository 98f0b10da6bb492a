"""Register, log in, log out, and set a password from a reset link.

Plain HTML forms posted to these routes, which call the same services as the API: they work
without JavaScript. The login, registration and reset forms (no user yet) are checked against
the CSRF token the form was rendered with; a logged-in user's log-out by the same dependency as
the API's cookie-authenticated writes.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.db.outbox import discard
from core.errors import ConflictError, InvalidInputError
from core.users import devices
from core.users import service as users
from core.users import sessions as user_sessions
from core.users.errors import InvalidCredentialsError, RateLimitedError
from web.auth import (
    CSRF_FORM_FIELD,
    CSRF_SESSION_KEY,
    ForbiddenError,
    OptionalUser,
    end_browser_session,
    start_browser_session,
)
from web.deps import SessionDep, SettingsDep
from web.forms import read_form
from web.login import (
    CsrfChecked,
    LoginLimiterDep,
    check_password,
    client_ip,
    remember_device,
)
from web.pages.templating import flash_when_done, render
from web.views.forms import field_problems

router = APIRouter(include_in_schema=False)


def safe_next(value: str | None, default: str = "/account") -> str:
    """A local path to go on to after logging in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def form_text(form: Any, key: str, limit: int = 2000) -> str:
    """The form field as text, cut at `limit` (empty when missing or a file)."""
    value = form.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _check_anonymous_csrf(request: Request, sent: str) -> None:
    expected = request.session.get(CSRF_SESSION_KEY)
    if not isinstance(expected, str) or not sent or not secrets.compare_digest(expected, sent):
        raise ForbiddenError("The form expired or was not sent from this site; reload the page")


# --- log in -----------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse, response_model=None)
def login_page(
    request: Request,
    user: OptionalUser,
    next: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse | RedirectResponse:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    context = {"next": safe_next(next), "email": "", "error": None}
    return render(request, "login.html", context, user=None, active="login", with_csrf=True)


@router.post("/login", response_class=HTMLResponse, response_model=None)
async def log_in(
    request: Request, session: SessionDep, limiter: LoginLimiterDep
) -> HTMLResponse | RedirectResponse:
    form = await read_form(request)
    email, password = form_text(form, "email", 320), form_text(form, "password", users.MAX_PASSWORD)
    next_url = safe_next(form_text(form, "next", 500))
    _check_anonymous_csrf(request, form_text(form, CSRF_FORM_FIELD, 200))
    try:
        user = check_password(session, limiter, request, email=email, password=password)
    except (InvalidCredentialsError, RateLimitedError, InvalidInputError) as exc:
        headers = getattr(exc, "headers", None)
        error = "; ".join(p.problem for p in exc.problems) or exc.message
        context = {"next": next_url, "email": email, "error": error}
        return render(
            request,
            "login.html",
            context,
            user=None,
            active="login",
            status_code=exc.status_code,
            headers=headers,
            with_csrf=True,
        )
    start_browser_session(request, session, user)
    redirect = RedirectResponse(next_url, status_code=303)
    remember_device(request, redirect, email=user.email)
    return redirect


@router.post("/logout", response_model=None)
def log_out(
    request: Request, session: SessionDep, _user: OptionalUser, _csrf: CsrfChecked
) -> RedirectResponse:
    end_browser_session(request, session)
    return RedirectResponse("/", status_code=303)


# --- register ---------------------------------------------------------------------------------


@router.get("/register", response_class=HTMLResponse, response_model=None)
def register_page(request: Request, user: OptionalUser) -> HTMLResponse | RedirectResponse:
    if user is not None:
        return RedirectResponse("/account", status_code=303)
    context: dict[str, Any] = {"values": {}, "fields": {}, "errors": []}
    return render(request, "register.html", context, user=None, active="register", with_csrf=True)


@router.post("/register", response_class=HTMLResponse, response_model=None)
async def register(
    request: Request, session: SessionDep, limiter: LoginLimiterDep
) -> HTMLResponse | RedirectResponse:
    form = await read_form(request)
    values = {
        "email": form_text(form, "email", 320),
        "display_name": form_text(form, "display_name", 200),
    }
    password = form_text(form, "password", users.MAX_PASSWORD)
    _check_anonymous_csrf(request, form_text(form, CSRF_FORM_FIELD, 200))
    ip = client_ip(request)
    try:
        limiter.check(ip=ip)
        user = users.create_user(
            session, email=values["email"], display_name=values["display_name"], password=password
        )
    except InvalidInputError as exc:
        fields, errors = field_problems(exc.problems)
        return _register_again(request, values, fields, errors or [exc.message], 422)
    except ConflictError as exc:
        discard(session)  # frees SQLite's writer slot for the limiter (as the API does)
        limiter.record_failure(ip=ip)
        return _register_again(request, values, {"email": [exc.message]}, [], 409)
    except RateLimitedError as exc:
        return _register_again(request, values, {}, [exc.message], 429)
    start_browser_session(request, session, user)
    welcome = f"Welcome, {user.display_name}. Create an API token below to use the CLI."
    flash_when_done(request, session, lambda _: welcome)
    return RedirectResponse("/account", status_code=303)


def _register_again(
    request: Request,
    values: dict[str, str],
    fields: dict[str, list[str]],
    errors: list[str],
    status_code: int,
) -> HTMLResponse:
    context = {"values": values, "fields": fields, "errors": errors}
    return render(
        request,
        "register.html",
        context,
        user=None,
        active="register",
        status_code=status_code,
        with_csrf=True,
    )


# --- password reset (a link an administrator made: `paretoboard users reset-link`) -----------


def _reset_again(request: Request, token: str, errors: list[str], status_code: int) -> HTMLResponse:
    context = {"token": token, "errors": errors}
    return render(
        request,
        "reset_password.html",
        context,
        user=None,
        status_code=status_code,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        with_csrf=True,
    )


@router.get("/reset-password", response_class=HTMLResponse)
def reset_password_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Query(max_length=1000)] = "",
) -> HTMLResponse:
    """The form behind a reset link (the link is checked now, and again when it is sent)."""
    try:
        devices.user_for_reset_token(session, settings.secret_key.get_secret_value(), token)
    except InvalidInputError as exc:
        return _reset_again(request, "", [p.problem for p in exc.problems], 422)
    return _reset_again(request, token, [], 200)


@router.post("/reset-password", response_class=HTMLResponse, response_model=None)
async def reset_password(
    request: Request, session: SessionDep, settings: SettingsDep, limiter: LoginLimiterDep
) -> Response:
    """Set the password from a reset link: every session ends, the account's failed logins are
    forgotten, and this browser is logged in (and known to the account from now on)."""
    form = await read_form(request)
    token = form_text(form, "token", 1000)
    new = form_text(form, "new_password", users.MAX_PASSWORD)
    _check_anonymous_csrf(request, form_text(form, CSRF_FORM_FIELD, 200))
    try:
        user = devices.user_for_reset_token(session, settings.secret_key.get_secret_value(), token)
    except InvalidInputError as exc:
        return _reset_again(request, "", [p.problem for p in exc.problems], 422)
    problem = user_sessions.new_password_problem(new)
    if problem is None and new != form_text(form, "new_password_again", users.MAX_PASSWORD):
        problem = "the two new passwords differ"
    if problem is not None:
        return _reset_again(request, token, [problem], 422)
    with session.no_autoflush:  # the limiter's own transaction goes first (SQLite: one writer)
        limiter.forget_account(email=user.email)
    user_sessions.set_password(session, user=user, new_password=new)
    start_browser_session(request, session, user)
    flash_when_done(
        request, session, lambda _: "Your password was set and every other session ended."
    )
    redirect = RedirectResponse("/account", status_code=303)
    remember_device(request, redirect, email=user.email)
    return redirect
