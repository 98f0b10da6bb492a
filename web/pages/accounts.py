"""Register, log in, log out, and the account page (API tokens, my submissions).

Plain HTML forms posted to these routes, which call the same services as the API: they work
without JavaScript. Every form carries the session's CSRF token; the ones of a logged-in user
are checked by the same dependency as the API's cookie-authenticated writes, the login and
registration forms (no user yet) against the token the form was rendered with.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from core.errors import ConflictError, InvalidInputError, Problem
from core.models import User
from core.submissions import queries
from core.users import devices
from core.users import service as users
from core.users import sessions as user_sessions
from core.users.errors import InvalidCredentialsError, RateLimitedError
from web.api.session import (
    CsrfChecked,
    LoginLimiterDep,
    check_password,
    client_ip,
    remember_device,
)
from web.api.users import change_password_of
from web.auth import (
    CSRF_FORM_FIELD,
    CSRF_SESSION_KEY,
    ForbiddenError,
    OptionalUser,
    WriterUser,
    current_session,
    end_browser_session,
    start_browser_session,
)
from web.deps import SessionDep, SettingsDep
from web.forms import read_form
from web.pages.submissions import login_redirect
from web.pages.templating import flash, render
from web.views import format as fmt
from web.views.forms import field_problems

router = APIRouter(include_in_schema=False)


def safe_next(value: str | None, default: str = "/account") -> str:
    """A local path to go on to after logging in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def _text(form: Any, key: str, limit: int = 2000) -> str:
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
    email, password = _text(form, "email", 320), _text(form, "password", users.MAX_PASSWORD)
    next_url = safe_next(_text(form, "next", 500))
    _check_anonymous_csrf(request, _text(form, CSRF_FORM_FIELD, 200))
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
    session.commit()
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
        "email": _text(form, "email", 320),
        "display_name": _text(form, "display_name", 200),
    }
    password = _text(form, "password", users.MAX_PASSWORD)
    _check_anonymous_csrf(request, _text(form, CSRF_FORM_FIELD, 200))
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
        session.rollback()  # frees SQLite's writer slot for the limiter (as the API does)
        limiter.record_failure(ip=ip)
        return _register_again(request, values, {"email": [exc.message]}, [], 409)
    except RateLimitedError as exc:
        return _register_again(request, values, {}, [exc.message], 429)
    start_browser_session(request, session, user)
    session.commit()
    flash(request, f"Welcome, {user.display_name}. Create an API token below to use the CLI.")
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


# --- the account page -------------------------------------------------------------------------


def _account_context(
    request: Request,
    session: Session,
    user: User,
    page: int,
    *,
    new_token: dict[str, str] | None = None,
) -> dict[str, Any]:
    mine = queries.list_submissions(session, owner=user, page=page, per_page=20)
    this = current_session(request)
    pages = max(1, -(-mine.total // mine.per_page))
    return {
        "account": {
            "email": user.email,
            "name": user.display_name,
            "affiliation": user.affiliation or "",
            "role": user.role.value,
            "since": fmt.when(user.created_at),
        },
        "tokens": [
            {
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "created": fmt.when(t.created_at),
                "last_used": fmt.when(t.last_used_at) if t.last_used_at else "never",
            }
            for t in users.list_tokens(session, user=user)
        ],
        "new_token": new_token,
        "sessions": [
            {
                "created": fmt.when(row.created_at),
                "last_seen": fmt.when(row.last_seen_at),
                "ip": row.ip,
                "browser": row.user_agent or fmt.DASH,
                "current": this is not None and row.id == this.id,
            }
            for row in user_sessions.list_sessions(session, user=user)
        ],
        "password_errors": [],
        "submissions": [
            {
                "id": s.id,
                "url": s.url,
                "name": s.name,
                "state": s.state.value,
                "visibility": s.visibility.value,
                "hidden": s.hidden,
                "kind": "self-reported" if s.self_reported else "measured",
                "tasks": ", ".join(s.tasks) or fmt.DASH,
                "created": fmt.when(s.created_at),
            }
            for s in mine.items
        ],
        "page": page,
        "pages": pages,
        "total": mine.total,
        "prev_url": f"/account?page={page - 1}#submissions" if page > 1 else None,
        "next_url": f"/account?page={page + 1}#submissions" if page < pages else None,
        "token_errors": [],
    }


@router.get("/account", response_class=HTMLResponse, response_model=None)
def account_page(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse | RedirectResponse:
    if user is None:
        return login_redirect("/account")
    context = _account_context(request, session, user, page)
    return render(request, "account.html", context, user=user, active="account")


@router.post("/account/tokens", response_class=HTMLResponse)
async def create_token(request: Request, session: SessionDep, user: WriterUser) -> HTMLResponse:
    """A new API token, shown on the page this once (only its hash is stored)."""
    form = await read_form(request)
    try:
        row, plain = users.create_token(session, user=user, name=_text(form, "name", 200))
    except InvalidInputError as exc:
        context = _account_context(request, session, user, 1)
        context["token_errors"] = [p.problem for p in exc.problems] or [exc.message]
        return render(
            request, "account.html", context, user=user, active="account", status_code=422
        )
    context = _account_context(
        request,
        session,
        user,
        1,
        new_token={"name": row.name, "token": plain, "prefix": row.prefix},
    )
    session.commit()  # the last statement of this transaction (it is closed afterwards)
    # The token is in this response only: nothing may keep it.
    return render(
        request,
        "account.html",
        context,
        user=user,
        active="account",
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.post("/account/tokens/{token_id}/revoke", response_model=None)
def revoke_token(
    request: Request,
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    session: SessionDep,
    user: WriterUser,
) -> Response:
    users.revoke_token(session, user=user, token_id=token_id)  # 404 for anyone else's
    session.commit()
    flash(request, "The token was revoked; it no longer works.")
    return RedirectResponse("/account#tokens", status_code=303)


@router.post("/account/profile", response_model=None)
async def update_profile(request: Request, session: SessionDep, user: WriterUser) -> Response:
    """The profile shown on the boards next to the user's entries: the affiliation."""
    form = await request.form()
    try:
        users.set_affiliation(session, user=user, affiliation=_text(form, "affiliation", 1000))
        session.commit()
        flash(request, "Your affiliation was saved.")
    except InvalidInputError as exc:
        session.rollback()
        flash(request, "Not saved: " + "; ".join(p.problem for p in exc.problems))
    return RedirectResponse("/account#profile", status_code=303)


@router.post("/account/sessions/end-all", response_model=None)
def end_all_sessions(request: Request, session: SessionDep, user: WriterUser) -> Response:
    """Log out everywhere: every session of the account ends, this one included."""
    ended = user_sessions.end_sessions(session, user=user)
    session.commit()
    request.session.clear()
    flash(request, f"Logged out everywhere ({ended} session(s) ended). Log in again here.")
    return RedirectResponse("/login", status_code=303)


@router.post("/account/password", response_class=HTMLResponse, response_model=None)
async def change_password(
    request: Request, session: SessionDep, user: WriterUser, limiter: LoginLimiterDep
) -> Response:
    """A new password (given the current one); the account's other sessions end."""
    form = await read_form(request)
    current = _text(form, "current_password", users.MAX_PASSWORD)
    new = _text(form, "new_password", users.MAX_PASSWORD)
    try:
        if new != _text(form, "new_password_again", users.MAX_PASSWORD):
            raise InvalidInputError(
                "The password was not changed",
                [Problem("the two new passwords differ", column="new_password_again")],
            )
        change_password_of(request, session, limiter, user=user, current=current, new=new)
    except (InvalidInputError, RateLimitedError) as exc:
        context = _account_context(request, session, user, 1)
        context["password_errors"] = [p.problem for p in exc.problems] or [exc.message]
        return render(
            request,
            "account.html",
            context,
            user=user,
            active="account",
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
    ended = user_sessions.set_password(
        session, user=user, new_password=new, keep=current_session(request)
    )
    session.commit()
    flash(request, f"Your password was changed; {ended} other session(s) ended.")
    return RedirectResponse("/account#password", status_code=303)


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
    token = _text(form, "token", 1000)
    new = _text(form, "new_password", users.MAX_PASSWORD)
    _check_anonymous_csrf(request, _text(form, CSRF_FORM_FIELD, 200))
    try:
        user = devices.user_for_reset_token(session, settings.secret_key.get_secret_value(), token)
    except InvalidInputError as exc:
        return _reset_again(request, "", [p.problem for p in exc.problems], 422)
    problem = user_sessions.new_password_problem(new)
    if problem is None and new != _text(form, "new_password_again", users.MAX_PASSWORD):
        problem = "the two new passwords differ"
    if problem is not None:
        return _reset_again(request, token, [problem], 422)
    with session.no_autoflush:  # the limiter's own transaction goes first (SQLite: one writer)
        limiter.forget_account(email=user.email)
    user_sessions.set_password(session, user=user, new_password=new)
    start_browser_session(request, session, user)
    session.commit()
    flash(request, "Your password was set and every other session ended.")
    redirect = RedirectResponse("/account", status_code=303)
    remember_device(request, redirect, email=user.email)
    return redirect
