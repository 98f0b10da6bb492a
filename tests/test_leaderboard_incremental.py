"""The boards' source rows updated incrementally equal a full read, after any sequence of writes.

`core.leaderboard.source`: after each committed write of a random sequence (add an entry, add or
move a point, rescore, hide, withdraw, publish, make private, rename an owner, a bulk update,
change or clear a baseline), every task board (all points and verified only) and the overall
board computed from the held source brought up to date by the `board_changes` log (and the
curve summaries kept from before) equal the boards computed from a full read.
"""

from __future__ import annotations

import gc
import random
import sys
import time
import weakref
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.leaderboard import cache, clear_task_baseline, set_task_baseline
from core.leaderboard import service as board_service
from core.leaderboard.cache import gc_paused
from core.leaderboard.source import changed_since, sources
from core.models import (
    BoardChange,
    Result,
    Submission,
    SubmissionKind,
    SubmissionState,
    Task,
    User,
    Visibility,
)
from core.models.board_version import board_version
from tests.factories import add_points, make_entry, make_task


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def _boards(session: Session) -> list[object]:
    out: list[object] = []
    for task in session.scalars(select(Task).order_by(Task.id)):
        for verified_only in (False, True):
            out.append(board_service._task_leaderboard(session, task, verified_only=verified_only))
    out.append(board_service._overall(session, None))
    return out


def _points(rng: random.Random, n: int) -> list[tuple[float | None, float | None]]:
    return [
        (rng.choice([None, 300.0, 800.0, 1500.0, 2500.0, 4000.0]), rng.uniform(80, 95))
        for _ in range(n)
    ]


Write = Callable[[Session, random.Random, list[Task]], None]


def _subs(session: Session) -> list[Submission]:
    return list(session.scalars(select(Submission).order_by(Submission.id)))


def _add_entry(session: Session, rng: random.Random, tasks: list[Task]) -> None:
    owner = rng.choice([None, *session.scalars(select(User))])
    sub = make_entry(
        session,
        None,
        {t: _points(rng, rng.randint(1, 3)) for t in rng.sample(tasks, rng.randint(1, len(tasks)))},
        kind=rng.choice(list(SubmissionKind)),
        visibility=rng.choice([Visibility.PUBLIC, Visibility.PUBLIC, Visibility.PRIVATE]),
        params=rng.choice([None, 20_000_000, 60_000_000]),
        verified=rng.random() < 0.3,
    )
    sub.owner_id = owner.id if owner is not None else None


def _add_point(session: Session, rng: random.Random, tasks: list[Task]) -> None:
    add_points(session, rng.choice(_subs(session)), rng.choice(tasks), _points(rng, 1))


def _rescore(session: Session, rng: random.Random, tasks: list[Task]) -> None:
    result = rng.choice(list(session.scalars(select(Result))))
    result.performance = rng.choice([None, rng.uniform(80, 95)])
    if rng.random() < 0.3:
        result.flops_mean = rng.choice([None, 0.0, rng.uniform(200, 5000) * 1e6])
    if rng.random() < 0.2:
        result.cost_incomplete = not result.cost_incomplete


def _delete_point(session: Session, rng: random.Random, tasks: list[Task]) -> None:
    session.delete(rng.choice(list(session.scalars(select(Result)))))


def _toggle(column: str, values: list[object]) -> Write:
    def write(session: Session, rng: random.Random, tasks: list[Task]) -> None:
        setattr(rng.choice(_subs(session)), column, rng.choice(values))

    return write


def _rename_owner(session: Session, rng: random.Random, tasks: list[Task]) -> None:
    users = list(session.scalars(select(User)))
    rng.choice(users).display_name = f"owner {rng.randint(0, 99)}"


def _bulk(session: Session, rng: random.Random, tasks: list[Task]) -> None:
    session.execute(
        update(Result).where(Result.id % 3 == 0).values(performance=Result.performance + 0.5)
    )


def _baseline(session: Session, rng: random.Random, tasks: list[Task]) -> None:
    task = rng.choice(tasks)
    if rng.random() < 0.25:
        clear_task_baseline(session, task_name=task.name)
        return
    candidates = list(
        session.scalars(
            select(Result.submission_id)
            .join(Submission)
            .where(
                Result.task_id == task.id,
                Result.performance.is_not(None),
                Result.flops_mean > 0,
                Submission.visibility == Visibility.PUBLIC,
                Submission.hidden.is_(False),
                Submission.state == SubmissionState.DONE,
            )
        )
    )
    if candidates:
        set_task_baseline(session, task_name=task.name, submission_id=rng.choice(candidates))


WRITES: list[Write] = [
    _add_entry,
    _add_point,
    _rescore,
    _rescore,
    _delete_point,
    _toggle("hidden", [True, False, False]),
    _toggle("state", [SubmissionState.WITHDRAWN, SubmissionState.DONE, SubmissionState.FAILED]),
    _toggle("visibility", [Visibility.PUBLIC, Visibility.PRIVATE]),
    _toggle("verified", [True, False]),
    _toggle("name", ["renamed", "again"]),
    _rename_owner,
    _bulk,
    _baseline,
    _baseline,
]


@pytest.mark.parametrize(
    "seed", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)]
)
def test_incremental_source_equals_full_read(session: Session, seed: int) -> None:
    rng = random.Random(seed)
    tasks = [make_task(session, n) for n in ("SST-2", "SNLI", "STS-B")]
    session.add_all(
        User(email=f"u{i}@example.org", display_name=f"U{i}", password_hash="x") for i in range(3)
    )
    for _ in range(6):
        _add_entry(session, rng, tasks)
    session.commit()
    _baseline(session, rng, tasks)
    session.commit()
    sources.clear()
    _boards(session)  # hold the source of this version
    updates, full_reads = sources.updates, sources.full_reads
    for step in range(40):
        write = rng.choice(WRITES)
        write(session, rng, tasks)
        session.commit()
        incremental = _boards(session)
        sources.clear()
        board_service.clear_memos()  # the full recompute makes every part and curve again
        full = _boards(session)
        assert incremental == full, f"step {step}: {write}"
    assert sources.updates > updates  # the incremental path ran, not only full reads
    assert sources.full_reads > full_reads


def test_bumps_log_the_submissions_they_changed(session: Session) -> None:
    sst2 = make_task(session, "SST-2")
    a = make_entry(session, "A", {sst2: [(1000, 85.0)]})
    b = make_entry(session, "B", {sst2: [(2000, 86.0)]})
    private = make_entry(session, "P", {sst2: [(900, 99.0)]}, visibility=Visibility.PRIVATE)
    session.commit()
    before = board_version(session)

    result = session.scalars(select(Result).where(Result.submission_id == a.id)).one()
    result.performance = 85.5
    private.name = "still private"  # no public board shows it: not logged, no bump
    session.commit()
    after_a = board_version(session)
    assert changed_since(session, before, after_a) == {a.id}

    b.hidden = True
    session.commit()
    after_b = board_version(session)
    assert changed_since(session, before, after_b) == {a.id, b.id}
    assert changed_since(session, after_a, after_b) == {b.id}

    sst2.display_name = "SST-2 (binary)"  # a task: anything may have changed
    session.commit()
    assert changed_since(session, after_b, board_version(session)) is None
    # a version the log does not know (e.g. rolled back) or an unknown nonce: a full read
    assert changed_since(session, (after_a[0], after_a[1] ^ 1), after_b) is None
    logged = session.scalars(
        select(BoardChange.submission_id).where(BoardChange.version == after_b[0])
    )
    assert list(logged) == [b.id]


def test_uncommitted_boards_keep_no_parts(session: Session) -> None:
    """A session with uncommitted changes reads the kept parts of the boards but keeps none of
    its own (no one else sees its data); after its rollback the kept parts still make the
    committed boards, equal to a full recompute."""
    sst2 = make_task(session, "SST-2")
    make_entry(session, "A", {sst2: [(1000, 85.0), (2000, 88.0)]})
    b = make_entry(session, "B", {sst2: [(1500, 86.0)]})
    session.commit()
    set_task_baseline(session, task_name="SST-2", submission_id=b.id)
    session.commit()
    committed = _boards(session)
    db = session.get_bind().engine.url.render_as_string(hide_password=True)
    key = (db, "task", sst2.id, False)
    kept = board_service.entry_memo.held(key)
    assert kept is not None
    assert len(kept) == 2  # both entries' parts

    result = session.scalars(select(Result).where(Result.submission_id == b.id)).one()
    result.performance = 99.0
    session.flush()  # uncommitted: a key of its own
    local = _boards(session)
    assert local != committed
    assert board_service.entry_memo.held(key) is kept  # its own parts are not kept
    session.rollback()
    assert _boards(session) == committed
    sources.clear()
    board_service.clear_memos()
    assert _boards(session) == committed


def test_gc_paused_nests_and_resumes() -> None:
    """Computations pause the cyclic collector; it resumes when the last one ends, and a pause
    made by someone else is left as it is."""
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer computation is still under way
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_gc_paused_freezes_what_it_made_and_bounds_the_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a computation made is frozen when it ends (later collections never traverse it);
    cyclic garbage frozen with it is collected by the periodic whole-heap collection."""
    cache_module = sys.modules["core.leaderboard.cache"]
    monkeypatch.setattr(cache_module, "GC_FULL_EVERY", 3600.0)
    monkeypatch.setattr(cache_module, "_gc_full_at", time.monotonic())
    with gc_paused():
        made = [object() for _ in range(3)]
        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage
    young = {id(o) for g in range(3) for o in gc.get_objects(generation=g)}
    assert id(made) not in young  # frozen: in no generation the collector visits
    gc.collect()
    assert gone() is not None  # frozen garbage outlives an ordinary collection ...
    monkeypatch.setattr(cache_module, "GC_FULL_EVERY", 0.0)
    with gc_paused():
        pass
    assert gone() is None  # ... until the whole heap is collected
    assert gc.isenabled()
