"""A listed submission's page and API record, made once for every anonymous viewer.

Anonymous viewers of a finished, listed submission (done, public, not hidden) all get the same
page and the same API record, so each is made once per (board version, the submission's row,
its results) and kept in `core.leaderboard.cache.submission_pages`, then sent with an ETag like
the boards (`web.bodies`: 304 to a matching If-None-Match). The key holds:

- the board version (the cache's own key): every change a listed submission's page shows from
  other rows bumps it (its results' board columns, its joint intervals, its owner's name, the
  tasks and their baselines, the boards its plots are drawn against);
- the submission's `state` and `updated_at` (stamped by every ORM update of the row: name,
  description, verification, visibility, hidden, state), so an edit, a hide, a withdrawal or a
  rerun makes a new page at once, never a stale one;
- the count and latest `updated_at` of its results, for result columns no board reads
  (intervals, verification per point, cost details).

Nothing else is kept: a submission not yet finished shows its queue position and elapsed time
(they change with time), a failed one's intervals do not bump the version (it is not listed),
and a logged-in viewer (or one with a flash message waiting) gets their own page, which names
them, carries their CSRF token and, for the owner, the log and files.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from fastapi import Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import NotFoundError
from core.leaderboard.cache import submission_pages
from core.models import Result, Submission, SubmissionState, Visibility
from core.submissions.access import can_view
from web.bodies import Body, send

JSON = "application/json"


def public_stamp(session: Session, submission: Submission) -> Hashable | None:
    """What an anonymous viewer's copy of this submission is keyed by, besides the board
    version; None when it must be made per request (not listed, or not finished)."""
    if (
        submission.state is not SubmissionState.DONE
        or submission.visibility is not Visibility.PUBLIC
        or submission.hidden
        or submission.finished_at is None  # its elapsed time would still grow
    ):
        return None
    count, latest = session.execute(
        select(func.count(Result.id), func.max(Result.updated_at)).where(
            Result.submission_id == submission.id
        )
    ).one()
    return (
        submission.id,
        submission.state.value,
        str(submission.updated_at),
        int(count),
        str(latest),
    )


def _listed(session: Session, submission_id: int) -> Submission:
    """The submission as the computing session sees it (the request's, or a background
    refresh's: a cached value must not hold the request's ORM objects)."""
    row = session.get(Submission, submission_id)
    if row is None or not can_view(row, None):
        raise NotFoundError(f"No submission {submission_id}")
    return row


def cached(
    request: Request,
    session: Session,
    submission: Submission,
    kind: str,
    make: Callable[[Session, Submission], bytes],
    media_type: str,
    headers: dict[str, str],
) -> Response | None:
    """The anonymous `kind` copy of `submission` (`make(session, row)`, made once per key),
    sent with its ETag; None when this submission's copy is not kept (make it per request)."""
    stamp = public_stamp(session, submission)
    if stamp is None:
        return None
    submission_id = submission.id

    def compute(s: Session) -> Body:
        return Body.of(make(s, _listed(s, submission_id)))

    body = submission_pages.get(session, ("submission", kind, stamp), compute)
    return send(request, body, media_type, headers)
