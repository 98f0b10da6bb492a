"""Ranking order properties on random boards (hypothesis): in every view a lower score never
ranks above a higher one, and the filters (coverage all/any, verified only, parameter tracks,
the task page's measured and self-reported tables) only remove entries and renumber ranks.

The boards go through the service's own ranking and filter code (`core.leaderboard.service`):
the overall order and ranks of `_overall`, then `_verified_board`, `_covering_board`,
`_track_board`; pure Python, no database, so the test is cheap.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from core.leaderboard.service import (
    _competition_ranks,
    _covering_board,
    _track_board,
    _verified_board,
)
from core.leaderboard.types import (
    OverallEntry,
    OverallLeaderboard,
    TaskColumn,
    TaskLeaderboard,
    TaskSubmissionEntry,
)
from core.ranking.score import overall_score, overall_sort_key
from core.ranking.tracks import Track
from web.views.leaderboard import _task_parts

TASKS = ("SST-2", "SNLI", "MRPC")
SCORES = st.sampled_from([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5])  # ties are likely
PERFORMANCES = st.sampled_from([70.0, 80.0, 85.0, 90.0])


@st.composite
def boards(draw: st.DrawFn) -> OverallLeaderboard:
    """A random overall board, ranked as `_overall` ranks it."""
    scored_tasks = list(TASKS[: draw(st.integers(0, len(TASKS)))])  # tasks with a baseline
    n = draw(st.integers(0, 12))
    rows = []
    for sid in range(1, n + 1):
        points = draw(st.dictionaries(st.sampled_from(TASKS), PERFORMANCES, max_size=3))
        scores = {t: draw(SCORES) for t in points if t in scored_tasks}
        overall = overall_score(scores, scored_tasks)
        rows.append((overall_sort_key(overall), sid, overall, points))
    rows.sort(key=lambda r: r[0])
    ranks = _competition_ranks(rows, lambda r: r[0])
    entries = []
    for (_, sid, overall, best), rank in zip(rows, ranks, strict=True):
        kind = draw(st.sampled_from(["measured", "self_reported"]))
        entries.append(
            OverallEntry(
                rank=rank,
                submission_id=sid,
                name=f"entry {sid}",
                kind=kind,
                verified=draw(st.booleans()),
                self_reported=kind == "self_reported",
                is_baseline=draw(st.booleans()) if sid == 1 else False,
                baseline_for=(),
                params=draw(st.one_of(st.none(), st.integers(1, 120).map(lambda m: m * 10**6))),
                paper_url=None,
                code_url=None,
                score=overall.average,
                task_scores=overall.per_task,
                tasks_covered=overall.tasks_covered,
                tasks_total=overall.tasks_total,
                out_of_range_tasks=(),
                best_performance=best,
                average_performance=sum(best.values()) / len(best) if best else None,
            )
        )
    columns = tuple(TaskColumn(t, t, "nli", "accuracy", t in scored_tasks) for t in TASKS)
    return OverallLeaderboard(
        tasks=columns,
        families=(),
        track=None,
        track_limit=None,
        ranked_by="elue_score",
        entries=tuple(entries),
    )


def _score(entry: OverallEntry, track: bool) -> float | None:
    return entry.average_performance if track else entry.score


def _check_order(entries: Sequence[OverallEntry], track: bool) -> None:
    """Better scores first (no score last), ranks 1-based competition ranks that only tie
    entries of equal score."""
    for above, below in itertools.pairwise(entries):
        a, b = _score(above, track), _score(below, track)
        assert not (a is None and b is not None), "an entry without a score above one with"
        if a is not None and b is not None:
            assert a >= b, f"{above.name} ({a}) ranks above {below.name} ({b})"
        assert above.rank <= below.rank
        if above.rank == below.rank:
            assert a == b
    if entries:
        assert entries[0].rank == 1
    for index, entry in enumerate(entries):
        assert entry.rank <= index + 1


def _is_sub_order(view: Sequence[OverallEntry], full: Sequence[OverallEntry]) -> None:
    position = {e.submission_id: i for i, e in enumerate(full)}
    kept = [position[e.submission_id] for e in view]
    assert kept == sorted(kept), "a filter reordered the entries"


@settings(max_examples=60, deadline=None)
@given(boards(), st.booleans(), st.sampled_from([None, *Track]))
def test_no_view_ranks_a_lower_score_above_a_higher_one(
    board: OverallLeaderboard, verified: bool, track: Track | None
) -> None:
    base = _track_board(board, track) if track is not None else board
    views = [base]
    if verified:
        views.append(_verified_board(base))
    views += [_covering_board(v) for v in list(views)]
    for view in views:
        _check_order(view.entries, track is not None)
        _is_sub_order(view.entries, base.entries)
    if track is None:
        _check_order(board.entries, False)
        for view in views:
            if view.coverage == "all":  # every mean over the same (all) tasks
                assert all(e.tasks_covered == e.tasks_total for e in view.entries)
    else:
        assert all(e.params is not None and e.params <= track.limit for e in base.entries)


@settings(max_examples=60, deadline=None)
@given(boards())
def test_dropping_a_task_never_raises_an_entry_in_the_default_view(
    board: OverallLeaderboard,
) -> None:
    """An entry of the all-tasks view, with one task score removed, leaves that view."""
    full = _covering_board(board)
    for entry in full.entries:
        if entry.tasks_total == 0:
            continue
        dropped = overall_score(dict(list(entry.task_scores.items())[1:]), list(entry.task_scores))
        assert dropped.tasks_covered < dropped.tasks_total  # so `_covering_board` leaves it out


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), SCORES), PERFORMANCES, st.booleans()),
        max_size=12,
    )
)
def test_task_tables_keep_the_order(rows: list[tuple[float | None, float, bool]]) -> None:
    """The task page's measured and self-reported tables are slices of the ranked board."""
    ranked = sorted(
        enumerate(rows),
        key=lambda r: (-r[1][0] if r[1][0] is not None else float("inf"), -r[1][1]),
    )
    subs = tuple(
        TaskSubmissionEntry(
            rank=i + 1,
            submission_id=sid,
            name=str(sid),
            kind="self_reported" if paper else "measured",
            verified=False,
            is_baseline=False,
            params=None,
            paper_url=None,
            code_url=None,
            score=score,
            points=1,
            best_performance=best,
            out_of_range=False,
        )
        for i, (sid, (score, best, paper)) in enumerate(ranked)
    )
    board = TaskLeaderboard(
        task=TaskColumn("SST-2", "SST-2", "sentiment", "accuracy", True),
        baseline=None,
        note=None,
        submissions=subs,
        points=(),
        flops_front=(),
        params_front=(),
    )
    measured, papers, _ = _task_parts(board)
    for table in (measured, papers):
        scores = [s.score for s in table]
        present = [s for s in scores if s is not None]
        assert present == sorted(present, reverse=True)
        assert scores[: len(present)] == present  # no score: last
