"""A result's cost summary: histogram bins and sorted breakdowns of its per-sample costs.

A summary is made once and kept in a small in-process LRU keyed by the result's id and
`updated_at`, so a page view does not unpack per-sample arrays again until the result changes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.arrays import unpack_array
from core.models import (
    Result,
    ResultCost,
)
from web.views import format as fmt

BINS = 30
BREAKDOWN_ROWS = 25


@dataclass(frozen=True, slots=True)
class Bar:
    x: float  # svg coordinates (viewBox 0 0 600 160)
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Histogram:
    bars: tuple[Bar, ...]
    low: str
    high: str
    peak: int
    label: str  # the accessible description


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    name: str
    value: str  # per sample
    share: float  # percent of the largest / of the total, for the bar
    share_text: str


@dataclass(frozen=True, slots=True)
class CostSummary:
    n: str
    stats: tuple[tuple[str, str], ...]  # (label, value): min, p10, median, mean, p90, max
    histogram: Histogram | None
    per_module: tuple[BreakdownRow, ...]
    per_operator: tuple[BreakdownRow, ...]
    uncounted: tuple[BreakdownRow, ...]
    mismatches: tuple[tuple[str, str, str], ...]  # (index, declared, tokenized)
    mismatch_count: str
    checks: tuple[str, ...]  # plain sentences: cross-check, content dependence, notes
    problems: tuple[str, ...]  # things a reader should not miss (shown as warnings)


_WIDTH, _HEIGHT = 600.0, 160.0


def _histogram(values: np.ndarray) -> Histogram | None:
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if low == high:
        counts = np.array([values.size])
        edges = np.array([low, high])
    else:
        counts, edges = np.histogram(values, bins=BINS)
    peak = int(counts.max())
    slot = _WIDTH / len(counts)
    bars = []
    for i, count in enumerate(counts.tolist()):
        height = 0.0 if peak == 0 else _HEIGHT * count / peak
        lo, hi = float(edges[i]), float(edges[i + 1])
        span = fmt.flops(lo) if lo == hi else f"{fmt.flops(lo)} to {fmt.flops(hi)}"
        bars.append(
            Bar(
                x=round(i * slot + 0.5, 2),
                y=round(_HEIGHT - height, 2),
                width=round(max(slot - 1.0, 1.0), 2),
                height=round(height, 2),
                title=f"{span}: {count:,} sample{'s' if count != 1 else ''}",
            )
        )
    label = (
        f"Histogram of FLOPs per sample over {values.size:,} samples, from {fmt.flops(low)} to "
        f"{fmt.flops(high)}; the tallest bar holds {peak:,} samples."
    )
    return Histogram(tuple(bars), fmt.flops(low), fmt.flops(high), peak, label)


def _breakdown(
    values: Mapping[str, Any], unit: str, *, of_total: float | None
) -> tuple[BreakdownRow, ...]:
    items = [(str(k), float(v)) for k, v in values.items() if isinstance(v, int | float)]
    items.sort(key=lambda kv: -kv[1])
    largest = items[0][1] if items else 0.0
    whole = of_total if of_total else largest
    rows = []
    for name, value in items[:BREAKDOWN_ROWS]:
        share = fmt.percent(value, whole)
        rows.append(
            BreakdownRow(
                name=name or "(whole model)",
                value=f"{fmt.si(value)}{unit}".strip(),
                share=round(share, 1),
                share_text=f"{share:.1f}%" if of_total else "",
            )
        )
    return tuple(rows)


def summarise_cost(cost: ResultCost, flops_mean: float | None) -> CostSummary:
    """Histogram and breakdowns of one result's per-sample costs."""
    values = unpack_array(cost.flops).astype(np.float64)
    stats: tuple[tuple[str, str], ...] = ()
    if values.size:
        p10, median, p90 = np.percentile(values, [10, 50, 90]).tolist()
        stats = (
            ("min", fmt.flops(float(values.min()))),
            ("p10", fmt.flops(p10)),
            ("median", fmt.flops(median)),
            ("mean", fmt.flops(float(values.mean()))),
            ("p90", fmt.flops(p90)),
            ("max", fmt.flops(float(values.max()))),
        )
    details = dict(cost.details or {})
    total = flops_mean if flops_mean and flops_mean > 0 else None
    module_values = {k: v for k, v in (cost.per_module or {}).items() if k}  # "" is the total
    checks: list[str] = []
    problems: list[str] = []
    if details.get("counter_version"):
        checks.append(
            f"Counted by the trusted counter {details['counter_version']} (rule table "
            f"{str(details.get('rule_hash') or '')[:12]}): the graph was captured in the sandbox "
            "and every number was computed outside it."
        )
    else:
        problems.append(
            "Counted by the first counter (in the sandbox, with the model): run "
            "`paretoboard recount`."
        )
    if details.get("polynomial"):
        checks.append(f"FLOPs as a function of the length L: {details['polynomial']}.")
    elue = details.get("flops_elue_mean")
    if isinstance(elue, int | float) and total:
        checks.append(
            f"ELUE convention (products + LayerNorm): {fmt.flops(float(elue))} per sample "
            f"({fmt.percent(float(elue), total):.1f}% of the FLOPs shown)."
        )
    raw_cross = details.get("cross_check")
    cross: dict[str, Any] = raw_cross if isinstance(raw_cross, dict) else {}
    points = [p for p in cross.get("points", []) if isinstance(p, dict)]
    if details.get("cross_check_agrees") is True and points:
        checks.append("fvcore, counting the same graph, agrees within 1% (ELUE convention).")
    elif details.get("cross_check_agrees") is False and points:
        p0 = points[0]
        problems.append(
            f"fvcore, counting the same graph at {p0.get('length')} tokens, finds "
            f"{fmt.flops(float(p0.get('fvcore', 0)))} against the rules' "
            f"{fmt.flops(float(p0.get('rules', 0)))} (ELUE convention): they differ by more "
            "than 1%, and the larger number is the one published."
        )
    elif cross.get("skipped"):
        problems.append(f"No fvcore cross-check: {cross['skipped']}.")
    incomplete = [str(op) for op in details.get("incomplete") or []]
    if incomplete:
        problems.append(
            "Incomplete count: no cost rule covers "
            + ", ".join(incomplete[:10])
            + ". The FLOPs shown are a lower bound; the point is kept off the Pareto fronts "
            "and out of the ELUE score."
        )
    if details.get("recount_failed"):
        problems.append(str(details["recount_failed"]))
    if details.get("kind"):
        checks.append(f"Counted as: {details['kind']}.")
    for note in details.get("notes") or []:
        problems.append(str(note))
    mismatch_count = int(details.get("mismatch_count") or len(cost.mismatches or []))
    if mismatch_count:
        problems.append(
            f"{mismatch_count:,} sample(s) declare a length in their module path that differs "
            "from the tokenized length."
        )
    uncounted = dict(cost.uncounted or {})
    if uncounted:
        problems.append(
            f"{len(uncounted)} operator(s) have no cost rule; they are listed below with the "
            "number of elements they produce per sample."
        )
    mismatches = tuple(
        (str(m.get("index", "")), str(m.get("declared", "")), str(m.get("tokenized", "")))
        for m in (cost.mismatches or [])
        if isinstance(m, dict)
    )
    return CostSummary(
        n=f"{int(cost.n):,}",
        stats=stats,
        histogram=_histogram(values),
        per_module=_breakdown(module_values, "FLOPs", of_total=total),
        per_operator=_breakdown(dict(cost.per_operator or {}), "FLOPs", of_total=total),
        uncounted=_breakdown(uncounted, "", of_total=None),
        mismatches=mismatches,
        mismatch_count=f"{mismatch_count:,}",
        checks=tuple(checks),
        problems=tuple(problems),
    )


class _SummaryCache:
    """An LRU of cost summaries keyed by (result id, result updated_at)."""

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: OrderedDict[tuple[int, str], CostSummary] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: tuple[int, str]) -> CostSummary | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple[int, str], value: CostSummary) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


summaries = _SummaryCache()


def cost_summaries(session: Session, result_ids: Iterable[int]) -> dict[int, CostSummary]:
    """Summaries of the given counted results (cached; per-sample arrays read on a miss only)."""
    ids = list(result_ids)
    if not ids:
        return {}
    stamps = {
        rid: (str(updated), mean)
        for rid, updated, mean in session.execute(
            select(Result.id, Result.updated_at, Result.flops_mean).where(Result.id.in_(ids))
        )
    }
    out: dict[int, CostSummary] = {}
    missing = []
    for rid, (stamp, _) in stamps.items():
        cached = summaries.get((rid, stamp))
        if cached is None:
            missing.append(rid)
        else:
            out[rid] = cached
    if missing:
        for cost in session.scalars(select(ResultCost).where(ResultCost.result_id.in_(missing))):
            stamp, mean = stamps[cost.result_id]
            summary = summarise_cost(cost, mean)
            summaries.put((cost.result_id, stamp), summary)
            out[cost.result_id] = summary
    return out
