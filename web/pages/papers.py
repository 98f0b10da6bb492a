"""`/submit/paper`: a self-reported entry from a paper, with explicit units (the web form of
`POST /api/v1/papers`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.errors import InvalidInputError, ParetoboardError
from core.submissions import plausibility, queries
from core.submissions.papers import create_paper_entry, on_table_lines, paper_from_form
from core.submissions.quota import check_self_reported_quota
from web.auth import OptionalUser, WriterUser
from web.deps import SessionDep, SettingsDep
from web.pages.submissions import login_redirect
from web.pages.templating import render
from web.views.forms import problem_text

router = APIRouter(include_in_schema=False)
FIELDS = (
    "name",
    "description",
    "paper_url",
    "code_url",
    "visibility",
    "params",
    "params_unit",
    "flops_unit",
    "points_table",
)


def _context(
    values: dict[str, str] | None = None,
    problems: list[Any] | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for p in problems or []:
        if p.column in FIELDS:
            # next to its field: with its line, without the field's name
            fields.setdefault(p.column, []).append(problem_text(replace(p, column=None)))
        else:
            general.append(problem_text(p, with_file=True))
    return {
        "values": {
            "visibility": "public",
            "flops_unit": plausibility.FlopsUnit.MFLOPS.value,  # as ELUE's papers report them
            "params_unit": plausibility.ParamsUnit.M.value,
            **(values or {}),
        },
        "fields": fields,
        "general": general,
        "message": message,
        "plausible": plausibility.method_text(),
        "flops_units": [u.value for u in plausibility.FlopsUnit],
        "params_units": [u.value for u in plausibility.ParamsUnit],
    }


@router.get("/submit/paper", response_class=HTMLResponse, response_model=None)
def paper_page(request: Request, user: OptionalUser) -> Response:
    """The form for an entry from a paper (logged-in users)."""
    if user is None:
        return login_redirect("/submit/paper")
    return render(request, "submit_paper.html", _context(), user=user, active="submit")


@router.post("/submit/paper", response_class=HTMLResponse, response_model=None)
async def paper_form(
    request: Request, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """Store the entry and open its page, or show the form again with every problem."""
    form = await request.form()
    values = {k: v for k in FIELDS if isinstance(v := form.get(k), str)}
    entry, lines, problems = paper_from_form(values)
    try:
        if entry is None:
            raise InvalidInputError(
                f"The entry has {len(problems)} problem(s); nothing was stored", problems
            )
        check_self_reported_quota(
            session, owner_id=user.id, limit=settings.limits.self_reported_per_day
        )
        try:
            submission = create_paper_entry(session, owner_id=user.id, entry=entry)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, on_table_lines(exc.problems, lines)) from exc
        session.commit()
    except ParetoboardError as exc:
        return render(
            request,
            "submit_paper.html",
            _context(values, exc.problems, exc.message),
            user=user,
            active="submit",
            status_code=exc.status_code,
        )
    return RedirectResponse(queries.page_url(submission.id), status_code=303)
