"""The account page: API tokens, profile, sessions, password change, my submissions.

Plain HTML forms posted to these routes, which call the same services as the API: they work
without JavaScript. Every form carries the session's CSRF token, checked by the same dependency
as the API's cookie-authenticated writes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from core.db.outbox import discard
from core.errors import InvalidInputError, ParetoboardError, Problem
from core.models import User
from core.submissions import queries
from core.users import service as users
from core.users import sessions as user_sessions
from core.users.errors import RateLimitedError
from web.auth import OptionalUser, WriterUser, current_session
from web.deps import SessionDep
from web.forms import read_form
from web.login import LoginLimiterDep, change_password_of
from web.pages.login import form_text
from web.pages.submissions import login_redirect
from web.pages.templating import flash, flash_when_done, render
from web.views import format as fmt

router = APIRouter(include_in_schema=False)


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


def _account_again(
    request: Request, session: Session, user: User, exc: ParetoboardError, *, errors: str
) -> HTMLResponse:
    """The account page again, with the refused form's problems under its `errors` key."""
    context = _account_context(request, session, user, 1)
    context[errors] = [p.problem for p in exc.problems] or [exc.message]
    return render(
        request,
        "account.html",
        context,
        user=user,
        active="account",
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


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
        row, plain = users.create_token(session, user=user, name=form_text(form, "name", 200))
    except InvalidInputError as exc:
        return _account_again(request, session, user, exc, errors="token_errors")
    context = _account_context(
        request,
        session,
        user,
        1,
        new_token={"name": row.name, "token": plain, "prefix": row.prefix},
    )
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
    flash_when_done(request, session, lambda _: "The token was revoked; it no longer works.")
    return RedirectResponse("/account#tokens", status_code=303)


@router.post("/account/profile", response_model=None)
async def update_profile(request: Request, session: SessionDep, user: WriterUser) -> Response:
    """The profile shown on the boards next to the user's entries: the affiliation."""
    form = await request.form()
    try:
        users.set_affiliation(session, user=user, affiliation=form_text(form, "affiliation", 1000))
        flash_when_done(request, session, lambda _: "Your affiliation was saved.")
    except InvalidInputError as exc:
        discard(session)
        flash(request, "Not saved: " + "; ".join(p.problem for p in exc.problems))
    return RedirectResponse("/account#profile", status_code=303)


@router.post("/account/sessions/end-all", response_model=None)
def end_all_sessions(request: Request, session: SessionDep, user: WriterUser) -> Response:
    """Log out everywhere: every session of the account ends, this one included."""
    ended = user_sessions.end_sessions(session, user=user)
    request.session.clear()
    done = f"Logged out everywhere ({ended} session(s) ended). Log in again here."
    flash_when_done(request, session, lambda _: done)
    return RedirectResponse("/login", status_code=303)


@router.post("/account/password", response_class=HTMLResponse, response_model=None)
async def change_password(
    request: Request, session: SessionDep, user: WriterUser, limiter: LoginLimiterDep
) -> Response:
    """A new password (given the current one); the account's other sessions end."""
    form = await read_form(request)
    current = form_text(form, "current_password", users.MAX_PASSWORD)
    new = form_text(form, "new_password", users.MAX_PASSWORD)
    try:
        if new != form_text(form, "new_password_again", users.MAX_PASSWORD):
            raise InvalidInputError(
                "The password was not changed",
                [Problem("the two new passwords differ", column="new_password_again")],
            )
        change_password_of(request, session, limiter, user=user, current=current, new=new)
    except (InvalidInputError, RateLimitedError) as exc:
        return _account_again(request, session, user, exc, errors="password_errors")
    ended = user_sessions.set_password(
        session, user=user, new_password=new, keep=current_session(request)
    )
    done = f"Your password was changed; {ended} other session(s) ended."
    flash_when_done(request, session, lambda _: done)
    return RedirectResponse("/account#password", status_code=303)
