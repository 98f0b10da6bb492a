"""Who may see and change a submission; lookups that return the row or raise a typed error.

Private, admin-hidden and withdrawn submissions are invisible to others: they get 404, never 403,
so a private submission's existence does not leak. Owners see their own (hidden ones included);
administrators see everything, withdrawn tombstones included.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import NotFoundError, ParetoboardError
from core.models import Submission, SubmissionState, User, UserRole, Visibility


class NotOwnerError(ParetoboardError):
    status_code = 403
    code = "forbidden"


def is_admin(user: User | None) -> bool:
    return user is not None and user.role is UserRole.ADMIN


def is_owner(submission: Submission, user: User | None) -> bool:
    return user is not None and submission.owner_id is not None and submission.owner_id == user.id


def can_view(submission: Submission, user: User | None) -> bool:
    """Whether `user` (None: anonymous) may see the submission at all."""
    if is_admin(user):
        return True
    if submission.state is SubmissionState.WITHDRAWN:
        return False
    if is_owner(submission, user):
        return True
    return submission.visibility is Visibility.PUBLIC and not submission.hidden


def sees_private_details(submission: Submission, user: User | None) -> bool:
    """Error details, sandbox log, files and timeline: the owner and administrators only."""
    return is_owner(submission, user) or is_admin(user)


def get_visible_submission_or_raise(
    session: Session, submission_id: int, user: User | None, *, for_update: bool = False
) -> Submission:
    """The submission if `user` may see it, else NotFoundError (also for private ones)."""
    submission = session.get(Submission, submission_id, with_for_update=for_update)
    if submission is None or not can_view(submission, user):
        raise NotFoundError(f"No submission {submission_id}")
    return submission


def get_owned_submission_or_raise(session: Session, submission_id: int, user: User) -> Submission:
    """The caller's own submission: 404 when invisible to them, 403 when visible but not theirs."""
    submission = get_visible_submission_or_raise(session, submission_id, user, for_update=True)
    if submission.state is SubmissionState.WITHDRAWN:
        raise NotFoundError(f"No submission {submission_id}")
    if not is_owner(submission, user):
        raise NotOwnerError("Only the submission's owner can change or withdraw it")
    return submission
