"""Shared bits of the board pages: badges, entry metadata, the pager, parameter bounds."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from core.leaderboard.paging import Derived
from web.views import format as fmt

T = TypeVar("T")
PER_PAGE = 100
PLOT_TOP = 15  # submissions drawn one curve each by default, besides front members and baseline
Direction = Literal["asc", "desc"]


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
