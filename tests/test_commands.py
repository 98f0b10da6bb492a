"""Commands flush and never commit; the unit of work commits once, then sends what they recorded
(never after a rollback or a failed commit)."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from core.db.outbox import (
    CollectBlobs,
    Message,
    ScoreJob,
    complete,
    discard,
    outbox,
    unit_of_work,
)
from core.db.session import make_engine, session_factory, transaction
from core.locks import LockName, lock_file
from core.models import Result, Submission, SubmissionState, Task, User
from core.submissions import commands
from core.submissions.blobs import blob_lock
from core.submissions.schemas import PaperCreate, SubmissionUpdate
from tests.factories import add_points, make_submission


@pytest.fixture
def engine(sqlite_seeded_template: Path, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own (the five ELUE tasks), so commits are real and visible."""
    db = tmp_path / "commands.db"
    shutil.copyfile(sqlite_seeded_template, db)
    engine = make_engine(f"sqlite:///{db}")
    yield engine
    engine.dispose()


def _committed(engine: Engine) -> dict[str, Any]:
    """What another connection sees: counts, and the first submission's state and flags."""
    with transaction(engine) as fresh:
        first = fresh.scalar(select(Submission).order_by(Submission.id))
        return {
            "submissions": fresh.scalar(select(func.count()).select_from(Submission)),
            "results": fresh.scalar(select(func.count()).select_from(Result)),
            "state": first.state if first else None,
            "hidden": first.hidden if first else None,
            "name": first.name if first else None,
            "baselines": list(fresh.scalars(select(Task.baseline_submission_id))),
        }


def _stored_entry(engine: Engine) -> tuple[int, int]:
    """A committed owner and measured, done submission with one SST-2 result."""
    with transaction(engine) as session:
        owner = User(email="owner@example.org", display_name="Owner", password_hash="x")
        session.add(owner)
        session.flush()
        sub = make_submission(session, "entry", state=SubmissionState.DONE)
        sub.owner_id = owner.id
        task = session.scalars(select(Task).where(Task.name == "SST-2")).one()
        add_points(session, sub, task, [(1059, 84.1)])
        return owner.id, sub.id


def _paper() -> PaperCreate:
    return PaperCreate.model_validate(
        {
            "name": "from a paper",
            "paper_url": "https://example.org/paper",
            "points": [
                {"task": "SST-2", "performance": 88.0, "flops": 6788, "flops_unit": "MFLOPs"}
            ],
        }
    )


def test_commands_never_commit(engine: Engine) -> None:
    """Every command on one session, then a rollback: nothing of it is stored, nothing sent."""
    owner_id, sid = _stored_entry(engine)
    before = _committed(engine)
    commits: list[Session] = []
    sent: list[Message] = []
    with session_factory(engine)() as session:
        event.listen(session, "after_commit", commits.append)
        owner = session.get(User, owner_id)
        sub = session.get(Submission, sid)
        assert owner is not None
        assert sub is not None
        commands.set_baseline(session, task_name="SST-2", submission_id=sid)
        commands.clear_baseline(session, task_name="SST-2")
        commands.set_baseline(session, task_name="SST-2", submission_id=sid)
        commands.set_hidden(session, sub, True)
        commands.edit(session, sub, SubmissionUpdate(name="renamed"))
        assert commands.rerun(session, [sub]) == [sid]
        paper = commands.submit_paper(session, owner=owner, entry=_paper(), quota_limit=20)
        commands.withdraw(session, paper)
        box = outbox(session)
        assert [type(m) for m in box.messages] == [ScoreJob, CollectBlobs]
        assert _committed(engine) == before  # flushed in this transaction only
        discard(session)
        assert commits == []
        assert outbox(session).messages == []  # the rolled-back messages are gone
        with unit_of_work(session, lambda m: sent.append(m) is None):
            pass
    assert sent == []
    assert _committed(engine) == before


def test_messages_are_sent_after_the_commit(engine: Engine) -> None:
    """The sender sees the committed rows (from another connection), in the recorded order."""
    _, sid = _stored_entry(engine)
    seen: list[tuple[Message, SubmissionState | None]] = []

    def send(message: Message) -> bool:
        with transaction(engine) as fresh:
            row = fresh.get(Submission, sid)
            seen.append((message, row.state if row else None))
        return True

    with session_factory(engine)() as session, unit_of_work(session, send) as box:
        sub = session.get(Submission, sid)
        assert sub is not None
        commands.rerun(session, [sub])
        job_id = sub.job_id
        assert seen == []
    assert job_id is not None
    assert seen == [(ScoreJob(sid, job_id), SubmissionState.QUEUED)]
    assert box.sent is True
    assert _committed(engine)["state"] is SubmissionState.QUEUED


def test_a_failed_commit_sends_nothing(engine: Engine, tmp_path: Path) -> None:
    """The commit fails: rolled back, the holds released, the clean-ups run, nothing sent."""
    _, sid = _stored_entry(engine)
    before = _committed(engine)
    sent: list[Message] = []
    undone: list[str] = []

    def refuse(_session: Session) -> None:
        raise RuntimeError("the database went away")

    with session_factory(engine)() as session:
        event.listen(session, "before_commit", refuse)
        sub = session.get(Submission, sid)
        assert sub is not None
        box = outbox(session)
        commands.rerun(session, [sub])
        box.hold(blob_lock(session, exclusive=False))
        box.on_rollback(lambda: undone.append("clean-up"))
        with pytest.raises(RuntimeError, match="went away"):
            complete(session, lambda m: sent.append(m) is None)
    assert sent == []
    assert undone == ["clean-up"]
    assert box.sent is None
    assert _committed(engine) == before
    path = lock_file(engine.url, LockName.BLOBS)  # SQLite: the lock file beside the database
    assert path.exists()
    with path.open("rb") as handle:  # the shared hold was released: taken at once, exclusively
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_an_error_in_the_unit_rolls_back_and_sends_nothing(engine: Engine) -> None:
    _, sid = _stored_entry(engine)
    sent: list[Message] = []
    with session_factory(engine)() as session:
        sub = session.get(Submission, sid)
        assert sub is not None

        def failing_handler() -> None:
            with unit_of_work(session, lambda m: sent.append(m) is None):
                commands.rerun(session, [sub])
                raise LookupError("the handler failed after the command")

        with pytest.raises(LookupError):
            failing_handler()
    assert sent == []
    assert _committed(engine)["state"] is SubmissionState.DONE


def test_a_failed_send_is_logged_and_the_rows_stay(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker is down: the commit stands (the reconciler re-sends), `sent` is False."""
    _, sid = _stored_entry(engine)

    def down(_message: Message) -> bool:
        raise ConnectionError("broker down")

    with session_factory(engine)() as session, unit_of_work(session, down) as box:
        sub = session.get(Submission, sid)
        assert sub is not None
        commands.rerun(session, [sub])
    assert box.sent is False
    assert "could not send" in caplog.text
    assert _committed(engine)["state"] is SubmissionState.QUEUED
