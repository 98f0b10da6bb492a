"""A submission's page (live state, results, costs), its owner's files, and the submit form.

The submit form is sent by `static/submit.js` to the API (`POST /api/v1/submissions`, or
`/validate` for "check only") with the session cookie and the X-CSRF-Token header, which gives
an upload progress bar and problems placed next to their file. Without JavaScript the same form
posts here (`/submit`, `/submit/check`), where the API's own handlers run and the page is
rendered again with the problems, or the browser is sent on to the new submission.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile

from core.errors import NotFoundError, ParetoboardError
from core.models import SubmissionFile, Visibility
from core.settings import Settings
from core.storage import BlobNotFoundError, blob_store
from core.submissions import plausibility
from core.submissions.access import get_visible_submission_or_raise, sees_private_details
from core.submissions.schemas import ValidationSummary
from core.tokenizers import DEFAULT_TOKENIZER, registered_tokenizers
from web.api import submissions as submissions_api
from web.auth import OptionalUser, WriterUser, csrf_token
from web.deps import SessionDep, SettingsDep
from web.forms import parsed_form
from web.pages.templating import PAGE_HEADERS, Viewer, render, templates, viewer_of
from web.uploads import display_name
from web.views import format as fmt
from web.views.forms import SUBMIT_FIELDS, SubmitProblems, group_submit_problems
from web.views.submission import submission_view

router = APIRouter(include_in_schema=False)

SubmissionId = Annotated[int, Path(ge=1, le=2**62)]


def login_redirect(next_url: str) -> RedirectResponse:
    return RedirectResponse("/login?" + urlencode({"next": next_url}), status_code=303)


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(
    request: Request, submission_id: SubmissionId, session: SessionDep, user: OptionalUser
) -> HTMLResponse:
    """State (followed live), results per task and point, costs; log and files for the owner."""
    submission = get_visible_submission_or_raise(session, submission_id, user)
    view = submission_view(session, submission, user)
    return render(request, "submission.html", {"view": view}, user=user)


@router.get("/submissions/{submission_id}/panel", response_class=HTMLResponse)
def submission_panel(
    request: Request, submission_id: SubmissionId, session: SessionDep, user: OptionalUser
) -> HTMLResponse:
    """The part of the page that changes with the state (fetched by the page's script)."""
    submission = get_visible_submission_or_raise(session, submission_id, user)
    view = submission_view(session, submission, user)
    return render(request, "_submission_panel.html", {"view": view}, user=user)


@router.get("/submissions/{submission_id}/files/{file_id}")
def submission_file(
    submission_id: SubmissionId,
    file_id: Annotated[int, Path(ge=1, le=2**62)],
    session: SessionDep,
    settings: SettingsDep,
    user: OptionalUser,
) -> FileResponse:
    """A file the owner uploaded, as an attachment (owner and administrators only; else 404)."""
    submission = get_visible_submission_or_raise(session, submission_id, user)
    if not sees_private_details(submission, user):
        raise NotFoundError(f"No file {file_id} in submission {submission_id}")
    row = session.scalar(
        select(SubmissionFile).where(
            SubmissionFile.id == file_id, SubmissionFile.submission_id == submission.id
        )
    )
    if row is None:
        raise NotFoundError(f"No file {file_id} in submission {submission_id}")
    store = blob_store(settings)
    try:
        path = store.local_path(row.sha256)  # an object store's blob: a copy until sent
    except BlobNotFoundError:
        raise NotFoundError(f"The file {row.original_name!r} is no longer stored") from None
    return FileResponse(
        path,
        background=BackgroundTask(store.close),
        filename=display_name(row.original_name) or f"file-{row.id}",
        media_type="application/octet-stream",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
    )


# --- the submit form --------------------------------------------------------------------------


def _form_context(
    settings: Settings,
    *,
    values: dict[str, str] | None = None,
    problems: SubmitProblems | None = None,
    message: str | None = None,
    summary: ValidationSummary | None = None,
) -> dict[str, Any]:
    limits = settings.limits
    tokenizers = sorted(registered_tokenizers(settings.storage.tokenizers_dir))
    values = {
        "visibility": Visibility.PUBLIC.value,
        # ELUE asks for MFLOPs and millions of parameters: the form's default units
        "costs_flops_unit": plausibility.FlopsUnit.MFLOPS.value,
        "costs_params_unit": plausibility.ParamsUnit.M.value,
        **(values or {}),
    }
    return {
        "values": values,
        "problems": problems or SubmitProblems(),
        "message": message,
        "summary": summary,
        "tokenizers": tokenizers,
        "default_tokenizer": DEFAULT_TOKENIZER,
        "limits": {
            "prediction": fmt.size(limits.prediction_file_bytes),
            "model": fmt.size(limits.model_file_bytes),
            "weights": fmt.size(limits.max_weights_bytes),
            "request": fmt.size(limits.request_bytes),
            "files": limits.max_prediction_files,
            "per_day": limits.submissions_per_task_per_day,
        },
        "request_bytes": limits.request_bytes,
        "weights_bytes": limits.max_weights_bytes,
        "plausible": plausibility.method_text(),
        "flops_units": [u.value for u in plausibility.FlopsUnit],
        "params_units": [u.value for u in plausibility.ParamsUnit],
    }


@router.get("/submit", response_class=HTMLResponse, response_model=None)
def submit_page(
    request: Request, user: OptionalUser, settings: SettingsDep
) -> HTMLResponse | RedirectResponse:
    """The submission form (logged-in users)."""
    if user is None:
        return login_redirect("/submit")
    return render(request, "submit.html", _form_context(settings), user=user, active="submit")


async def _form_values(request: Request) -> tuple[dict[str, str], dict[str, str | None]]:
    """The text fields sent, and the model, tokenizer and weights file names (from the form the
    upload parsed; a body refused while it was read has none)."""
    form = parsed_form(request) or FormData()
    values = {k: v for k in (*SUBMIT_FIELDS, "tokenizer_name") if isinstance(v := form.get(k), str)}
    names: dict[str, str | None] = {}
    for key in ("model", "tokenizer", "weights"):
        value = form.get(key)
        names[key] = display_name(value.filename) or None if isinstance(value, UploadFile) else None
    return values, names


async def _refused(
    request: Request, settings: Settings, viewer: Viewer, exc: ParetoboardError
) -> HTMLResponse:
    values, names = await _form_values(request)
    problems = group_submit_problems(
        exc.problems, model=names["model"], tokenizer=names["tokenizer"], weights=names["weights"]
    )
    context = _form_context(settings, values=values, problems=problems, message=exc.message)
    return _render_form(request, context, viewer, status_code=exc.status_code)


def _render_form(
    request: Request, context: dict[str, Any], viewer: Viewer, *, status_code: int = 200
) -> HTMLResponse:
    base = {"viewer": viewer, "active": "submit", "flash": [], "csrf": csrf_token(request)}
    return templates.TemplateResponse(
        request,
        "submit.html",
        {**base, **context},
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


@router.post("/submit", response_class=HTMLResponse, response_model=None)
async def submit_form(
    request: Request, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """The form posted without JavaScript: the API's handler, then the submission's page."""
    viewer = viewer_of(user)  # before the handler commits (or rolls back) the session
    try:
        created = await submissions_api.create_submission(request, user, session, settings)
    except ParetoboardError as exc:
        return await _refused(request, settings, viewer, exc)
    return RedirectResponse(created.url, status_code=303)


@router.post("/submit/check", response_class=HTMLResponse, response_model=None)
async def check_form(
    request: Request, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """ "Check only" without JavaScript: every check, nothing stored."""
    viewer = viewer_of(user)
    try:
        summary = await submissions_api.validate_submission(request, user, session, settings)
    except ParetoboardError as exc:
        return await _refused(request, settings, viewer, exc)
    values, _ = await _form_values(request)
    context = _form_context(settings, values=values, summary=summary)
    return _render_form(request, context, viewer)
