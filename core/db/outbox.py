"""One transaction owner: commands flush and record what must happen after the commit; the
owner (the web request's session dependency, a CLI command) commits once, then sends.

A command never commits and never sends: it writes, flushes, and records on the session's
`Outbox` the messages that must leave the process once the rows are committed (a worker must
find the row its job names; a blob is collected only once no committed row uses it). It may
also hold a resource until the transaction ends (the blob store's shared lock, from storing
blobs until the rows that use them are committed) and leave a clean-up for a rollback (the blobs
an upload stored). `unit_of_work` is the one order: commit, release what was held, send every
recorded message (a send that fails is logged and left to the reconciler); on an error, roll
back, release, clean up, and send nothing.

Nothing here imports the queue: the owner passes the `Sender` that knows the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
OUTBOX_KEY = "paretoboard.outbox"
T = TypeVar("T")


@dataclass(frozen=True)
class ScoreJob:
    """Send stages 1-2 of a queued submission (its row carries the same job id)."""

    submission_id: int
    job_id: str


@dataclass(frozen=True)
class CollectBlobs:
    """Remove the blobs among `shas` that no live submission references any more."""

    shas: tuple[str, ...]


Message = ScoreJob | CollectBlobs
Sender = Callable[[Message], bool]
"""Sends one message after the commit; False (logged) when it could not (e.g. broker down)."""


@dataclass(eq=False)
class Outbox:
    """What the session's transaction sends once committed, and what it holds until it ends."""

    messages: list[Message] = field(default_factory=list)
    sent: bool | None = None
    """After delivery: whether every message was sent (None before, or when rolled back)."""
    held: ExitStack = field(default_factory=ExitStack)
    undo: list[Callable[[], None]] = field(default_factory=list)
    after_send: list[Callable[[Outbox], None]] = field(default_factory=list)

    def send(self, message: Message) -> None:
        """Record `message` to send once the transaction has committed."""
        self.messages.append(message)

    def hold(self, context: AbstractContextManager[T]) -> T:
        """Enter `context` now and exit it when the transaction ends (after its commit)."""
        return self.held.enter_context(context)

    def on_rollback(self, clean_up: Callable[[], None]) -> None:
        """Run `clean_up` if the transaction is rolled back instead (after releasing holds)."""
        self.undo.append(clean_up)

    def then(self, callback: Callable[[Outbox], None]) -> None:
        """Run `callback` after the messages were sent (it reads `sent`)."""
        self.after_send.append(callback)


def outbox(session: Session) -> Outbox:
    """The outbox of `session`'s current unit of work (created on first use)."""
    box = session.info.get(OUTBOX_KEY)
    if not isinstance(box, Outbox):
        box = session.info[OUTBOX_KEY] = Outbox()
    return box


def _take(session: Session) -> Outbox:
    box = outbox(session)
    del session.info[OUTBOX_KEY]
    return box


def discard(session: Session) -> Outbox:
    """Roll back: nothing recorded is sent; holds released, then clean-ups run (logged)."""
    try:
        session.rollback()
    finally:
        box = _take(session)
        box.held.close()
        for clean_up in box.undo:
            try:
                clean_up()
            except Exception:
                log.exception("clean-up after a rollback failed")
    return box


def complete(session: Session, send: Sender) -> Outbox:
    """Commit, release what was held, then send the recorded messages (never if the commit
    failed: then it is rolled back as `discard` does and the error raised)."""
    try:
        session.commit()
    except BaseException:
        discard(session)
        raise
    box = _take(session)
    box.held.close()
    results: list[bool] = []
    for message in box.messages:
        try:
            results.append(send(message))
        except Exception:  # the rows are committed: the reconciler re-sends what is lost
            log.exception("could not send %s after the commit", message)
            results.append(False)
    box.sent = all(results)
    for callback in box.after_send:
        callback(box)
    return box


@contextmanager
def unit_of_work(session: Session, send: Sender) -> Iterator[Outbox]:
    """Commit once at the end and then send what the commands recorded; on an error, roll back
    and send nothing."""
    try:
        yield outbox(session)
    except BaseException:
        discard(session)
        raise
    complete(session, send)
