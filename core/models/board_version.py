"""The leaderboards' version: one row, bumped by every commit that can change a public board.

The rule (the leaderboard cache, `core.leaderboard.cache`, keys on this row):

- The row holds a counter and a random nonce. A transaction that changes something a public
  board can show bumps it (counter + 1, new nonce) as its last statement before commit, so
  the bump commits or rolls back with the change and every process sees both at once.
- Nobody calls the bump: the Session events below do, for every Session in every process that
  imports `core.models` (the web app, the workers, the CLI). `after_flush` looks at what the
  flush wrote (`session.new`, `session.dirty` with attribute history, `session.deleted`) and
  marks the transaction when a change can alter a public board:
  - a task: any insert, update or delete (names, order, baseline designation, ...);
  - a submission: a change of a column the boards show (name, kind, params, urls, verified)
    or of what decides whether it is listed (visibility, hidden, state), when it was listed
    before or is listed after (public, not hidden, done). A private, hidden or unfinished
    submission's progress (queued -> scoring -> counting, timeline, messages, files) bumps
    nothing; its becoming done while public, or public while done, does;
  - a result: a change of a column the boards read (performance, metrics, FLOPs, params,
    point, task, submission) while its submission is listed;
  - a deleted user (the database cascades to their submissions), or a change of a user's
    display name or affiliation (the boards show them next to the owner's entries).
  ORM-enabled `insert()`, `update()` and `delete()` statements run through `session.execute`
  cannot be inspected row by row: on results, submissions and tasks they bump, unless an
  `update()` sets no column the boards read. Writes outside a Session (a bare Connection,
  raw SQL) are not seen; the cache's `max_age` bounds how long they go unnoticed.
  `before_commit` flushes, then bumps once if the transaction was marked.
- The bump also writes which submissions it changed to `board_changes` (one row each, or one
  row with no submission when anything may have changed: a task, a user, a bulk statement),
  so that a process holding the boards' source rows of an older version reloads only those
  (`core.leaderboard.source`). Rows more than `CHANGES_KEPT` versions old are pruned.
- Until it commits, a session that flushed such a change carries a token of its own
  (`session.info[LOCAL_KEY]`, renewed at each such flush) so that what it computes from its
  uncommitted data is never shared.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import BigInteger, Integer, delete, event, insert, inspect, select, text
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    mapped_column,
)

from core.db.base import Base
from core.models.results import Result, TaskUncertainty
from core.models.submissions import Submission, Visibility
from core.models.tasks import Task
from core.models.users import User
from core.submissions.states import SubmissionState

BOARD_VERSION_ID = 1  # the one row
LOCAL_KEY = "paretoboard.board_version.local"  # session.info: token of uncommitted changes
_PENDING = "paretoboard.board_version.pending"  # session.info: bump at commit
_CHANGED = "paretoboard.board_version.changed"  # session.info: submission ids (None: all)
CHANGES_KEPT = 1000  # versions of `board_changes` kept; an older source reloads everything
_BUMPED = "paretoboard.board_version.bumped"  # session.info: bumped, not yet committed
_tokens = itertools.count(1)
_MISSING = object()
_committed_callbacks: list[Callable[[], None]] = []


class BoardVersion(Base):
    """`version` counts the commits that changed what a public board shows; `nonce` is random,
    rewritten with every bump, so a counter value reused after a rollback or a restore of an
    older backup never matches a cached board computed from other data.

    Written only by the session events of this module, read by every leaderboard request.
    """

    __tablename__ = "board_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    nonce: Mapped[int] = mapped_column(BigInteger, default=0)


class BoardChange(Base):
    """A submission a bump changed (`submission_id` None: anything may have changed)."""

    __tablename__ = "board_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    nonce: Mapped[int] = mapped_column(BigInteger)
    submission_id: Mapped[int | None] = mapped_column(Integer)


def on_committed_bump(callback: Callable[[], None]) -> None:
    """Call `callback()` after this process commits a transaction that bumped the version."""
    _committed_callbacks.append(callback)


def board_version(session: Session) -> tuple[int, int]:
    """The committed (version, nonce) as this session sees it: one primary-key lookup."""
    row = session.execute(
        select(BoardVersion.version, BoardVersion.nonce).where(BoardVersion.id == BOARD_VERSION_ID)
    ).one_or_none()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def bump_board_version(session: Session, changed: Iterable[int | None] = (None,)) -> None:
    """Bump the version in the session's transaction and log the submissions it `changed`
    (None: anything may have); the events do this (see the module doc)."""
    conn = session.connection()
    nonce = secrets.randbits(62)
    done = conn.execute(
        text("UPDATE board_version SET version = version + 1, nonce = :nonce WHERE id = :id"),
        {"nonce": nonce, "id": BOARD_VERSION_ID},
    )
    if done.rowcount == 0:  # a database made without the migrations' first row
        conn.execute(
            text("INSERT INTO board_version (id, version, nonce) VALUES (:id, 1, :nonce)"),
            {"nonce": nonce, "id": BOARD_VERSION_ID},
        )
    version = conn.execute(
        select(BoardVersion.version).where(BoardVersion.id == BOARD_VERSION_ID)
    ).scalar_one()
    changed = set(changed)
    known = sorted(i for i in changed if i is not None)
    ids: list[int | None] = [None] if None in changed or not known else list(known)
    rows = [{"version": version, "nonce": nonce, "submission_id": i} for i in ids]
    conn.execute(insert(BoardChange), rows)
    if version % 100 == 0:  # prune now and then: an indexed range delete
        conn.execute(delete(BoardChange).where(BoardChange.version <= version - CHANGES_KEPT))


# Columns a board reads, per table; a change elsewhere (timeline, messages, cost details,
# timestamps) cannot alter a board.
_SUBMISSION_COLUMNS = frozenset(
    {"name", "kind", "verified", "params", "paper_url", "code_url", "visibility", "hidden", "state"}
)
_RESULT_COLUMNS = frozenset(
    {
        "submission_id",
        "task_id",
        "point",
        "performance",
        "metrics",
        "flops_mean",
        "flops_p10",
        "flops_p90",
        "params",
        "flops_elue_mean",
        "cost_incomplete",
        "cost_disagrees",
        "verify_status",
        "ci_low",
        "ci_high",
    }
)
# The owner's name and affiliation are shown next to every entry.
_USER_COLUMNS = frozenset({"display_name", "affiliation"})
_UPDATE_COLUMNS: dict[str, frozenset[str] | None] = {
    "submissions": _SUBMISSION_COLUMNS,
    "results": _RESULT_COLUMNS,
    "tasks": None,  # every column
    "task_uncertainty": None,  # the score intervals (every column)
}

# --- what can change a public board ----------------------------------------------------------


def _current(obj: object, key: str) -> Any:
    """The attribute's value in memory, never loading it (`_MISSING` if not loaded)."""
    return inspect(obj).dict.get(key, _MISSING)


def _previous(obj: object, key: str) -> Any:
    """The attribute's value before this flush (`_MISSING` if unknown)."""
    history = inspect(obj).attrs[key].history
    if history.deleted:
        return history.deleted[0]
    if history.added:
        return _MISSING  # set without having been loaded: the old value is unknown
    return _current(obj, key)


def _listed(values: Callable[[str], Any]) -> bool | None:
    """Whether a submission with these values is listed; None when a value is unknown."""
    visibility, hidden, state = values("visibility"), values("hidden"), values("state")
    if _MISSING in (visibility, hidden, state):
        return None
    return visibility == Visibility.PUBLIC and not hidden and state == SubmissionState.DONE


def _changed(obj: object, keys: Iterable[str]) -> bool:
    attrs = inspect(obj).attrs
    return any(attrs[k].history.has_changes() for k in keys)


def _submission_listed(session: Session, submission_id: Any) -> bool | None:
    if submission_id is _MISSING or submission_id is None:
        return None
    with session.no_autoflush:
        sub = session.get(Submission, submission_id)
        if sub is None:
            return None
        listed = _listed(lambda k: _current(sub, k))
        if listed is None:  # expired (e.g. after a commit): read the three columns, no flush
            row = session.execute(
                select(Submission.visibility, Submission.hidden, Submission.state).where(
                    Submission.id == submission_id
                )
            ).first()
            if row is not None:
                values = {"visibility": row[0], "hidden": row[1], "state": row[2]}
                listed = _listed(values.__getitem__)
    return listed


def _submission_matters(obj: Submission, *, new: bool, deleted: bool) -> bool:
    if new or deleted:
        return _listed(lambda k: _current(obj, k)) is not False
    if not _changed(obj, _SUBMISSION_COLUMNS):
        return False
    before = _listed(lambda k: _previous(obj, k))
    after = _listed(lambda k: _current(obj, k))
    return before is not False or after is not False


def _result_matters(session: Session, obj: Result, *, new: bool, deleted: bool) -> set[Any]:
    """The submission ids (`_MISSING`: unknown) a result change alters a board of."""
    if not (new or deleted) and not _changed(obj, _RESULT_COLUMNS):
        return set()
    ids = {_current(obj, "submission_id")}
    if not (new or deleted):
        ids.add(_previous(obj, "submission_id"))
    if any(_submission_listed(session, sid) is not False for sid in ids):
        return ids
    return set()


def _flush_changes(session: Session) -> set[int | None]:
    """The submissions this flush changed on a public board (None: anything may have)."""
    changed: set[int | None] = set()
    for objects, new, deleted in (
        (session.new, True, False),
        (session.dirty, False, False),
        (session.deleted, False, True),
    ):
        for obj in objects:
            if isinstance(obj, Task):
                if new or deleted or session.is_modified(obj, include_collections=False):
                    changed.add(None)
            elif isinstance(obj, Submission):
                if _submission_matters(obj, new=new, deleted=deleted):
                    changed.add(_known(_current(obj, "id")))
            elif isinstance(obj, Result):
                changed.update(
                    _known(i) for i in _result_matters(session, obj, new=new, deleted=deleted)
                )
            elif isinstance(obj, TaskUncertainty):
                sid = _current(obj, "submission_id")
                if _submission_listed(session, sid) is not False:
                    changed.add(_known(sid))
            elif isinstance(obj, User) and (deleted or (not new and _changed(obj, _USER_COLUMNS))):
                changed.add(None)
    return changed


def _known(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _mark(session: Session, changed: Iterable[int | None]) -> None:
    session.info.setdefault(_CHANGED, set()).update(changed)
    session.info[_PENDING] = True
    session.info[LOCAL_KEY] = next(_tokens)


def _statement_matters(state: ORMExecuteState) -> bool:
    if not (state.is_insert or state.is_update or state.is_delete):
        return False
    name = getattr(getattr(state.statement, "table", None), "name", None)
    if name == "users":
        return bool(state.is_delete)
    if name not in _UPDATE_COLUMNS:
        return False
    columns = _UPDATE_COLUMNS[name]
    if state.is_update and columns is not None:
        values = getattr(state.statement, "_values", None)
        if values:  # `update().values(...)`: bump only if it sets a column the boards read
            keys = {k if isinstance(k, str) else getattr(k, "key", None) for k in values}
            return None in keys or bool(keys & columns)
    return True


# --- the session events -----------------------------------------------------------------------


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    changed = _flush_changes(session)
    if changed:
        _mark(session, changed)


def _do_orm_execute(state: ORMExecuteState) -> None:
    if _statement_matters(state):
        _mark(state.session, (None,))


def _before_commit(session: Session) -> None:
    session.flush()  # commit would flush after this hook: let after_flush see everything now
    if session.info.pop(_PENDING, False):
        bump_board_version(session, session.info.pop(_CHANGED, None) or (None,))
        session.info[_BUMPED] = True


def _after_commit(session: Session) -> None:
    session.info.pop(LOCAL_KEY, None)
    session.info.pop(_PENDING, None)
    session.info.pop(_CHANGED, None)
    if session.info.pop(_BUMPED, False):
        for callback in _committed_callbacks:
            callback()


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction: nothing of it remains
        for key in (LOCAL_KEY, _PENDING, _BUMPED, _CHANGED):
            session.info.pop(key, None)
    elif LOCAL_KEY in session.info:  # a savepoint: what was computed from it may be gone
        session.info[LOCAL_KEY] = next(_tokens)
        session.info[_PENDING] = True  # the earlier changes may still commit


def install_events(target: type[Session] = Session) -> None:
    """Listen on every Session (done on import)."""
    for name, fn in (
        ("after_flush", _after_flush),
        ("do_orm_execute", _do_orm_execute),
        ("before_commit", _before_commit),
        ("after_commit", _after_commit),
        ("after_soft_rollback", _after_soft_rollback),
    ):
        if not event.contains(target, name, fn):
            event.listen(target, name, fn)


install_events()
