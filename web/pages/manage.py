"""The owner's changes to a submission from its page: publish / make private, rename, edit the
description and links, withdraw (ticked confirmation).

Plain forms (CSRF token in a hidden field; `WriterUser` checks it) posted to these routes,
which call the same core commands as `PATCH` and `DELETE /api/v1/submissions/{id}`
(`core.submissions.manage`), then send the browser back with a one-line notice. Someone else's
submission is refused (403, or 404 when they cannot see it), as the API does. Administrators'
hide and set-baseline forms on the same page post to `/admin/...` (web/pages/admin.py).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from core.db.session import engine_for, transaction
from core.errors import InvalidInputError, ParetoboardError, Problem
from core.models import Visibility
from core.storage import blob_store
from core.submissions import manage
from core.submissions.access import get_owned_submission_or_raise
from core.submissions.blobs import collect_blobs
from core.submissions.queries import page_url
from core.submissions.schemas import SubmissionUpdate
from web.auth import WriterUser
from web.deps import SessionDep, SettingsDep
from web.pages.submissions import SubmissionId
from web.pages.templating import flash

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)
FIELD_LIMIT = 12_000  # characters kept of a form field (the schema's own limits then apply)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v[:FIELD_LIMIT] for k, v in form.items() if isinstance(v, str)}


def _back(submission_id: int) -> RedirectResponse:
    return RedirectResponse(page_url(submission_id) + "#owner-actions", status_code=303)


def _not_done(request: Request, exc: ParetoboardError) -> None:
    problems = "; ".join(p.problem for p in exc.problems)
    flash(request, f"Not done: {exc.message}" + (f" ({problems})" if problems else ""))


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
    request: Request, submission_id: SubmissionId, user: WriterUser, session: SessionDep
) -> RedirectResponse:
    """Rename, re-describe and re-link (fields name, description, paper_url, code_url)."""
    submission = get_owned_submission_or_raise(session, submission_id, user)
    form = await _form(request)
    fields: dict[str, str] = {
        key: form[key].strip() if key != "description" else form[key].replace("\r\n", "\n")
        for key in ("name", "description", "paper_url", "code_url")
        if key in form
    }
    try:
        manage.update_submission(session, submission, _update(fields))
        session.commit()
        flash(request, "Saved.")
    except ParetoboardError as exc:
        session.rollback()
        _not_done(request, exc)
    return _back(submission_id)


@router.post("/submissions/{submission_id}/visibility", response_model=None)
async def set_visibility(
    request: Request, submission_id: SubmissionId, user: WriterUser, session: SessionDep
) -> RedirectResponse:
    """Publish (visibility=public) or make private (visibility=private)."""
    submission = get_owned_submission_or_raise(session, submission_id, user)
    form = await _form(request)
    try:
        changes = _update({"visibility": form.get("visibility", "")})
        manage.update_submission(session, submission, changes)
        session.commit()
        flash(
            request,
            "Published: it is listed on the boards once its evaluation is done."
            if changes.visibility is Visibility.PUBLIC
            else "It is private now: only you and administrators see it.",
        )
    except ParetoboardError as exc:
        session.rollback()
        _not_done(request, exc)
    return _back(submission_id)


@router.post("/submissions/{submission_id}/withdraw", response_model=None)
async def withdraw(
    request: Request,
    submission_id: SubmissionId,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
) -> RedirectResponse:
    """Withdraw (the confirmation box must be ticked): results and files removed for good."""
    submission = get_owned_submission_or_raise(session, submission_id, user)
    form = await _form(request)
    if form.get("confirm") != "yes":
        flash(request, "Not withdrawn: tick the box to confirm.")
        return _back(submission_id)
    try:
        shas = manage.withdraw_submission(session, submission)
        session.commit()
    except ParetoboardError as exc:
        session.rollback()
        _not_done(request, exc)
        return _back(submission_id)
    try:
        with transaction(engine_for(settings.database_url)) as fresh:
            collect_blobs(fresh, blob_store(settings), shas)
    except Exception:  # the withdrawal stands; an unreferenced blob is only wasted space
        log.exception("submission %s: could not remove its unreferenced blobs", submission_id)
    flash(request, f"Submission {submission_id} was withdrawn.")
    return RedirectResponse("/account", status_code=303)
