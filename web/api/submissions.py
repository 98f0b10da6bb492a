"""`/api/v1/submissions`: upload, dry-run check, read, list, edit, withdraw, and admin actions.

Handlers translate HTTP: the writes are commands (`core.submissions.commands`) that flush and
record their queue messages; the session dependency commits once, then sends them (a worker must
find the row its job names; blobs are collected only after the withdrawal is committed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.orm import Session

from core.db.outbox import outbox
from core.models import Submission, SubmissionKind, Task, User
from core.paging import Window
from core.submissions import commands, queries
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
from web.errors import error_responses
from web.lookups import AdminSubmissionDep, OwnedSubmissionDep, SubmissionDep
from web.public_submissions import JSON, cached
from web.submitting import check_upload, submit_upload
from web.uploads import MULTIPART_BODY

router = APIRouter(prefix="/api/v1/submissions", tags=["submissions"])

ERRORS = error_responses(
    (401, "Not logged in"),
    (404, "No such submission, or not visible to the caller"),
    (422, "Every problem found, each with file, line and column"),
)


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


@dataclass(frozen=True, slots=True)
class Listing:
    """What a list of submissions asks for: whose, on which task, of which kind, which page."""

    owner: User | None
    task: Task | None
    kind: SubmissionKind | None
    window: Window


def listing(
    user: OptionalUser,
    session: SessionDep,
    owner: Literal["me"] | None = None,
    task: Annotated[str | None, Query(max_length=64)] = None,
    kind: SubmissionKind | None = None,
    offset: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
    limit: Annotated[int | None, Query(ge=1, le=100, description="Page size (default 20)")] = None,
    page: Annotated[int, Query(ge=1, le=100_000, description="Older spelling of offset")] = 1,
    per_page: Annotated[int, Query(ge=1, le=100, description="Older spelling of limit")] = 20,
) -> Listing:
    """The list's filters and page: every parameter is checked (422), then the caller (401 for
    owner=me without one), then the task filter's task (404)."""
    size = limit if limit is not None else per_page
    window = Window(offset if offset is not None else (page - 1) * size, size)
    if owner == "me" and user is None:
        raise UnauthenticatedError("owner=me needs a logged-in caller or an API token")
    return Listing(
        owner=user if owner == "me" else None,
        task=get_task(session, task) if task else None,
        kind=kind,
        window=window,
    )


ListingDep = Annotated[Listing, Depends(listing)]


@router.get(
    "",
    summary="List submissions: your own (owner=me) or the public ones",
    responses={401: ERRORS[401], 404: {"description": "Unknown task"}},
)
def list_submissions(session: SessionDep, listing: ListingDep) -> SubmissionPage:
    """A page (`offset`, `limit`) of the caller's own submissions or the public ones, newest
    first; `page` / `per_page` still work."""
    return queries.list_submissions(
        session,
        owner=listing.owner,
        task=listing.task,
        kind=listing.kind,
        window=listing.window,
    )


@router.get("/{submission_id}", response_model=SubmissionRead, responses=ERRORS)
def get_submission(
    request: Request, submission: SubmissionDep, user: OptionalUser, session: SessionDep
) -> SubmissionRead | Response:
    """State, stage, queue position, timings, results; error detail and log for the owner."""
    if user is None:  # a listed, finished submission's record: the same for every anonymous caller

        def make(s: Session, row: Submission) -> bytes:
            return queries.read_submission(s, row, None).model_dump_json(by_alias=True).encode()

        kept = cached(
            request, session, submission, "api", make, JSON, {"Cache-Control": "no-cache"}
        )
        if kept is not None:
            return kept
    return queries.read_submission(session, submission, user)


@router.get("/{submission_id}/costs/{result_id}", responses=ERRORS)
def get_costs(
    submission: SubmissionDep,
    result_id: Annotated[int, Path(ge=1, le=2**62)],
    session: SessionDep,
) -> CostsRead:
    """Per-sample FLOPs of one result, with the per-operator and per-module breakdowns."""
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
    submission: OwnedSubmissionDep, changes: SubmissionUpdate, user: WriterUser, session: SessionDep
) -> SubmissionRead:
    """The owner renames, re-describes, or changes the visibility of a submission."""
    commands.edit(session, submission, changes)
    return queries.read_submission(session, submission, user)


@router.delete(
    "/{submission_id}",
    status_code=204,
    response_class=Response,
    responses={**ERRORS, 403: {"description": "Not the owner"}, 409: {"description": "Baseline"}},
)
def withdraw_submission(submission: OwnedSubmissionDep, session: SessionDep) -> Response:
    """The owner withdraws a submission: results and files removed, the quota slot kept."""
    commands.withdraw(session, submission)
    return Response(status_code=204)


@router.post(
    "/{submission_id}/rerun",
    response_model=RerunReport,
    responses={**ERRORS, 409: {"description": "Not runnable"}},
)
def rerun_submission(submission: AdminSubmissionDep, session: SessionDep) -> Response:
    """Administrators: run the whole pipeline again for one submission."""
    return rerun_report(commands.rerun(session, [submission]), outbox(session))


def _set_hidden(
    session: Session, submission: Submission, admin: User, hidden: bool
) -> SubmissionRead:
    commands.set_hidden(session, submission, hidden)
    return queries.read_submission(session, submission, admin)


@router.post("/{submission_id}/hide", responses=ERRORS)
def hide_submission(
    submission: AdminSubmissionDep, admin: AdminUser, session: SessionDep
) -> SubmissionRead:
    """Administrators: take a submission off every public listing (its owner still sees it)."""
    return _set_hidden(session, submission, admin, True)


@router.post("/{submission_id}/unhide", responses=ERRORS)
def unhide_submission(
    submission: AdminSubmissionDep, admin: AdminUser, session: SessionDep
) -> SubmissionRead:
    """Administrators: list a hidden submission again."""
    return _set_hidden(session, submission, admin, False)
