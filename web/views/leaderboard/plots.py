"""The task plots' compact JSON, cached with the leaderboards under the same board-version
rule.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.leaderboard import (
    PointEntry,
    TaskLeaderboard,
    TaskSubmissionEntry,
    cache,
    task_leaderboard,
)
from core.models import SubmissionKind
from web.bodies import Body
from web.views.colours import colour_of
from web.views.leaderboard.common import PLOT_TOP


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
