"""What the home page (overall leaderboard, tracks) shows: rows, columns, task cards.

Everything starts from the cached leaderboards of `core.leaderboard` (computed from stored
summaries, never from per-sample costs). Per request a page only filters and sorts the cached
entries and formats the rows it shows (at most `PER_PAGE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from core.leaderboard import (
    OverallEntry,
    OverallLeaderboard,
    overall_leaderboard,
)
from core.ranking.score import DEFAULT_COVERAGE
from core.ranking.tracks import Track
from core.submissions.queries import page_url
from core.tasks import service as task_service
from core.tasks.manifest import Family, family_title
from web.views import format as fmt
from web.views.leaderboard.common import (
    Badge,
    Direction,
    EntryMeta,
    Pager,
    _derived,
    _pager,
    badges,
    entry_meta,
)
from web.views.leaderboard.filters import HomeQuery, _bound_text, _filtered, _ordered


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


def _track_url(query: HomeQuery, track: Track | None) -> str:
    """A track tab's link: the same filters, its own ranking from the first page."""
    return replace(query, track=track, sort="rank", dir="asc", page=1).url()


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
            _track_url(query, None),
            board.track is None,
            "Ranked by ELUE score, higher first",
        )
    ] + [
        TrackTab(
            f"\u2264 {t.value}",
            _track_url(query, t),
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
