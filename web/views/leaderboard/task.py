"""What a task page shows: its ranked entries, paper entries, fronts and splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from core.leaderboard import (
    PointEntry,
    TaskLeaderboard,
    TaskSubmissionEntry,
    task_leaderboard,
)
from core.models import SubmissionKind, Task
from core.submissions.queries import page_url
from core.tasks import service as task_service
from web.views import format as fmt
from web.views.leaderboard.common import (
    PER_PAGE,
    Badge,
    EntryMeta,
    Pager,
    _derived,
    _pager,
    badges,
    entry_meta,
)
from web.views.leaderboard.home import _ROWS_KEPT, _family_title
from web.views.leaderboard.plots import task_plot_json
from web.views.uncertainty import CurveText, curve_text


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
