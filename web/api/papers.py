"""`/api/v1/papers`: self-reported entries (points typed in from a paper; nothing measured)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from core.models import SubmissionState
from core.submissions import queries
from core.submissions.papers import create_paper_entry
from core.submissions.quota import check_self_reported_quota
from core.submissions.schemas import PaperCreate, SubmissionCreated
from web.auth import WriterUser
from web.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1/papers", tags=["papers"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Unreadable body (not JSON)"},
    401: {"description": "Not logged in"},
    422: {"description": "Every problem found (unknown task, duplicate point, taken name...)"},
    429: {"description": "Daily quota of self-reported entries reached (Retry-After)"},
}


@router.post("", status_code=201, responses=_ERRORS)
def create_paper(
    entry: PaperCreate, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> SubmissionCreated:
    """A self-reported submission, done at once, shown apart from measured ones everywhere.

    At most `limits.self_reported_per_day` per user in a rolling 24 hours (429, Retry-After).
    """
    check_self_reported_quota(
        session, owner_id=user.id, limit=settings.limits.self_reported_per_day
    )
    submission = create_paper_entry(session, owner_id=user.id, entry=entry)
    session.commit()
    return SubmissionCreated(
        id=submission.id,
        url=queries.page_url(submission.id),
        api_url=queries.api_url(submission.id),
        state=SubmissionState.DONE,
        queued=False,
    )
