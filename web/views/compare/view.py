"""The compare view: chosen entries of one task on the same two plots, and their points as a
table.

With two or more measured entries, each is compared with a reference entry (`ref`, by default
the first measured one) by a paired bootstrap over the test samples (`core.paired.compare`, the
same as `GET /api/v1/tasks/{task}/paired`): the difference of the ELUE task score and of the
mean performance with their 95% intervals, marked "within noise" when the interval holds 0, and
per point sharing a name, a column of the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InvalidInputError
from core.leaderboard import TaskLeaderboard, TaskSubmissionEntry, task_leaderboard
from core.models import Result, Submission, SubmissionKind, Task
from core.paired import PairedRead, compare
from core.settings import Settings
from core.submissions.queries import page_url
from web.views import format as fmt
from web.views.colours import colour_of
from web.views.compare.query import MAX_ENTRIES, PICK_LIST, CompareQuery
from web.views.compare.table import (
    CompareTable,
    CompareView,
    Paired,
    PairedRow,
    PickOption,
    _difference,
    compare_table,
)
from web.views.leaderboard import plot_body

_PAIRED_CACHE: dict[tuple[Any, ...], PairedRead] = {}
_PAIRED_CACHE_SIZE = 512


def _cached_compare(
    session: Session, settings: Settings, task: Task, a: Submission, b: Submission
) -> PairedRead:
    """`core.paired.compare`, remembered per process for the same scored points (a rescore
    changes the key) and the same bootstrap settings."""
    scored = session.execute(
        select(Result.submission_id, Result.id, Result.point, Result.performance)
        .where(Result.task_id == task.id, Result.submission_id.in_((a.id, b.id)))
        .order_by(Result.submission_id, Result.id)
    ).all()
    key = (
        task.id,
        a.id,
        b.id,
        tuple(tuple(r) for r in scored),
        settings.scoring.bootstrap_resamples,
        settings.scoring.bootstrap_seed,
    )
    found = _PAIRED_CACHE.get(key)
    if found is None:
        found = compare(session, settings, task, a, b)
        if len(_PAIRED_CACHE) >= _PAIRED_CACHE_SIZE:
            _PAIRED_CACHE.pop(next(iter(_PAIRED_CACHE)))
        _PAIRED_CACHE[key] = found
    return found


def paired_differences(
    session: Session,
    settings: Settings,
    task: Task,
    entries: Sequence[TaskSubmissionEntry],
    ref: int | None,
) -> Paired | None:
    """Each measured entry against the reference (the one asked for, else the first measured
    entry); None when fewer than two measured entries are chosen."""
    measured = [e for e in entries if e.kind == SubmissionKind.MEASURED.value]
    if len(measured) < 2:
        return None
    reference = next((e for e in measured if e.submission_id == ref), measured[0])
    ref_row = session.get(Submission, reference.submission_id)
    rows: list[PairedRow] = []
    by_entry: dict[int, PairedRead] = {}
    notes: list[str] = []
    for entry in measured:
        if entry is reference:
            continue
        row = session.get(Submission, entry.submission_id)
        if row is None or ref_row is None:
            continue
        try:
            read = _cached_compare(session, settings, task, row, ref_row)
        except InvalidInputError as exc:
            notes.append(
                f"{entry.name} cannot be compared with {reference.name}: "
                + "; ".join(p.problem for p in exc.problems)
            )
            continue
        by_entry[entry.submission_id] = read
        rows.append(
            PairedRow(
                submission_id=entry.submission_id,
                name=entry.name,
                colour=colour_of(entry.submission_id, is_baseline=entry.is_baseline),
                url=page_url(entry.submission_id),
                score=_difference(read.score) if read.score is not None else None,
                performance=_difference(read.mean_performance),
            )
        )
    return Paired(
        reference=reference,
        rows=tuple(rows),
        by_entry=by_entry,
        n_resamples=settings.scoring.bootstrap_resamples,
        seed=settings.scoring.bootstrap_seed,
        notes=tuple(notes),
    )


def _chosen(
    session: Session, settings: Settings, task: Task, query: CompareQuery
) -> tuple[TaskLeaderboard, list[TaskSubmissionEntry], list[int], Paired | None]:
    """The task board, the entries the query names that are on it, the ids that are not, and
    the paired differences between the entries."""
    board = task_leaderboard(session, task.name)
    on_board = {e.submission_id: e for e in board.submissions}
    entries = [on_board[i] for i in query.ids if i in on_board]
    missing = [i for i in query.ids if i not in on_board]
    return board, entries, missing, paired_differences(session, settings, task, entries, query.ref)


def compare_view(
    session: Session, settings: Settings, task: Task, query: CompareQuery
) -> CompareView:
    board, entries, missing, paired = _chosen(session, settings, task, query)
    chosen = {e.submission_id for e in entries}
    front_ids = {p.submission_id for p in board.points if p.on_flops_front or p.on_params_front}
    # Front members and the baseline are sent too (not drawn as entries): the fronts and the
    # baseline on the parameters plot use their points.
    front_only = [
        e
        for e in board.submissions
        if e.submission_id not in chosen and (e.submission_id in front_ids or e.is_baseline)
    ]
    plot = plot_body(board, [*entries, *front_only], highlight=len(entries), others=False)
    offered = list(board.submissions[:PICK_LIST]) + [
        e for e in entries if e not in board.submissions[:PICK_LIST]
    ]
    notes = []
    if missing:
        notes.append(
            f"Not on the {task.name} board (unknown, private, hidden, withdrawn or without a "
            f"point on this task): {', '.join(f'#{i}' for i in missing)}."
        )
    if paired is not None:
        notes.extend(paired.notes)
    if not query.ids:
        notes.append(
            f"Tick up to {MAX_ENTRIES} entries below (or on the task page's board) to compare them."
        )
    return CompareView(
        query=query,
        task_name=task.name,
        display_name=task.display_name,
        metric=fmt.metric_text(task.metric),
        entries=entries,
        missing=missing,
        table=compare_table(session, task, board, entries, query.unit, paired),
        plot_data=plot,
        paired=paired,
        picks=[
            PickOption(
                id=e.submission_id,
                label=f"{e.rank}. {e.name} (#{e.submission_id})",
                checked=e.submission_id in chosen,
                colour=colour_of(e.submission_id, is_baseline=e.is_baseline),
            )
            for e in offered
        ],
        link=query.url(),
        csv_url=query.url("/compare.csv"),
        latex_url=query.url("/compare.tex"),
        task_url=f"/tasks/{task.name}",
        notes=notes,
    )


def export_table(
    session: Session, settings: Settings, task: Task, query: CompareQuery
) -> CompareTable:
    """The view's table alone (the CSV and LaTeX exports)."""
    board, entries, _, paired = _chosen(session, settings, task, query)
    return compare_table(session, task, board, entries, query.unit, paired)
