"""The owner's changes to a submission from its page: publish / make private, rename, edit the
description and links, withdraw (ticked confirmation).

Plain forms (CSRF token in a hidden field; `WriterUser` checks it) posted to these routes,
which call the same commands as `PATCH` and `DELETE /api/v1/submissions/{id}`
(`core.submissions.commands`), then send the browser back with a one-line notice once the
request's session dependency has committed. Someone else's
submission is refused (403, or 404 when they cannot see it), as the API does. Administrators'
hide and set-baseline forms on the same page post to `/admin/...` (web/pages/admin.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from core.errors import InvalidInputError, ParetoboardError, Problem
from core.models import Visibility
from core.submissions import commands
from core.submissions.queries import page_url
from core.submissions.schemas import SubmissionUpdate
from web.deps import SessionDep
from web.forms import text_fields
from web.lookups import OwnedSubmissionDep
from web.pages.templating import flash, flash_refusal, flash_when_done

router = APIRouter(include_in_schema=False)
FIELD_LIMIT = 12_000  # characters kept of a form field (the schema's own limits then apply)


def _back(submission_id: int) -> RedirectResponse:
    return RedirectResponse(page_url(submission_id) + "#owner-actions", status_code=303)


def _update(fields: dict[str, str]) -> SubmissionUpdate:
    """The form as the API's update body; every invalid field listed."""
    try:
        return SubmissionUpdate.model_validate(fields)
    except ValidationError as exc:
        problems = [
            Problem(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}", column=str(e["loc"][0]))
            for e in exc.errors()
        ]
        raise InvalidInputError("Invalid change", problems) from None


@router.post("/submissions/{submission_id}/edit", response_model=None)
async def edit_submission(
    request: Request, submission: OwnedSubmissionDep, session: SessionDep
) -> RedirectResponse:
    """Rename, re-describe and re-link (fields name, description, paper_url, code_url)."""
    submission_id = submission.id
    form = await text_fields(request, FIELD_LIMIT)
    fields: dict[str, str] = {
        key: form[key].strip() if key != "description" else form[key].replace("\r\n", "\n")
        for key in ("name", "description", "paper_url", "code_url")
        if key in form
    }
    try:
        commands.edit(session, submission, _update(fields))
        flash_when_done(request, session, lambda _: "Saved.")
    except ParetoboardError as exc:
        flash_refusal(request, session, exc)
    return _back(submission_id)


@router.post("/submissions/{submission_id}/visibility", response_model=None)
async def set_visibility(
    request: Request, submission: OwnedSubmissionDep, session: SessionDep
) -> RedirectResponse:
    """Publish (visibility=public) or make private (visibility=private)."""
    submission_id = submission.id
    form = await text_fields(request, FIELD_LIMIT)
    try:
        changes = _update({"visibility": form.get("visibility", "")})
        commands.edit(session, submission, changes)
        done = (
            "Published: it is listed on the boards once its evaluation is done."
            if changes.visibility is Visibility.PUBLIC
            else "It is private now: only you and administrators see it."
        )
        flash_when_done(request, session, lambda _: done)
    except ParetoboardError as exc:
        flash_refusal(request, session, exc)
    return _back(submission_id)


@router.post("/submissions/{submission_id}/withdraw", response_model=None)
async def withdraw(
    request: Request,
    submission: OwnedSubmissionDep,
    session: SessionDep,
) -> RedirectResponse:
    """Withdraw (the confirmation box must be ticked): results and files removed for good."""
    submission_id = submission.id
    form = await text_fields(request, FIELD_LIMIT)
    if form.get("confirm") != "yes":
        flash(request, "Not withdrawn: tick the box to confirm.")
        return _back(submission_id)
    try:
        commands.withdraw(session, submission)
    except ParetoboardError as exc:
        flash_refusal(request, session, exc)
        return _back(submission_id)
    flash_when_done(request, session, lambda _: f"Submission {submission_id} was withdrawn.")
    return RedirectResponse("/account", status_code=303)
