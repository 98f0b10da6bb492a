"""Benchmark: recomputing the boards after a write, in process (no HTTP), full vs incremental.

    .venv/bin/python -m bench.bench_recompute --submissions 100000 [--db sqlite|postgresql]
        [--url URL] [--writes 5] [--no-check]

Builds the database of `bench.bench_leaderboard` (or uses `--url`, already populated and
migrated), then times: a full read of the boards' source rows (`core.leaderboard.source`), the
boards computed from it (every task board and the overall board), and for `--writes` committed
writes of each kind (one entry's point rescored; one entry hidden; a baseline point moved) the
incremental source update and the boards recomputed; each board is checked to equal a full
recompute (`--no-check`: not checked, which saves minutes at 100,000 submissions). An untimed
write comes first, so that the `board_changes` log knows the held version (a database just
populated by bulk inserts has no log: its first update would be a full read).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.bench_leaderboard import _database, populate
from core.db import migrate
from core.db.session import make_engine, transaction
from core.leaderboard import service
from core.leaderboard.cache import cache
from core.leaderboard.source import sources
from core.models import Result, Submission, Task
from core.settings import REPO_ROOT


def _boards(session: Session) -> list[object]:
    names = [t.name for t in session.scalars(select(Task).order_by(Task.id))]
    boards: list[object] = [service.task_leaderboard(session, n) for n in names]
    boards.append(service.overall_leaderboard(session, coverage="any"))
    return boards


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(url: str, writes: int, *, check: bool = True) -> None:
    engine = make_engine(url)
    with Session(engine) as session:
        service.clear_memos()
        t_read, _ = _timed(lambda: sources.get(session))
        t_boards, _ = _timed(lambda: _boards(session))
        print(f"full source read: {t_read:.2f} s; boards from it: {t_boards:.2f} s", flush=True)
        ids = list(
            session.scalars(
                select(Result.id).join(Submission).where(Submission.name.like("model-%")).limit(50)
            )
        )
        base_rid = session.scalar(
            select(Result.id)
            .join(Task, Task.id == Result.task_id)
            .where(Result.submission_id == Task.baseline_submission_id)
            .order_by(Result.id)
        )
    with transaction(engine) as session:  # untimed: the log now knows the held version
        _rescore(session, ids[-1])
    with Session(engine) as session:
        sources.get(session)
        _boards(session)
    kinds: dict[str, Callable[[Session, int], None]] = {
        "rescore one entry's point": lambda s, i: _rescore(s, ids[i]),
        "hide one entry": lambda s, i: _hide(s, ids[i + 10]),
        "move a baseline point": lambda s, i: _rescore(s, base_rid),
    }
    for label, write in kinds.items():
        updates, recomputes = [], []
        for i in range(writes):
            with transaction(engine) as session:
                write(session, i)
            with Session(engine) as session:
                t_update, _ = _timed(lambda: sources.get(session))
                t_boards, incremental = _timed(lambda: _boards(session))
                updates.append(t_update)
                recomputes.append(t_boards)
                if not check:
                    continue
                cache.clear()
                sources.clear()
                service.clear_memos()  # a full recompute: every part made again
                full = _boards(session)
                if full != incremental:
                    raise RuntimeError(f"{label}: incremental boards differ from a full recompute")
                sources.get(session)  # hold the current version again, as a server would
        print(
            f"{label}: source update median {statistics.median(updates) * 1000:.0f} ms, "
            f"boards {statistics.median(recomputes):.2f} s"
            + (" (equal to a full recompute)" if check else ""),
            flush=True,
        )
    engine.dispose()


def _rescore(session: Session, result_id: int | None) -> None:
    result = session.get(Result, result_id)
    assert result is not None
    assert result.performance is not None
    result.performance += 0.01


def _hide(session: Session, result_id: int) -> None:
    result = session.get(Result, result_id)
    assert result is not None
    sub = session.get(Submission, result.submission_id)
    assert sub is not None
    sub.hidden = not sub.hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="sqlite")
    parser.add_argument("--url", help="an already populated database (not dropped)")
    parser.add_argument("--writes", type=int, default=5)
    parser.add_argument(
        "--no-check", action="store_true", help="skip the full recompute after each write"
    )
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    args = parser.parse_args()
    if args.url:
        migrate.upgrade(args.url)
        run(args.url, args.writes, check=not args.no_check)
        return
    with _database(args.db) as url:
        migrate.upgrade(url)
        counts = populate(url, args.elue_dir, args.submissions, 0)
        print(f"database: {counts}", flush=True)
        run(url, args.writes, check=not args.no_check)


if __name__ == "__main__":
    main()
