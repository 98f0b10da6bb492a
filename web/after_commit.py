"""Answers that say what the request's commit sent: built after `web.deps.get_session`
committed and sent the messages its commands recorded (`core.db.outbox`)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from core.db.outbox import Outbox
from core.models import SubmissionState
from core.submissions import queries
from core.submissions.schemas import RerunReport, SubmissionCreated


class AfterCommit(JSONResponse):
    """A JSON answer built when it is sent: after `get_session` committed and sent the
    request's messages, so it can say whether they reached the queue (`Outbox.sent`).

    `build` runs after the session closed: it must use plain values, not loaded rows.
    A commit that fails raises before this answer is ever sent.
    """

    def __init__(self, build: Callable[[], BaseModel], *, status_code: int = 200) -> None:
        self._build = build
        super().__init__(None, status_code=status_code)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.body = self.render(self._build().model_dump(mode="json"))
        self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


def created(submission_id: int, box: Outbox) -> AfterCommit:
    """202 with the new submission's links, once committed: `queued` says whether its job
    reached the queue (else the reconciler sends it)."""
    return AfterCommit(
        lambda: SubmissionCreated(
            id=submission_id,
            url=queries.page_url(submission_id),
            api_url=queries.api_url(submission_id),
            state=SubmissionState.QUEUED,
            queued=bool(box.sent),
        ),
        status_code=202,
    )


def rerun_report(requeued: list[int], box: Outbox) -> AfterCommit:
    """The re-queued ids, once committed: `queued` says whether every job reached the queue."""
    return AfterCommit(lambda: RerunReport(requeued=requeued, queued=bool(box.sent)))
