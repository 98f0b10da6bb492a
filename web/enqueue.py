"""What the web process does after its request's commit: send the jobs the commands recorded.

Commands (`core.submissions.commands`) record messages on the session's outbox
(`core.db.outbox`); the request's session dependency commits once, then hands each message to
`deliver`. The sending itself is `jobs.send` (the one sender, shared with the workers, the
reconciler and the CLI); its web-facing functions are re-exported here, where the handlers call
them (and tests replace them). A broker outage loses nothing: the submission stays queued in
the database and the reconciler (`worker/reconcile.py`) re-sends it once it looks stuck.
"""

from __future__ import annotations

import logging

from core.db.outbox import Message, ScoreJob
from core.db.session import engine_for, transaction
from core.settings import Settings
from core.storage import blob_store
from core.submissions.blobs import collect_blobs
from jobs.send import preflight, preflight_available, send_score

__all__ = ["deliver", "preflight", "preflight_available", "send_score"]
log = logging.getLogger(__name__)


def deliver(settings: Settings, message: Message) -> bool:
    """Send one message a committed unit of work recorded (`core.db.outbox`)."""
    if isinstance(message, ScoreJob):
        return send_score(settings, message.submission_id, message.job_id)
    try:
        with transaction(engine_for(settings.database_url)) as fresh, blob_store(settings) as store:
            collect_blobs(fresh, store, message.shas)
    except Exception:  # the withdrawal stands; an unreferenced blob is only wasted space
        log.exception("could not remove unreferenced blobs %s", ", ".join(message.shas[:3]))
        return False
    return True
