"""A submission's own plots: its curve on each task against the baseline and the current
Pareto front (the same compact JSON and drawing as the task page and the compare view).

A listed submission is taken from the cached task board; an unlisted one (private, hidden or
still running, seen by its owner or an administrator) is drawn from its own results, cheapest
point first, without being put on the board.

What every submission's plot on a task shares (the board, the fronts' and the baseline's
entries, each entry's points with their place on the board) is a `PlotBase`, made once per
board version and kept in the leaderboard cache; a request adds only its own points, so drawing
costs the size of the front, not of the board.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from core.errors import NotFoundError
from core.leaderboard import (
    PointEntry,
    TaskLeaderboard,
    TaskSubmissionEntry,
    cache,
    task_leaderboard,
)
from core.models import Submission
from core.submissions.schemas import SubmissionRead, TaskResultsRead
from web.views.leaderboard import plot_body


@dataclass(frozen=True, slots=True)
class OwnPlot:
    task: str
    display_name: str
    data: str  # compact JSON, safe inside <script type="application/json">
    on_board: bool  # False: drawn from its own results (not listed on the board)


def _own_entry(
    submission: Submission, results: TaskResultsRead
) -> tuple[TaskSubmissionEntry, list[PointEntry]]:
    kind = submission.kind.value
    points = [
        PointEntry(
            result_id=-(i + 1),  # not a board point: never on a front
            submission_id=submission.id,
            submission_name=submission.name,
            kind=kind,
            verified=p.verified,
            is_baseline=False,
            point=p.point,
            performance=p.performance,
            metrics=p.metrics,
            flops_mean=p.flops.mean,
            flops_p10=p.flops.p10,
            flops_p90=p.flops.p90,
            params=p.params if p.params is not None else submission.params,
            baseline_performance=None,
            delta=p.baseline_delta,
            position=None,
            on_flops_front=False,
            on_params_front=False,
        )
        for i, p in enumerate(results.points)
        if p.performance is not None and p.flops.mean is not None
    ]
    points.sort(key=lambda p: (p.flops_mean, p.performance))
    deltas = [p.delta for p in points if p.delta is not None]
    entry = TaskSubmissionEntry(
        rank=0,
        submission_id=submission.id,
        name=submission.name,
        kind=kind,
        verified=submission.verified,
        is_baseline=False,
        params=submission.params,
        paper_url=submission.paper_url,
        code_url=submission.code_url,
        score=sum(deltas) / len(deltas) if deltas and len(deltas) == len(points) else None,
        points=len(points),
        best_performance=max((p.performance for p in points), default=0.0),
        out_of_range=False,
    )
    return entry, points


@dataclass(frozen=True, slots=True)
class PlotBase:
    """What every submission's own plot on one task shares, made once per board version: the
    board, the entries drawn behind the submission (the fronts' and the baseline's), and each
    entry's points with their place on the board (so a request only adds its own)."""

    board: TaskLeaderboard
    others: tuple[TaskSubmissionEntry, ...]  # on a front or the baseline, in board order
    entries: dict[int, TaskSubmissionEntry]  # every ranked entry by submission id
    other_points: tuple[tuple[int, PointEntry], ...]  # (index in board.points, point)
    points_of: dict[int, tuple[tuple[int, PointEntry], ...]]  # by submission id

    @classmethod
    def of(cls, board: TaskLeaderboard) -> PlotBase:
        front_ids = {p.submission_id for p in board.points if p.on_flops_front or p.on_params_front}
        others = tuple(
            e for e in board.submissions if e.submission_id in front_ids or e.is_baseline
        )
        other_ids = {e.submission_id for e in others}
        points_of: dict[int, list[tuple[int, PointEntry]]] = {}
        for i, p in enumerate(board.points):
            points_of.setdefault(p.submission_id, []).append((i, p))
        return cls(
            board,
            others,
            {e.submission_id: e for e in board.submissions},
            tuple(ip for sid in other_ids for ip in points_of.get(sid, ())),
            {sid: tuple(ps) for sid, ps in points_of.items()},
        )

    def board_for(self, submission_id: int) -> TaskLeaderboard:
        """The board with only the points an own plot of `submission_id` draws (plot_body
        keeps the board's order and reads nothing else of the points)."""
        points = [ip for ip in self.other_points if ip[1].submission_id != submission_id]
        points += self.points_of.get(submission_id, ())
        points.sort(key=lambda ip: ip[0])
        return replace(self.board, points=tuple(p for _, p in points))


def plot_base(session: Session, task: str) -> PlotBase:
    """The `PlotBase` of the task named `task` (its stored name), cached with the boards under
    the same board-version rule."""
    return cache.get(
        session, ("page:own-plot-base", task), lambda s: PlotBase.of(task_leaderboard(s, task))
    )


def own_plots(session: Session, submission: Submission, read: SubmissionRead) -> list[OwnPlot]:
    """One plot pair per task with at least one counted (or self-reported) point."""
    out = []
    for results in read.results:
        try:
            base = plot_base(session, results.task)
        except NotFoundError:
            continue
        board = base.board_for(submission.id)
        mine = base.entries.get(submission.id)
        # not drawn as entries: the fronts and the baseline use their points
        others = [e for e in base.others if e.submission_id != submission.id]
        if mine is not None:
            data = plot_body(board, [mine, *others], highlight=1, others=False)
        else:
            entry, points = _own_entry(submission, results)
            if not points:
                continue
            data = plot_body(board, others, highlight=0, others=False, extra=[(entry, points)])
        out.append(OwnPlot(results.task, results.display_name, data, mine is not None))
    return out


__all__ = ["OwnPlot", "PlotBase", "own_plots", "plot_base"]
