"""A submission's page (live state, results, costs), its owner's files, and the submit form.

The submit form is sent by `static/submit.js` to the API (`POST /api/v1/submissions`, or
`/validate` for "check only") with the session cookie and the X-CSRF-Token header, which gives
an upload progress bar and problems placed next to their file. Without JavaScript the same form
posts here (`/submit`, `/submit/check`), where the same steps run (`web.submitting`) and the
page is rendered again with the problems, or the browser is sent on to the new submission.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile

from core.db.outbox import discard
from core.errors import NotFoundError, ParetoboardError
from core.models import Submission, User, Visibility
from core.settings import Settings
from core.storage import BlobNotFoundError, blob_store
from core.submissions import plausibility
from core.submissions.queries import page_url
from core.submissions.schemas import ValidationSummary
from core.tokenizers import DEFAULT_TOKENIZER, registered_tokenizers
from web.auth import OptionalUser, WriterUser, csrf_token
from web.deps import SessionDep, SettingsDep
from web.forms import parsed_form
from web.lookups import SubmissionDep, SubmissionFileDep
from web.pages.templating import (
    PAGE_HEADERS,
    Viewer,
    anonymous_html,
    is_anonymous,
    render,
    templates,
    viewer_of,
)
from web.public_submissions import cached
from web.submitting import check_upload, submit_upload
from web.uploads import display_name
from web.views import format as fmt
from web.views.forms import SUBMIT_FIELDS, SubmitProblems, group_submit_problems
from web.views.submission import submission_view

router = APIRouter(include_in_schema=False)
HTML = "text/html; charset=utf-8"


def login_redirect(next_url: str) -> RedirectResponse:
    return RedirectResponse("/login?" + urlencode({"next": next_url}), status_code=303)


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(
    request: Request, session: SessionDep, user: OptionalUser, submission: SubmissionDep
) -> Response:
    """State (followed live), results per task and point, costs; log and files for the owner."""
    return _submission_html(request, session, user, submission, "submission.html")


@router.get("/submissions/{submission_id}/panel", response_class=HTMLResponse)
def submission_panel(
    request: Request, session: SessionDep, user: OptionalUser, submission: SubmissionDep
) -> Response:
    """The part of the page that changes with the state (fetched by the page's script)."""
    return _submission_html(request, session, user, submission, "_submission_panel.html")


def _submission_html(
    request: Request, session: Session, user: User | None, submission: Submission, template: str
) -> Response:
    """`template` for the submission: an anonymous viewer of a listed, finished submission gets
    the copy kept for everyone (`web.public_submissions`), anyone else a page of their own."""
    if is_anonymous(request, user):

        def make(s: Session, row: Submission) -> bytes:
            view = submission_view(s, row, None)
            return anonymous_html(template, {"view": view}, active=None).encode()

        kept = cached(request, session, submission, template, make, HTML, PAGE_HEADERS)
        if kept is not None:
            return kept
    view = submission_view(session, submission, user)
    return render(request, template, {"view": view}, user=user)


@router.get("/submissions/{submission_id}/files/{file_id}")
def submission_file(row: SubmissionFileDep, settings: SettingsDep) -> FileResponse:
    """A file the owner uploaded, as an attachment (owner and administrators only; else 404)."""
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
    """The form posted without JavaScript: the submit command, then the submission's page."""
    viewer = viewer_of(user)  # before the upload ends (or rolls back) the transaction
    try:
        submission_id = await submit_upload(request, session, settings, user)
    except ParetoboardError as exc:
        await run_in_threadpool(discard, session)  # nothing stored, the blobs it wrote removed
        return await _refused(request, settings, viewer, exc)
    return RedirectResponse(page_url(submission_id), status_code=303)


@router.post("/submit/check", response_class=HTMLResponse, response_model=None)
async def check_form(
    request: Request, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """ "Check only" without JavaScript: every check, nothing stored."""
    viewer = viewer_of(user)
    try:
        summary = await check_upload(request, session, settings, user)
    except ParetoboardError as exc:
        return await _refused(request, settings, viewer, exc)
    values, _ = await _form_values(request)
    context = _form_context(settings, values=values, summary=summary)
    return _render_form(request, context, viewer)
