"""`/api/v1/submissions`: upload, dry-run check, read, list, edit, withdraw, and admin actions.

Handlers translate HTTP: the writes are commands (`core.submissions.commands`) that flush and
record their queue messages; the session dependency commits once, then sends them (a worker must
find the row its job names; blobs are collected only after the withdrawal is committed).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.orm import Session

from core.db.outbox import outbox
from core.models import SubmissionKind, User
from core.submissions import commands, queries
from core.submissions.access import (
    get_owned_submission_or_raise,
    get_visible_submission_or_raise,
)
from core.submissions.schemas import (
    CostsRead,
    RerunReport,
    SubmissionCreated,
    SubmissionPage,
    SubmissionRead,
    SubmissionUpdate,
    ValidationSummary,
)
from core.tasks.service import get_task
from web.after_commit import created, rerun_report
from web.auth import AdminUser, OptionalUser, UnauthenticatedError, WriterUser
from web.deps import SessionDep, SettingsDep
from web.submitting import check_upload, submit_upload
from web.uploads import MULTIPART_BODY

router = APIRouter(prefix="/api/v1/submissions", tags=["submissions"])

SubmissionId = Annotated[int, Path(ge=1, le=2**62)]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not logged in"},
    404: {"description": "No such submission, or not visible to the caller"},
    422: {"description": "Every problem found, each with file, line and column"},
}


@router.post(
    "",
    status_code=202,
    summary="Submit prediction files and a model file for evaluation",
    openapi_extra=MULTIPART_BODY,
    response_model=SubmissionCreated,
    responses={**ERRORS, 413: {"description": "Request too large"}, 429: {"description": "Quota"}},
)
async def create_submission(
    request: Request, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """Everything checkable without running code is checked first; 422 lists every problem."""
    return created(await submit_upload(request, session, settings, user), outbox(session))


@router.post(
    "/validate",
    summary="Check a submission without storing it (uses no quota)",
    openapi_extra=MULTIPART_BODY,
    responses={**ERRORS, 413: {"description": "Request too large"}},
)
async def validate_submission(
    request: Request, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> ValidationSummary:
    """The same checks as a submission; stores nothing; 200 with what was found when valid."""
    return await check_upload(request, session, settings, user)


@router.get(
    "",
    summary="List submissions: your own (owner=me) or the public ones",
    responses={401: ERRORS[401], 404: {"description": "Unknown task"}},
)
def list_submissions(
    user: OptionalUser,
    session: SessionDep,
    owner: Literal["me"] | None = None,
    task: Annotated[str | None, Query(max_length=64)] = None,
    kind: SubmissionKind | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SubmissionPage:
    if owner == "me" and user is None:
        raise UnauthenticatedError("owner=me needs a logged-in caller or an API token")
    return queries.list_submissions(
        session,
        owner=user if owner == "me" else None,
        task=get_task(session, task) if task else None,
        kind=kind,
        page=page,
        per_page=per_page,
    )


@router.get("/{submission_id}", responses=ERRORS)
def get_submission(
    submission_id: SubmissionId, user: OptionalUser, session: SessionDep
) -> SubmissionRead:
    """State, stage, queue position, timings, results; error detail and log for the owner."""
    submission = get_visible_submission_or_raise(session, submission_id, user)
    return queries.read_submission(session, submission, user)


@router.get("/{submission_id}/costs/{result_id}", responses=ERRORS)
def get_costs(
    submission_id: SubmissionId,
    result_id: Annotated[int, Path(ge=1, le=2**62)],
    user: OptionalUser,
    session: SessionDep,
) -> CostsRead:
    """Per-sample FLOPs of one result, with the per-operator and per-module breakdowns."""
    submission = get_visible_submission_or_raise(session, submission_id, user)
    return queries.read_costs(session, submission, result_id)


@router.patch(
    "/{submission_id}",
    responses={
        **ERRORS,
        400: {"description": "Unreadable body"},
        403: {"description": "Not the owner"},
    },
)
def update_submission(
    submission_id: SubmissionId, changes: SubmissionUpdate, user: WriterUser, session: SessionDep
) -> SubmissionRead:
    """The owner renames, re-describes, or changes the visibility of a submission."""
    submission = get_owned_submission_or_raise(session, submission_id, user)
    commands.edit(session, submission, changes)
    return queries.read_submission(session, submission, user)


@router.delete(
    "/{submission_id}",
    status_code=204,
    response_class=Response,
    responses={**ERRORS, 403: {"description": "Not the owner"}, 409: {"description": "Baseline"}},
)
def withdraw_submission(
    submission_id: SubmissionId, user: WriterUser, session: SessionDep
) -> Response:
    """The owner withdraws a submission: results and files removed, the quota slot kept."""
    commands.withdraw(session, get_owned_submission_or_raise(session, submission_id, user))
    return Response(status_code=204)


@router.post(
    "/{submission_id}/rerun",
    response_model=RerunReport,
    responses={**ERRORS, 409: {"description": "Not runnable"}},
)
def rerun_submission(
    submission_id: SubmissionId, _admin: AdminUser, session: SessionDep
) -> Response:
    """Administrators: run the whole pipeline again for one submission."""
    submission = get_visible_submission_or_raise(session, submission_id, _admin, for_update=True)
    return rerun_report(commands.rerun(session, [submission]), outbox(session))


def _set_hidden(session: Session, submission_id: int, admin: User, hidden: bool) -> SubmissionRead:
    submission = get_visible_submission_or_raise(session, submission_id, admin, for_update=True)
    commands.set_hidden(session, submission, hidden)
    return queries.read_submission(session, submission, admin)


@router.post("/{submission_id}/hide", responses=ERRORS)
def hide_submission(
    submission_id: SubmissionId, admin: AdminUser, session: SessionDep
) -> SubmissionRead:
    """Administrators: take a submission off every public listing (its owner still sees it)."""
    return _set_hidden(session, submission_id, admin, True)


@router.post("/{submission_id}/unhide", responses=ERRORS)
def unhide_submission(
    submission_id: SubmissionId, admin: AdminUser, session: SessionDep
) -> SubmissionRead:
    """Administrators: list a hidden submission again."""
    return _set_hidden(session, submission_id, admin, False)
