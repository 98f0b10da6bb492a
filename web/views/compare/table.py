"""The compare table: one model (`CompareTable`: columns, then one row per point) that the page,
the CSV and the LaTeX all print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.cost_counter import COUNTER_VERSION
from core.leaderboard import TaskLeaderboard, TaskSubmissionEntry
from core.models import Result, SubmissionKind, Task
from core.paired import DifferenceRead, PairedRead
from core.submissions.queries import page_url
from web.views import format as fmt
from web.views.colours import colour_of
from web.views.compare.query import MAX_ENTRIES, UNITS, CompareQuery


@dataclass(frozen=True, slots=True)
class TableColumn:
    key: str
    label: str  # the page's and the LaTeX header
    numeric: bool = False
    shown: bool = True  # False: in the CSV only (exact values that a shown column prints)


@dataclass(frozen=True, slots=True)
class TableRow:
    submission_id: int
    colour: str
    url: str
    text: dict[str, str]  # per column key: as printed (page, LaTeX)
    value: dict[str, Any]  # per column key: the exact value (CSV)


@dataclass(frozen=True, slots=True)
class CompareTable:
    columns: tuple[TableColumn, ...]
    rows: tuple[TableRow, ...]
    caption: str

    @property
    def shown_columns(self) -> tuple[TableColumn, ...]:
        return tuple(c for c in self.columns if c.shown)


@dataclass(frozen=True, slots=True)
class DifferenceText:
    text: str  # "+0.42 [-0.10, +0.90]"
    verdict: str  # "within noise", "above", "below"
    within_noise: bool


@dataclass(frozen=True, slots=True)
class PairedRow:
    """One entry against the reference: its paired-bootstrap differences."""

    submission_id: int
    name: str
    colour: str
    url: str
    score: DifferenceText | None  # ELUE task score (None: no baseline or incomplete count)
    performance: DifferenceText  # mean performance over the entry's points


@dataclass(frozen=True, slots=True)
class Paired:
    """The paired comparisons of a view: each measured entry against the reference."""

    reference: TaskSubmissionEntry | None
    rows: tuple[PairedRow, ...]
    by_entry: dict[int, PairedRead]
    n_resamples: int = 0
    seed: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PickOption:
    id: int
    label: str
    checked: bool
    colour: str


@dataclass
class CompareView:
    query: CompareQuery
    task_name: str
    display_name: str
    metric: str
    entries: list[TaskSubmissionEntry]
    missing: list[int]
    table: CompareTable
    plot_data: str
    picks: list[PickOption]
    paired: Paired | None = None
    units: tuple[str, ...] = tuple(UNITS)
    max_entries: int = MAX_ENTRIES
    link: str = ""
    csv_url: str = ""
    latex_url: str = ""
    task_url: str = ""
    notes: list[str] = field(default_factory=list)


def _unit_label(unit: str) -> str:
    return "FLOPs" if unit == "1" else f"{unit}FLOPs"


def _flops_in(value: float, unit: str) -> str:
    scaled = value / UNITS[unit]
    return f"{scaled:,.4g}" if abs(scaled) < 1e4 else f"{scaled:,.0f}"


def counter_versions(session: Session, result_ids: Sequence[int]) -> list[str]:
    """The cost-counter versions that counted these results (sorted; empty: none counted)."""
    if not result_ids:
        return []
    found = session.scalars(
        select(Result.counter_version)
        .where(Result.id.in_(list(result_ids)), Result.counter_version.is_not(None))
        .distinct()
    )
    return sorted(v for v in found if v)


def _caption(
    task: Task, metric: str, unit: str, versions: Sequence[str], any_self_reported: bool
) -> str:
    if versions:
        counted = (
            f"FLOPs counted by the paretoboard cost counter "
            f"{'version ' + versions[0] if len(versions) == 1 else 'versions ' + ', '.join(versions)}"
        )
    else:
        counted = f"no FLOPs counted here (current counter version {COUNTER_VERSION})"
    papers = "; self-reported points are the authors' numbers" if any_self_reported else ""
    return (
        f"{metric} on {task.display_name} against average {_unit_label(unit)} per sample; "
        f"{counted}{papers}."
    )


def compare_table(
    session: Session,
    task: Task,
    board: TaskLeaderboard,
    entries: Sequence[TaskSubmissionEntry],
    unit: str,
    paired: Paired | None = None,
) -> CompareTable:
    wanted = {e.submission_id: i for i, e in enumerate(entries)}
    by_entry = {e.submission_id: e for e in entries}
    points = sorted(
        (p for p in board.points if p.submission_id in wanted),
        key=lambda p: (wanted[p.submission_id], p.flops_mean, p.performance),
    )
    columns: tuple[TableColumn, ...] = (
        TableColumn("entry", "Entry"),
        TableColumn("point", "Point"),
        TableColumn("flops", f"{_unit_label(unit)} / sample", numeric=True),
        TableColumn("params", "Params", numeric=True),
        TableColumn("performance", "Performance", numeric=True),
        TableColumn("task_score", "ELUE task score", numeric=True),
    )
    ref = paired.reference if paired is not None and paired.rows else None
    if ref is not None:
        columns += (
            TableColumn("vs_ref", f"vs {ref.name}, same point (95% CI)", numeric=True),
            TableColumn("vs_ref_ci_low", "", numeric=True, shown=False),
            TableColumn("vs_ref_ci_high", "", numeric=True, shown=False),
            TableColumn("vs_ref_within_noise", "", shown=False),
        )
    rows = []
    for p in points:
        entry = by_entry[p.submission_id]
        extra_text: dict[str, str] = {}
        extra_value: dict[str, Any] = {}
        if ref is not None and paired is not None:
            same = _same_point(paired.by_entry.get(p.submission_id), p.point)
            extra_text["vs_ref"] = (
                "reference"
                if p.submission_id == ref.submission_id
                else (_difference(same).text if same is not None else fmt.DASH)
            )
            extra_value |= {
                "vs_ref": same.difference if same else None,
                "vs_ref_ci_low": same.ci_low if same else None,
                "vs_ref_ci_high": same.ci_high if same else None,
                "vs_ref_within_noise": same.within_noise if same else None,
            }
            extra_text |= dict.fromkeys(
                ("vs_ref_ci_low", "vs_ref_ci_high", "vs_ref_within_noise"), ""
            )
        rows.append(
            TableRow(
                submission_id=p.submission_id,
                colour=colour_of(p.submission_id, is_baseline=entry.is_baseline),
                url=page_url(p.submission_id),
                text={
                    "entry": entry.name,
                    "point": p.point or fmt.DASH,
                    "flops": ("\u2265 " if p.cost_incomplete else "")
                    + _flops_in(p.flops_mean, unit),
                    "params": fmt.params(p.params),
                    "performance": fmt.perf(p.performance),
                    "task_score": fmt.signed(entry.score),
                    **extra_text,
                },
                value={
                    "entry": entry.name,
                    "point": p.point,
                    "flops": p.flops_mean / UNITS[unit],
                    "params": p.params,
                    "performance": p.performance,
                    "task_score": entry.score,
                    **extra_value,
                },
            )
        )
    versions = counter_versions(
        session, [p.result_id for p in points if p.kind != SubmissionKind.SELF_REPORTED.value]
    )
    self_reported = any(e.kind == SubmissionKind.SELF_REPORTED.value for e in entries)
    metric = fmt.metric_text(task.metric)
    caption = _caption(task, metric, unit, versions, self_reported)
    if ref is not None and paired is not None:
        caption += (
            f" Differences against {ref.name}: paired bootstrap over the test samples "
            f"({paired.n_resamples} resamples, seed {paired.seed}, 95% percentile interval)."
        )
    return CompareTable(columns, tuple(rows), caption)


def _difference(d: DifferenceRead) -> DifferenceText:
    verdict = "within noise" if d.within_noise else ("above" if d.difference > 0 else "below")
    text = f"{fmt.signed(d.difference)} {fmt.interval(d.ci_low, d.ci_high, signed_values=True)}"
    return DifferenceText(text=text, verdict=verdict, within_noise=d.within_noise)


def _same_point(read: PairedRead | None, point: str | None) -> DifferenceRead | None:
    if read is None or point is None:
        return None
    return next((q for q in read.points if q.a_point == point), None)
