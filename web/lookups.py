"""Lookup dependencies: the row a path names, checked against the caller's access rule.

Each returns the row or raises the domain's typed error (404 for what the caller may not see,
403 for a visible submission that is not theirs), mapped to HTTP in `web/errors.py`. The caller's
identity is resolved first (401, then the CSRF check of cookie writers), the row after it, so an
anonymous caller never learns whether an id exists. Handlers take the row as a parameter:

    def get_submission(submission: SubmissionDep, ...) -> SubmissionRead: ...

The admin page's forms name their row in a form field instead: their handlers call the `form_*`
lookups below, which apply the same rules with the same errors and messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InvalidInputError, NotFoundError
from core.models import Submission, SubmissionFile, Task, User
from core.submissions.access import (
    get_owned_submission_or_raise,
    get_visible_submission_or_raise,
    sees_private_details,
)
from core.tasks import service as task_service
from web.auth import AdminUser, CurrentUser, OptionalUser, WriterUser
from web.deps import SessionDep

TaskName = Annotated[str, Path(max_length=64)]
MAX_ID = 2**62
SubmissionId = Annotated[int, Path(ge=1, le=MAX_ID)]
FileId = Annotated[int, Path(ge=1, le=MAX_ID)]


def task_by_name(name: TaskName, session: SessionDep) -> Task:
    """The task of the path's `{name}` (case-insensitive), or 404 naming the known tasks."""
    return task_service.get_task(session, name)


def task_of_page(task: TaskName, session: SessionDep) -> Task:
    """The task of a page's `{task}` path parameter, or 404."""
    return task_service.get_task(session, task)


def task_of_query(
    task: Annotated[str, Query(min_length=1, max_length=64)], session: SessionDep
) -> Task:
    """The task of the `task` query parameter, or 404."""
    return task_service.get_task(session, task)


def visible_submission(
    submission_id: SubmissionId, user: OptionalUser, session: SessionDep
) -> Submission:
    """The submission if the caller (anonymous included) may see it, else 404."""
    return get_visible_submission_or_raise(session, submission_id, user)


def owned_submission(
    submission_id: SubmissionId, user: WriterUser, session: SessionDep
) -> Submission:
    """The writer's own submission, locked for the change: 404 when invisible, 403 when not theirs."""
    return get_owned_submission_or_raise(session, submission_id, user)


def administered_submission(
    submission_id: SubmissionId, admin: AdminUser, session: SessionDep
) -> Submission:
    """Any submission (withdrawn ones included), locked, for an administrator's action."""
    return get_visible_submission_or_raise(session, submission_id, admin, for_update=True)


def private_file(
    submission: Annotated[Submission, Depends(visible_submission)],
    file_id: FileId,
    user: OptionalUser,
    session: SessionDep,
) -> SubmissionFile:
    """A file of the submission, for its owner and administrators only (404 for anyone else)."""
    if not sees_private_details(submission, user):
        raise NotFoundError(f"No file {file_id} in submission {submission.id}")
    row = session.scalar(
        select(SubmissionFile).where(
            SubmissionFile.id == file_id, SubmissionFile.submission_id == submission.id
        )
    )
    if row is None:
        raise NotFoundError(f"No file {file_id} in submission {submission.id}")
    return row


SubmissionQuery = Annotated[int, Query(ge=1, le=MAX_ID)]
PointQuery = Annotated[str | None, Query(max_length=64)]


@dataclass(frozen=True, slots=True)
class SubmissionPair:
    """Two visible submissions named by the `a` and `b` query parameters, and their points."""

    a: Submission
    b: Submission
    a_point: str | None
    b_point: str | None


def visible_pair(
    user: OptionalUser,
    session: SessionDep,
    a: SubmissionQuery,
    b: SubmissionQuery,
    point: PointQuery = None,
    a_point: PointQuery = None,
    b_point: PointQuery = None,
) -> SubmissionPair:
    """Submissions `a` and `b` if the caller may see them (else 404); `point` names a point
    both have, `a_point` / `b_point` one each. Every parameter is checked (422) first."""
    return SubmissionPair(
        get_visible_submission_or_raise(session, a, user),
        get_visible_submission_or_raise(session, b, user),
        a_point=a_point if a_point is not None else point,
        b_point=b_point if b_point is not None else point,
    )


# --- rows a form field names ----------------------------------------------------------------
# A form handler shows a failed lookup as a notice on the page the form returns to, so it calls
# these itself: raised by a dependency, the same error would replace that page.


def form_id(value: str | None) -> int | None:
    """A form field's id: a whole number from 1 to `MAX_ID`, else None."""
    try:
        number = int((value or "").strip())
    except ValueError:
        return None
    return number if 1 <= number <= MAX_ID else None


def form_task(value: str | None, session: Session) -> Task:
    """The task a form field names, as `task_by_name`: 404 naming the known tasks."""
    return task_by_name(value or "", session)


def form_administered_submission(value: str | None, admin: User, session: Session) -> Submission:
    """The submission a form field names, locked, as `administered_submission` (404 when there is
    none); InvalidInputError when the field holds no id."""
    submission_id = form_id(value)
    if submission_id is None:
        raise InvalidInputError("Give a submission id")
    return administered_submission(submission_id, admin, session)


TaskDep = Annotated[Task, Depends(task_by_name)]
PageTaskDep = Annotated[Task, Depends(task_of_page)]
QueryTaskDep = Annotated[Task, Depends(task_of_query)]
SubmissionDep = Annotated[Submission, Depends(visible_submission)]
OwnedSubmissionDep = Annotated[Submission, Depends(owned_submission)]
AdminSubmissionDep = Annotated[Submission, Depends(administered_submission)]
SubmissionFileDep = Annotated[SubmissionFile, Depends(private_file)]
SubmissionPairDep = Annotated[SubmissionPair, Depends(visible_pair)]
UserDep = CurrentUser
OptionalUserDep = OptionalUser
WriterDep = WriterUser
AdminDep = AdminUser
__all__ = [
    "AdminDep",
    "AdminSubmissionDep",
    "OptionalUserDep",
    "OwnedSubmissionDep",
    "PageTaskDep",
    "QueryTaskDep",
    "SubmissionDep",
    "SubmissionFileDep",
    "SubmissionPairDep",
    "TaskDep",
    "UserDep",
    "WriterDep",
]
