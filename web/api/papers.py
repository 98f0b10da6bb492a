"""`/api/v1/papers`: self-reported entries (points typed in from a paper; nothing measured)."""

from __future__ import annotations

from fastapi import APIRouter

from core.models import SubmissionState
from core.submissions import commands, queries
from core.submissions.schemas import PaperCreate, SubmissionCreated
from web.auth import WriterUser
from web.deps import SessionDep, SettingsDep
from web.errors import error_responses

router = APIRouter(prefix="/api/v1/papers", tags=["papers"])
_ERRORS = error_responses(
    (400, "Unreadable body (not JSON)"),
    (401, "Not logged in"),
    (422, "Every problem found (unknown task, duplicate point, taken name...)"),
    (429, "Daily quota of self-reported entries reached (Retry-After)"),
)


@router.post("", status_code=201, responses=_ERRORS)
def create_paper(
    entry: PaperCreate, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> SubmissionCreated:
    """A self-reported submission, done at once, shown apart from measured ones everywhere.

    At most `limits.self_reported_per_day` per user in a rolling 24 hours (429, Retry-After).
    """
    submission = commands.submit_paper(
        session, owner=user, entry=entry, quota_limit=settings.limits.self_reported_per_day
    )
    return SubmissionCreated(
        id=submission.id,
        url=queries.page_url(submission.id),
        api_url=queries.api_url(submission.id),
        state=SubmissionState.DONE,
        queued=False,
    )
