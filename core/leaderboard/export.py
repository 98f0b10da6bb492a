"""The leaderboards as CSV (stdlib csv, one header row, the same rows as the JSON)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence

from core.leaderboard.types import CurveEntry, OverallLeaderboard, TaskLeaderboard
from core.text import csv_cell

Cell = str | int | float | bool | None


def _cell(value: Cell) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest round-tripping form
    # Text a spreadsheet would run as a formula (a name like "=HYPERLINK(...)") gets a leading
    # apostrophe; numbers, negative deltas included, are written as they are.
    return csv_cell(value)


def _csv(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_cell(h) for h in header])
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def _date(value: dt.datetime | None) -> str | None:
    """A submission time as ISO 8601 in UTC (stored times are UTC; SQLite drops the zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def overall_csv(board: OverallLeaderboard) -> str:
    """One row per entry: rank, identity, flags, scores, then per-task score and best columns."""
    names = [t.name for t in board.tasks]
    header = [
        "rank",
        "submission_id",
        "name",
        "kind",
        "verified",
        "self_reported",
        "baseline",
        "params",
        "score",
        "tasks_covered",
        "tasks_total",
        "average_performance",
        *(f"score_{n}" for n in names),
        *(f"best_{n}" for n in names),
        "out_of_range_tasks",
        "incomplete_tasks",
        "owner",
        "affiliation",
        "submitted_at",
        "score_ci_low",
        "score_ci_high",
        *(f"score_{n}_ci_{end}" for n in names for end in ("low", "high")),
    ]
    rows = (
        [
            e.rank,
            e.submission_id,
            e.name,
            e.kind,
            e.verified,
            e.self_reported,
            e.is_baseline,
            e.params,
            e.score,
            e.tasks_covered,
            e.tasks_total,
            e.average_performance,
            *(e.task_scores.get(n) for n in names),
            *(e.best_performance.get(n) for n in names),
            " ".join(e.out_of_range_tasks),
            " ".join(e.incomplete_tasks),
            e.owner,
            e.affiliation,
            _date(e.submitted_at),
            e.score_ci_low,
            e.score_ci_high,
            *(
                e.task_score_intervals[n][i] if n in e.task_score_intervals else None
                for n in names
                for i in (0, 1)
            ),
        ]
        for e in board.entries
    )
    return _csv(header, rows)


def _curve_cells(curve: CurveEntry | None) -> list[Cell]:
    if curve is None:
        return [None] * 6
    return [
        curve.window_low,
        curve.window_high,
        curve.gain,
        curve.loss,
        curve.net,
        curve.hypervolume,
    ]


def task_csv(board: TaskLeaderboard) -> str:
    """One row per point, in the JSON's order, with its submission's task score."""
    score = {s.submission_id: s for s in board.submissions}
    header = [
        "rank",
        "submission_id",
        "name",
        "kind",
        "verified",
        "baseline",
        "point",
        "performance",
        "flops_mean",
        "flops_p10",
        "flops_p90",
        "params",
        "baseline_performance",
        "delta",
        "position",
        "on_flops_front",
        "on_params_front",
        "task_score",
        "result_id",
        "flops_elue_mean",
        "cost_incomplete",
        "cost_disagrees",
        "owner",
        "affiliation",
        "submitted_at",
        "performance_ci_low",
        "performance_ci_high",
        "task_score_ci_low",
        "task_score_ci_high",
        "curve_window_low",
        "curve_window_high",
        "curve_gain",
        "curve_loss",
        "curve_net",
        "hypervolume",
    ]
    rows = (
        [
            score[p.submission_id].rank,
            p.submission_id,
            p.submission_name,
            p.kind,
            p.verified,
            p.is_baseline,
            p.point,
            p.performance,
            p.flops_mean,
            p.flops_p10,
            p.flops_p90,
            p.params,
            p.baseline_performance,
            p.delta,
            p.position,
            p.on_flops_front,
            p.on_params_front,
            score[p.submission_id].score,
            p.result_id,
            p.flops_elue_mean,
            p.cost_incomplete,
            p.cost_disagrees,
            score[p.submission_id].owner,
            score[p.submission_id].affiliation,
            _date(score[p.submission_id].submitted_at),
            p.ci_low,
            p.ci_high,
            score[p.submission_id].score_ci_low,
            score[p.submission_id].score_ci_high,
            *_curve_cells(score[p.submission_id].curve),
        ]
        for p in board.points
    )
    return _csv(header, rows)
