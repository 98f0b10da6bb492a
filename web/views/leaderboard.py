"""What the home page (overall leaderboard, tracks) and the task pages show.

Everything starts from the cached leaderboards of `core.leaderboard` (computed from stored
summaries, never from per-sample costs). Per request a page only filters and sorts the cached
entries and formats the rows it shows (at most `PER_PAGE`); the task plots' compact JSON is
cached with the leaderboards, under the same board-version rule.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from core.leaderboard import (
    OverallEntry,
    OverallLeaderboard,
    PointEntry,
    TaskLeaderboard,
    TaskSubmissionEntry,
    cache,
    overall_leaderboard,
    task_leaderboard,
)
from core.leaderboard.paging import Derived, search_entries
from core.models import SubmissionKind, Task
from core.ranking.score import DEFAULT_COVERAGE, Coverage
from core.ranking.tracks import Track
from core.submissions.queries import page_url
from core.tasks import service as task_service
from core.tasks.manifest import Family, family_title
from web.bodies import Body
from web.views import format as fmt
from web.views.colours import colour_of
from web.views.uncertainty import CurveText, curve_text

T = TypeVar("T")
PER_PAGE = 100
PLOT_TOP = 15  # submissions drawn one curve each by default, besides front members and baseline
Direction = Literal["asc", "desc"]


# --- shared bits ------------------------------------------------------------------------------


_derived = Derived()


@dataclass(frozen=True, slots=True)
class Badge:
    label: str
    kind: str  # css modifier: baseline | self-reported | verified | private | hidden | ...
    title: str


def badges(
    *,
    is_baseline: bool,
    baseline_for: Sequence[str] = (),
    self_reported: bool,
    verified: bool,
    incomplete: Sequence[str] | int = (),
    baseline_label: str | None = None,
) -> list[Badge]:
    out: list[Badge] = []
    if incomplete:
        where = (
            f" on {', '.join(incomplete)}"
            if not isinstance(incomplete, int)
            else f" ({incomplete} point{'s' if incomplete != 1 else ''})"
        )
        out.append(
            Badge(
                "Incomplete count",
                "incomplete",
                f"The FLOPs count{where} met operators no cost rule covers: a lower bound, "
                "kept off the Pareto fronts and out of the ELUE score",
            )
        )
    if is_baseline:
        where = f" of {', '.join(baseline_for)}" if baseline_for else ""
        label = f"Baseline: {baseline_label}" if baseline_label else "Baseline"
        out.append(
            Badge(
                label,
                "baseline",
                f"The baseline curve{where} (ELUE score 0)"
                + (f"; {baseline_label}" if baseline_label else ""),
            )
        )
    if self_reported:
        out.append(
            Badge(
                "Self-reported",
                "self-reported",
                "Costs typed in by the submitter (from a paper, or with scored predictions); "
                "not measured",
            )
        )
    if verified:
        out.append(
            Badge(
                "Verified",
                "verified",
                "The platform ran the counted program with the submitted weights and got every "
                "point's predictions",
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """Who submitted an entry and when (the boards' owner, affiliation and date columns)."""

    owner: str
    affiliation: str
    submitted: str  # the date
    submitted_title: str  # the full time


def entry_meta(
    owner: str | None, affiliation: str | None, submitted: dt.datetime | None
) -> EntryMeta:
    return EntryMeta(
        owner=owner or "operator",
        affiliation=affiliation or fmt.DASH,
        submitted=fmt.when(submitted)[:10] if submitted else fmt.DASH,
        submitted_title=fmt.when(submitted),
    )


@dataclass(frozen=True, slots=True)
class Pager:
    page: int
    pages: int
    total: int
    first: int  # 1-based index of the first row shown
    last: int
    prev_url: str | None
    next_url: str | None
    summary: str


def _pager(total: int, page: int, url: Callable[[int], str]) -> tuple[Pager, slice]:
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(max(page, 1), pages)
    start = (page - 1) * PER_PAGE
    end = min(start + PER_PAGE, total)
    return (
        Pager(
            page=page,
            pages=pages,
            total=total,
            first=start + 1 if total else 0,
            last=end,
            prev_url=url(page - 1) if page > 1 else None,
            next_url=url(page + 1) if page < pages else None,
            summary=(
                f"Rows {start + 1:,}\u2013{end:,} of {total:,} (page {page} of {pages})"
                if total
                else "No rows"
            ),
        ),
        slice(start, end),
    )


def parse_millions(raw: str | None) -> float | None:
    """A parameter bound typed in millions ("55", "6.5"); None when empty or not a number."""
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw.strip().replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


# --- the overall leaderboard ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HomeQuery:
    track: Track | None = None
    q: str = ""
    min_params: float | None = None  # millions
    max_params: float | None = None
    sort: str = "rank"
    dir: Direction = "asc"
    page: int = 1
    verified: bool = False  # verified entries only (docs/verification.md)
    # Self-reported entries ranked with the measured ones (by default they are kept apart)
    self_reported: bool = False
    coverage: Coverage = DEFAULT_COVERAGE  # "all": entries covering every task; "any": all

    def url(self, **changes: Any) -> str:
        values: dict[str, Any] = {
            "track": self.track.value if self.track else None,
            "verified": "1" if self.verified else None,
            "self_reported": "1" if self.self_reported else None,
            "coverage": None if self.coverage == DEFAULT_COVERAGE else self.coverage,
            "q": self.q,
            "min_params": _bound_text(self.min_params),
            "max_params": _bound_text(self.max_params),
            "sort": None if self.sort == "rank" else self.sort,
            "dir": None if self.dir == "asc" else self.dir,
            "page": self.page if self.page > 1 else None,
        }
        values.update(changes)
        if values["page"] == 1:
            values["page"] = None
        if values.get("coverage") == DEFAULT_COVERAGE:
            values["coverage"] = None
        for flag in ("verified", "self_reported"):
            if values.get(flag) in (False, "0"):
                values[flag] = None
            elif values.get(flag) is True:
                values[flag] = "1"
        query = {k: v for k, v in values.items() if v is not None and v != ""}
        return "/?" + urlencode(query) if query else "/"


def _bound_text(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:g}"


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    title: str
    out_of_range: bool = False
    ci: str = ""  # 95% bootstrap interval, "" where none is shown


@dataclass(frozen=True, slots=True)
class HomeRow:
    rank: int
    name: str
    url: str
    badges: list[Badge]
    params: str
    params_title: str
    cells: list[Cell]
    average: str
    covered: str
    paper_url: str | None
    code_url: str | None
    meta: EntryMeta | None = None
    average_ci: str = ""  # the overall score's 95% interval ("—" when not computed)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    title: str
    sort_url: str
    aria_sort: str  # ascending | descending | none
    task_url: str | None = None


@dataclass(frozen=True, slots=True)
class FamilyHeader:
    title: str
    span: int


@dataclass(frozen=True, slots=True)
class TrackTab:
    label: str
    url: str
    current: bool
    title: str


@dataclass(frozen=True, slots=True)
class TaskCard:
    name: str
    display_name: str
    family: str
    metric: str
    test_size: str
    url: str
    has_baseline: bool


@dataclass
class HomeView:
    query: HomeQuery
    tabs: list[TrackTab]
    families: list[FamilyHeader]
    columns: list[Column]  # the task columns
    fixed: dict[str, Column]  # rank, name, params, average, covered
    rows: list[HomeRow]
    pager: Pager
    cards: list[TaskCard]
    ranked_by: str
    average_label: str
    listed: int  # entries on this board before filtering
    json_url: str
    csv_url: str
    reset_url: str
    match_text: str
    min_text: str
    max_text: str
    notes: list[str] = field(default_factory=list)
    verified_only: bool = False
    verified_url: str = "/?verified=1"
    self_reported_url: str = "/?self_reported=1"
    coverage_links: list[TrackTab] = field(default_factory=list)  # all tasks / any


def _entry_value(entry: OverallEntry, sort: str, track: bool) -> Any:
    if sort == "name":
        return entry.name.casefold()
    if sort == "params":
        return entry.params
    if sort == "score":
        return entry.average_performance if track else entry.score
    if sort == "tasks":
        return len(entry.best_performance) if track else entry.tasks_covered
    if sort.startswith("task:"):
        name = sort[5:]
        return (entry.best_performance if track else entry.task_scores).get(name)
    return entry.rank


def _sorted(
    entries: Sequence[OverallEntry], sort: str, direction: Direction, track: bool
) -> list[OverallEntry]:
    if sort == "rank":
        out = list(entries)
        return out[::-1] if direction == "desc" else out
    with_value = [(v, e) for e in entries if (v := _entry_value(e, sort, track)) is not None]
    without = [e for e in entries if _entry_value(e, sort, track) is None]
    with_value.sort(key=lambda item: item[0], reverse=direction == "desc")
    return [e for _, e in with_value] + without  # no value: always last


def _filtered(
    board: OverallLeaderboard, ordered: Sequence[OverallEntry], query: HomeQuery
) -> Sequence[OverallEntry]:
    """The entries matching the name search and the parameter range, in `ordered`'s order.

    Neither scans the board: the search reads the name index (`core.leaderboard.search`), the
    range a list sorted by parameters (both built once per board)."""
    low = None if query.min_params is None else query.min_params * 1e6
    high = None if query.max_params is None else query.max_params * 1e6
    searching = bool(query.q.strip())
    if not searching and low is None and high is None:
        return ordered
    if searching:
        found: Sequence[OverallEntry] = search_entries(board, query.q)
        if low is not None or high is not None:
            found = [
                e
                for e in found
                if e.params is not None
                and (low is None or e.params >= low)
                and (high is None or e.params <= high)
            ]
    else:
        by_params = _derived.get(board, ("home-by-params", board.track), _by_params)
        keys = _derived.get(
            board,
            ("home-params-keys", board.track),
            lambda b: [
                _params(e) for e in _derived.get(b, ("home-by-params", b.track), _by_params)
            ],
        )
        start = 0 if low is None else bisect_left(keys, low)
        end = len(keys) if high is None else bisect_right(keys, high)
        found = by_params[start:end]
    if searching and query.sort == "rank" and query.dir == "asc":
        return found  # already in rank order
    sort, direction = query.sort, query.dir
    position = _derived.get(
        board,
        ("home-position", board.track, sort, direction),
        lambda b: {e.submission_id: i for i, e in enumerate(_ordered(b, sort, direction))},
    )
    return sorted(found, key=lambda e: position[e.submission_id])


def _by_params(board: OverallLeaderboard) -> list[OverallEntry]:
    return sorted((e for e in board.entries if e.params is not None), key=_params)


def _params(entry: OverallEntry) -> int:
    assert entry.params is not None
    return entry.params


_ROWS_KEPT = 5_000


def _home_rows(board: OverallLeaderboard, entries: Sequence[OverallEntry]) -> list[HomeRow]:
    """The page's rows, each formatted once per board (whatever the sort, filter or page);
    at most `_ROWS_KEPT` per board are kept, so a crawl of every page holds little memory."""
    made: dict[int, HomeRow] = _derived.get(board, ("home-rows", board.track), lambda _: {})
    if len(made) > _ROWS_KEPT:
        made.clear()
    rows = []
    for entry in entries:
        row = made.get(entry.submission_id)
        if row is None:
            row = made[entry.submission_id] = _home_row(entry, board)
        rows.append(row)
    return rows


def _home_row(entry: OverallEntry, board: OverallLeaderboard) -> HomeRow:
    track = board.track is not None
    cells: list[Cell] = []
    for column in board.tasks:
        name = column.name
        if track:
            value = entry.best_performance.get(name)
            cells.append(Cell(fmt.perf(value), "" if value is not None else "no point"))
        else:
            score = entry.task_scores.get(name)
            if score is None:
                has_point = name in entry.best_performance
                why = "no baseline" if has_point else "no point"
                if name in entry.incomplete_tasks:
                    why = "incomplete FLOPs count (a lower bound): not scored"
                cells.append(Cell(fmt.DASH, why))
            else:
                low, high = entry.task_score_intervals.get(name, (None, None))
                cells.append(
                    Cell(
                        fmt.signed(score),
                        "",
                        name in entry.out_of_range_tasks,
                        fmt.interval(low, high, signed_values=True),
                    )
                )
    if track:
        average = fmt.perf(entry.average_performance)
        covered = f"{len(entry.best_performance)}/{len(board.tasks)}"
    else:
        average = fmt.signed(entry.score)
        covered = f"{entry.tasks_covered}/{entry.tasks_total}"
    return HomeRow(
        rank=entry.rank,
        name=entry.name,
        url=page_url(entry.submission_id),
        badges=badges(
            is_baseline=entry.is_baseline,
            baseline_for=entry.baseline_for,
            self_reported=entry.self_reported,
            verified=entry.verified,
            incomplete=entry.incomplete_tasks,
            baseline_label=entry.baseline_label,
        ),
        params=fmt.params(entry.params),
        params_title=fmt.exact(entry.params) if entry.params else "unknown",
        cells=cells,
        average=average,
        covered=covered,
        paper_url=entry.paper_url,
        code_url=entry.code_url,
        meta=entry_meta(entry.owner, entry.affiliation, entry.submitted_at),
        average_ci=""
        if track or entry.score is None
        else fmt.interval(entry.score_ci_low, entry.score_ci_high, signed_values=True),
    )


def _column(query: HomeQuery, key: str, label: str, title: str, **extra: Any) -> Column:
    current = query.sort == key
    if current:
        aria = "ascending" if query.dir == "asc" else "descending"
        next_dir: Direction = "desc" if query.dir == "asc" else "asc"
    else:
        aria = "none"
        # Scores, tasks covered: best first; names, ranks, params: smallest first.
        next_dir = "desc" if key in ("score", "tasks") or key.startswith("task:") else "asc"
    url = query.url(sort=key, dir=next_dir, page=None)
    return Column(key, label, title, url, aria, **extra)


def _cards(session: Session, board: OverallLeaderboard) -> list[TaskCard]:
    by_name = {t.name: t for t in task_service.list_tasks(session)}
    cards = []
    for column in board.tasks:
        task = by_name.get(column.name)
        cards.append(
            TaskCard(
                name=column.name,
                display_name=column.display_name,
                family=_family_title(column.family),
                metric=fmt.metric_text(column.metric),
                test_size=fmt.exact(task.test_size) if task else fmt.DASH,
                url=f"/tasks/{column.name}",
                has_baseline=column.has_baseline,
            )
        )
    return cards


def _family_title(family: str) -> str:
    try:
        return family_title(Family(family))
    except ValueError:
        return family


def _ordered(board: OverallLeaderboard, sort: str, direction: Direction) -> Sequence[OverallEntry]:
    """The board's entries in the page's order (once per board, sort and direction)."""
    return _derived.get(
        board,
        ("home", board.track, sort, direction),
        lambda b: _sorted(b.entries, sort, direction, b.track is not None),
    )


def home_view(session: Session, query: HomeQuery) -> HomeView:
    board = overall_leaderboard(
        session,
        query.track,
        verified_only=query.verified,
        self_reported=query.self_reported,
        coverage=query.coverage,
    )
    track = board.track is not None
    ordered = _ordered(board, query.sort, query.dir)
    entries = _filtered(board, ordered, query)  # keeps the order
    pager, window = _pager(len(entries), query.page, lambda p: query.url(page=p))
    tabs = [
        TrackTab(
            "ELUE score",
            HomeQuery(
                q=query.q,
                min_params=query.min_params,
                max_params=query.max_params,
                verified=query.verified,
                self_reported=query.self_reported,
                coverage=query.coverage,
            ).url(),
            board.track is None,
            "Ranked by ELUE score, higher first",
        )
    ] + [
        TrackTab(
            f"\u2264 {t.value}",
            HomeQuery(
                track=t,
                q=query.q,
                min_params=query.min_params,
                max_params=query.max_params,
                verified=query.verified,
                self_reported=query.self_reported,
                coverage=query.coverage,
            ).url(),
            board.track is t,
            f"Models with at most {t.limit:,} parameters, ranked by average performance",
        )
        for t in Track
    ]
    kind = "best performance" if track else "ELUE score"
    columns = [
        _column(
            query,
            f"task:{c.name}",
            c.name,
            f"{c.display_name}: {kind}" + ("" if c.has_baseline or track else " (no baseline)"),
            task_url=f"/tasks/{c.name}",
        )
        for c in board.tasks
    ]
    average_label = "Avg. perf." if track else "ELUE score"
    fixed = {
        "rank": _column(query, "rank", "Rank", "Rank on this board"),
        "name": _column(query, "name", "Model", "Submission name"),
        "params": _column(query, "params", "Params", "Parameter count"),
        "score": _column(
            query,
            "score",
            average_label,
            "Mean over tasks of the best performance"
            if track
            else "Mean of the task scores over covered tasks",
        ),
        "tasks": _column(query, "tasks", "Tasks", "Tasks covered"),
    }
    api_query: dict[str, str] = {"track": board.track.value} if board.track else {}
    if query.verified:
        api_query["verified"] = "true"
    if query.self_reported:
        api_query["self_reported"] = "true"
    if query.coverage != DEFAULT_COVERAGE:
        api_query["coverage"] = query.coverage
    notes = []
    if not any(c.has_baseline for c in board.tasks) and board.tasks:
        notes.append("No task has a baseline yet, so no entry has an ELUE score.")
    return HomeView(
        query=query,
        tabs=tabs,
        families=[FamilyHeader(g.title, len(g.tasks)) for g in board.families],
        columns=columns,
        fixed=fixed,
        rows=_home_rows(board, entries[window]),
        pager=pager,
        cards=_cards(session, board),
        ranked_by=(
            f"Models with at most {board.track_limit:,} parameters, ranked by average performance "
            "(then fewer parameters)"
            if track and board.track_limit
            else "Ranked by overall ELUE score, higher first"
        )
        + (
            (
                ", among the entries with a point on every task"
                if track
                else ", among the entries that cover every task with a baseline"
            )
            if query.coverage == "all"
            else ", every entry (coverage shown alongside)"
        ),
        coverage_links=_coverage_links(query, track),
        average_label=average_label,
        listed=len(board.entries),
        json_url="/api/v1/leaderboard" + ("?" + urlencode(api_query) if api_query else ""),
        csv_url="/api/v1/leaderboard?" + urlencode({**api_query, "format": "csv"}),
        reset_url=HomeQuery(
            track=query.track,
            verified=query.verified,
            self_reported=query.self_reported,
            coverage=query.coverage,
        ).url(),
        verified_only=query.verified,
        verified_url=query.url(verified=not query.verified, page=1),
        self_reported_url=query.url(self_reported=not query.self_reported, page=1),
        match_text=(
            f"{len(entries):,} of {len(board.entries):,} entries match."
            if len(entries) != len(board.entries)
            else f"{len(entries):,} entries."
        ),
        min_text=_bound_text(query.min_params) or "",
        max_text=_bound_text(query.max_params) or "",
        notes=notes,
    )


def _coverage_links(query: HomeQuery, track: bool) -> list[TrackTab]:
    every = "a point on every task" if track else "a score on every task with a baseline"
    return [
        TrackTab(
            "All tasks",
            query.url(coverage="all", page=1),
            query.coverage == "all",
            f"Only entries with {every}: leaving out a weak task cannot raise a rank (default)",
        ),
        TrackTab(
            "Any tasks",
            query.url(coverage="any", page=1),
            query.coverage == "any",
            "Every entry, ranked by the same score over the tasks it covers",
        ),
    ]


# --- a task page ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskRow:
    rank: int
    name: str
    url: str
    badges: list[Badge]
    score: str
    points: int
    best: str
    params: str
    params_title: str
    out_of_range: bool
    paper_url: str | None
    code_url: str | None
    submission_id: int = 0
    meta: EntryMeta | None = None
    score_ci: str = ""  # 95% interval of the score ("—": not computed)
    best_ci: str = ""  # 95% interval of the best point's performance
    curve: CurveText | None = None  # area between curves and hypervolume, with the window


@dataclass(frozen=True, slots=True)
class FrontRow:
    name: str
    url: str
    point: str
    flops: str
    flops_title: str
    params: str
    performance: str
    performance_ci: str = ""


@dataclass(frozen=True, slots=True)
class SplitLink:
    split: str
    url: str
    filename: str
    text: str  # "1,821 examples, inputs only (gold labels stay on the server)"


@dataclass
class TaskView:
    name: str
    display_name: str
    family: str
    metric: str
    description: str
    test_size: str
    labels: str
    text_columns: str
    inputs_url: str
    json_url: str
    csv_url: str
    plot_json_url: str
    baseline_name: str | None
    baseline_url: str | None
    baseline_range: str | None
    baseline_label: str | None
    baseline_min: str | None  # the cheapest baseline point: "84.1 at 1.06 GFLOPs"
    baseline_max: str | None
    note: str | None
    measured: list[TaskRow]
    measured_pager: Pager
    papers: list[TaskRow]
    papers_pager: Pager
    front: list[FrontRow]
    front_total: int
    plot_data: str  # compact JSON, already safe to embed in a <script type="application/json">
    plot_shown: int
    plot_total: int
    points_total: int
    verified_only: bool = False
    verified_url: str = ""
    splits: list[SplitLink] = field(default_factory=list)  # every imported split, to download


def _task_rows(board: TaskLeaderboard, entries: Sequence[TaskSubmissionEntry]) -> list[TaskRow]:
    """The page's rows, each formatted once per board (at most `_ROWS_KEPT` kept)."""
    made: dict[int, TaskRow] = _derived.get(board, ("task-rows", board.task.name), lambda _: {})
    if len(made) > _ROWS_KEPT:
        made.clear()
    rows = []
    for entry in entries:
        row = made.get(entry.submission_id)
        if row is None:
            label = board.baseline.label if board.baseline else None
            row = made[entry.submission_id] = _task_row(entry, _best_interval(board, entry), label)
        rows.append(row)
    return rows


def _best_interval(board: TaskLeaderboard, entry: TaskSubmissionEntry) -> str:
    best = [
        p
        for p in board.points
        if p.submission_id == entry.submission_id and p.performance == entry.best_performance
    ]
    return fmt.interval(best[0].ci_low, best[0].ci_high) if best else fmt.DASH


def _task_row(
    entry: TaskSubmissionEntry, best_ci: str = "", baseline_label: str | None = None
) -> TaskRow:
    return TaskRow(
        rank=entry.rank,
        name=entry.name,
        url=page_url(entry.submission_id),
        badges=badges(
            is_baseline=entry.is_baseline,
            self_reported=entry.kind == SubmissionKind.SELF_REPORTED.value,
            verified=entry.verified,
            incomplete=entry.incomplete_points,
            baseline_label=baseline_label if entry.is_baseline else None,
        ),
        score=fmt.signed(entry.score),
        points=entry.points,
        best=fmt.perf(entry.best_performance),
        params=fmt.params(entry.params),
        params_title=f"{fmt.exact(entry.params)} parameters" if entry.params else "unknown",
        out_of_range=entry.out_of_range,
        paper_url=entry.paper_url,
        code_url=entry.code_url,
        submission_id=entry.submission_id,
        meta=entry_meta(entry.owner, entry.affiliation, entry.submitted_at),
        score_ci=""
        if entry.score is None
        else fmt.interval(entry.score_ci_low, entry.score_ci_high, signed_values=True),
        best_ci=best_ci,
        curve=curve_text(entry.curve),
    )


def _reranked(entries: list[TaskSubmissionEntry]) -> list[TaskSubmissionEntry]:
    """Ranks 1, 2, ... within one table (the board ranks measured and paper entries together,
    so a table of one kind would otherwise start at 2 under a paper entry); equal board ranks
    stay equal ("1, 2, 2, 4")."""
    out: list[TaskSubmissionEntry] = []
    for index, entry in enumerate(entries):
        tied = bool(out) and entries[index - 1].rank == entry.rank
        out.append(replace(entry, rank=out[-1].rank if tied else index + 1))
    return out


def _task_parts(
    board: TaskLeaderboard,
) -> tuple[list[TaskSubmissionEntry], list[TaskSubmissionEntry], list[PointEntry]]:
    """Measured entries, paper entries, and the FLOPs front's points (cheapest first)."""
    self_reported = SubmissionKind.SELF_REPORTED.value
    measured = _reranked([s for s in board.submissions if s.kind != self_reported])
    papers = _reranked([s for s in board.submissions if s.kind == self_reported])
    on_front = set(board.flops_front)
    by_id = {p.result_id: p for p in board.points if p.result_id in on_front}
    return measured, papers, [by_id[r] for r in board.flops_front if r in by_id]


def task_view(
    session: Session, task: Task, *, page: int = 1, papers_page: int = 1, verified: bool = False
) -> TaskView:
    board = task_leaderboard(session, task.name, verified_only=verified)
    manifest = task_service.manifest_of(task)
    base = f"/tasks/{task.name}"
    measured, papers, front_points = _derived.get(board, ("task", task.name), _task_parts)

    def url(measured_page: int, paper_page: int, only: bool = verified) -> str:
        query: dict[str, Any] = {
            k: v for k, v in (("page", measured_page), ("papers_page", paper_page)) if v > 1
        }
        if only:
            query["verified"] = 1
        return base + ("?" + urlencode(query) if query else "")

    api = "?verified=true" if verified else ""

    m_pager, m_window = _pager(len(measured), page, lambda p: url(p, papers_page) + "#measured")
    p_pager, p_window = _pager(len(papers), papers_page, lambda p: url(page, p) + "#papers")
    baseline = board.baseline
    plot = task_plot_json(session, task.name, everything=False, verified=verified)
    return TaskView(
        verified_only=verified,
        verified_url=url(1, 1, not verified),
        name=task.name,
        display_name=task.display_name,
        family=_family_title(task.family),
        metric=fmt.metric_text(task.metric),
        description=task.description or manifest.description,
        test_size=fmt.exact(task.test_size),
        labels=", ".join(manifest.labels) if manifest.labels else "a real number",
        text_columns=", ".join(manifest.text_columns),
        inputs_url=f"/api/v1/tasks/{task.name}/inputs",
        json_url=f"/api/v1/tasks/{task.name}/leaderboard{api}",
        csv_url=f"/api/v1/tasks/{task.name}/leaderboard?format=csv"
        + ("&verified=true" if verified else ""),
        plot_json_url=f"{base}/plot.json?all=1" + ("&verified=1" if verified else ""),
        baseline_name=baseline.submission_name if baseline else None,
        baseline_url=page_url(baseline.submission_id) if baseline else None,
        baseline_range=(
            f"{fmt.flops(baseline.min_flops)} to {fmt.flops(baseline.max_flops)}"
            if baseline
            else None
        ),
        baseline_label=baseline.label if baseline else None,
        baseline_min=(
            f"{fmt.perf(baseline.points[0].performance)} at {fmt.flops(baseline.min_flops)}"
            if baseline
            else None
        ),
        baseline_max=(
            f"{fmt.perf(baseline.points[-1].performance)} at {fmt.flops(baseline.max_flops)}"
            if baseline
            else None
        ),
        note=board.note,
        measured=_task_rows(board, measured[m_window]),
        measured_pager=m_pager,
        papers=_task_rows(board, papers[p_window]),
        papers_pager=p_pager,
        front=[
            FrontRow(
                name=p.submission_name,
                url=page_url(p.submission_id),
                point=p.point or fmt.DASH,
                flops=fmt.flops(p.flops_mean),
                flops_title=f"{fmt.exact(p.flops_mean)} FLOPs per sample",
                params=fmt.params(p.params),
                performance=fmt.perf(p.performance),
                performance_ci=fmt.interval(p.ci_low, p.ci_high),
            )
            for p in front_points[:PER_PAGE]
        ],
        front_total=len(front_points),
        plot_data=plot.body,
        plot_shown=plot.shown,
        plot_total=plot.total,
        points_total=len(board.points),
        splits=[
            SplitLink(
                split=sp.split,
                url=f"/api/v1/tasks/{task.name}/data/{sp.split}",
                filename=f"{task.name}.{sp.split}.tsv",
                text=f"{fmt.exact(sp.size)} examples, "
                + (
                    "inputs only (gold labels stay on the server)"
                    if sp.split == "test"
                    else "with labels"
                    if sp.labelled
                    else "inputs (imported without labels)"
                ),
            )
            for sp in task_service.imported_splits(session, task)
        ],
    )


# --- the task plots' data ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlotData:
    body: str  # compact JSON, with <, > and & escaped (safe inside a <script> element)
    shown: int  # submissions drawn one curve each
    total: int  # submissions on the task board
    encoded: Body  # `body` as sent by plot.json: bytes made once, a gzip copy when large


def _round(value: float, digits: int = 5) -> float:
    return float(f"{value:.{digits}g}")


_POSITION = {"below": "b", "within": "w", "above": "a"}


def _plot(board: TaskLeaderboard, everything: bool) -> PlotData:
    """The plots' data: the Pareto fronts, the baseline, and the top entries (or everyone).

    Format (arrays keep it small; `plot_body` writes it): `subs` rows are [id, name, kind
    ("m"|"s"), params, score, is_baseline, colour]; `points` rows are [sub index, MFLOPs,
    performance, params, position ("b"|"w"|"a"|null), on FLOPs front, on params front,
    incomplete count (a lower bound), ELUE-convention MFLOPs, fvcore disagrees, verified, point
    name], each entry's points cheapest first; `flops_front` / `params_front` are point indices
    in cost order; `highlight` is how many of the `subs` (the first ones) are drawn one curve
    each, the rest as one grey trace (`others` false: not drawn, only the front uses them).
    """
    front_subs = {p.submission_id for p in board.points if p.on_flops_front or p.on_params_front}
    chosen: list[TaskSubmissionEntry] = []
    rest: list[TaskSubmissionEntry] = []
    for rank_index, entry in enumerate(board.submissions):
        keep = rank_index < PLOT_TOP or entry.is_baseline or entry.submission_id in front_subs
        (chosen if keep else rest).append(entry)
    subs = chosen + (rest if everything else [])
    text = plot_body(board, subs, highlight=len(chosen), everything=everything)
    return PlotData(
        text,
        len(chosen) if not everything else len(subs),
        len(board.submissions),
        Body.of(text.encode()),
    )


def plot_body(
    board: TaskLeaderboard,
    subs: Sequence[TaskSubmissionEntry],
    *,
    highlight: int,
    everything: bool = False,
    others: bool = True,
    extra: Sequence[tuple[TaskSubmissionEntry, Sequence[PointEntry]]] = (),
) -> str:
    """The plots' compact JSON (see `_plot`) for `subs` of `board` (the first `highlight` drawn
    one curve each) and the board's baseline and fronts; `extra`: entries not on the board (a
    private or unfinished submission on its own page), drawn one curve each after `subs`'s
    highlighted ones. Safe to embed in a <script type="application/json">."""
    extra_ids = {entry.submission_id for entry, _ in extra}
    drawn = [s for s in subs[:highlight] if s.submission_id not in extra_ids]
    drawn += [e for e, _ in extra]
    ordered = drawn + [s for s in subs[highlight:] if s.submission_id not in extra_ids]
    index = {s.submission_id: i for i, s in enumerate(ordered)}
    points: list[list[Any]] = []
    point_index: dict[int, int] = {}
    own_points = [(p, index[p.submission_id]) for e, ps in extra for p in ps]
    board_points = [
        (p, index[p.submission_id])
        for p in board.points
        if p.submission_id in index and p.submission_id not in extra_ids
    ]
    for p, si in [*board_points, *own_points]:
        point_index[p.result_id] = len(points)
        points.append(
            [
                si,
                _round(p.flops_mean / 1e6),
                round(p.performance, 3),
                p.params,
                _POSITION.get(p.position) if p.position else None,
                int(p.on_flops_front),
                int(p.on_params_front),
                int(p.cost_incomplete),
                _round(p.flops_elue_mean / 1e6) if p.flops_elue_mean else None,
                int(p.cost_disagrees),
                int(p.verified),
                p.point,
            ]
        )
    baseline = board.baseline
    body = {
        "task": board.task.name,
        "all": everything,
        "others": others,
        "total": len(board.submissions),
        "highlight": len(drawn),
        "subs": [
            [
                s.submission_id,
                s.name,
                "s" if s.kind == SubmissionKind.SELF_REPORTED.value else "m",
                s.params,
                None if s.score is None else round(s.score, 3),
                int(s.is_baseline),
                colour_of(s.submission_id, is_baseline=s.is_baseline),
            ]
            for s in ordered
        ],
        "points": points,
        "baseline": (
            {
                "name": baseline.submission_name,
                "id": baseline.submission_id,
                "label": baseline.label,
                "points": [
                    [_round(b.flops / 1e6), round(b.performance, 3)] for b in baseline.points
                ],
            }
            if baseline
            else None
        ),
        "flops_front": [point_index[r] for r in board.flops_front if r in point_index],
        "params_front": [point_index[r] for r in board.params_front if r in point_index],
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # Inside <script type="application/json">: no "</script>" or "<!--" can appear.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def task_plot_json(
    session: Session, task_name: str, *, everything: bool, verified: bool = False
) -> PlotData:
    """The task plots' compact JSON (cached until a result, submission or task changes)."""
    name = task_leaderboard(session, task_name).task.name
    key = ("page:task-plot", name, everything, verified)
    return cache.get(
        session,
        key,
        lambda s: _plot(task_leaderboard(s, name, verified_only=verified), everything),
    )
