"""The compare view: chosen entries of one task on the same two plots, and their points as a
table (HTML, CSV and a LaTeX `tabular`).

The URL holds the whole view, so a link reproduces it:
`/compare?task=SST-2&ids=12,15,40&scale=log&unit=M` (`ids` may also repeat, as the board's
checkboxes send it). At most `MAX_ENTRIES` entries, as ELUE's plots. The table is one model
(`CompareTable`: columns, then one row per point) that the page, the CSV and the LaTeX all
print. With two or more measured entries, each is compared with a reference entry (`ref`,
by default the first measured one) by a paired bootstrap over the test samples
(`core.paired.compare`, the same as `GET /api/v1/tasks/{task}/paired`): the difference of the
ELUE task score and of the mean performance with their 95% intervals, marked "within noise"
when the interval holds 0, and per point sharing a name, a column of the table.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.cost_counter import COUNTER_VERSION
from core.errors import InvalidInputError, Problem
from core.leaderboard import TaskLeaderboard, TaskSubmissionEntry, task_leaderboard
from core.models import Result, Submission, SubmissionKind, Task
from core.paired import DifferenceRead, PairedRead, compare
from core.settings import Settings
from core.submissions.queries import page_url
from core.text import csv_cell
from web.views import format as fmt
from web.views.colours import colour_of
from web.views.leaderboard import plot_body

MAX_ENTRIES = 11  # as ELUE's plots
PICK_LIST = 100  # board entries offered as checkboxes on the compare page
UNITS: dict[str, float] = {"1": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}
Scale = Literal["log", "linear"]


@dataclass(frozen=True, slots=True)
class CompareQuery:
    task: str
    ids: tuple[int, ...] = ()
    scale: Scale = "log"
    unit: str = "M"
    ref: int | None = None  # the reference entry of the paired differences

    def params(self) -> dict[str, str]:
        values = {"task": self.task, "ids": ",".join(str(i) for i in self.ids)}
        if self.ref is not None:
            values["ref"] = str(self.ref)
        if self.scale != "log":
            values["scale"] = self.scale
        if self.unit != "M":
            values["unit"] = self.unit
        return {k: v for k, v in values.items() if v}

    def url(self, path: str = "/compare") -> str:
        return path + "?" + urlencode(self.params())


def parse_compare_query(
    task: str, ids: Sequence[str], scale: str = "log", unit: str = "M", ref: str | None = None
) -> CompareQuery:
    """The query, or InvalidInputError listing every problem (bad id, too many, bad option)."""
    problems: list[Problem] = []
    chosen: list[int] = []
    for raw in ids:
        for part in raw.split(","):
            text = part.strip()
            if not text:
                continue
            if not text.isdigit() or not 1 <= int(text) <= 2**62:
                problems.append(Problem(f"{text[:40]!r} is not an entry id", column="ids"))
            elif int(text) not in chosen:
                chosen.append(int(text))
    if len(chosen) > MAX_ENTRIES:
        problems.append(
            Problem(
                f"{len(chosen)} entries chosen; compare at most {MAX_ENTRIES} at a time "
                "(untick some)",
                column="ids",
            )
        )
    if scale not in ("log", "linear"):
        problems.append(Problem(f"scale must be log or linear, not {scale[:20]!r}", column="scale"))
    if unit not in UNITS:
        problems.append(
            Problem(f"unit must be one of {', '.join(UNITS)}, not {unit[:20]!r}", column="unit")
        )
    reference: int | None = None
    if ref is not None and ref.strip():
        if not ref.strip().isdigit() or not 1 <= int(ref.strip()) <= 2**62:
            problems.append(Problem(f"{ref[:40]!r} is not an entry id", column="ref"))
        elif int(ref.strip()) not in chosen:
            problems.append(
                Problem(f"the reference #{ref.strip()} is not among the chosen entries", "ref")
            )
        else:
            reference = int(ref.strip())
    if problems:
        raise InvalidInputError("Cannot show this comparison", problems)
    return CompareQuery(
        task=task,
        ids=tuple(chosen),
        scale="linear" if scale == "linear" else "log",
        unit=unit,
        ref=reference,
    )


# --- the table ------------------------------------------------------------------------------


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


# --- paired differences against a reference entry -------------------------------------------

_PAIRED_CACHE: dict[tuple[Any, ...], PairedRead] = {}
_PAIRED_CACHE_SIZE = 512


def _difference(d: DifferenceRead) -> DifferenceText:
    verdict = "within noise" if d.within_noise else ("above" if d.difference > 0 else "below")
    text = f"{fmt.signed(d.difference)} {fmt.interval(d.ci_low, d.ci_high, signed_values=True)}"
    return DifferenceText(text=text, verdict=verdict, within_noise=d.within_noise)


def _same_point(read: PairedRead | None, point: str | None) -> DifferenceRead | None:
    if read is None or point is None:
        return None
    return next((q for q in read.points if q.a_point == point), None)


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


def compare_view(
    session: Session, settings: Settings, task: Task, query: CompareQuery
) -> CompareView:
    board = task_leaderboard(session, task.name)
    on_board = {e.submission_id: e for e in board.submissions}
    entries = [on_board[i] for i in query.ids if i in on_board]
    missing = [i for i in query.ids if i not in on_board]
    paired = paired_differences(session, settings, task, entries, query.ref)
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
    board = task_leaderboard(session, task.name)
    on_board = {e.submission_id: e for e in board.submissions}
    entries = [on_board[i] for i in query.ids if i in on_board]
    paired = paired_differences(session, settings, task, entries, query.ref)
    return compare_table(session, task, board, entries, query.unit, paired)


# --- exports --------------------------------------------------------------------------------


def table_csv(table: CompareTable) -> str:
    """The table as CSV: one header row, then exact values (FLOPs in the view's unit), with
    the submission id first; text cells a spreadsheet would read as formulas are quoted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission_id", *(c.key for c in table.columns)])
    for row in table.rows:
        writer.writerow([row.submission_id, *(_csv_value(row.value[c.key]) for c in table.columns)])
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return csv_cell(value) if isinstance(value, str | int) else value


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\u2212": "$-$",
    "\u2265": r"$\geq$ ",
    "\u2013": "--",
    "\u2014": "---",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell or caption (special characters escaped, line
    breaks as spaces)."""
    text = " ".join(text.split())
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def table_latex(table: CompareTable, label: str = "tab:compare") -> str:
    """A `table` with a `tabular` (plain \\hline rules, no package needed) and the caption,
    which names the cost-counter version."""
    shown = table.shown_columns
    spec = "".join("r" if c.numeric else "l" for c in shown)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\hline",
        " & ".join(latex_escape(c.label) for c in shown) + r" \\",
        r"\hline",
    ]
    for row in table.rows:
        lines.append(" & ".join(latex_escape(row.text[c.key]) for c in shown) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
