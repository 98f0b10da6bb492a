"""Pareto fronts: the points no other point beats on both performance and cost.

Performance is maximised, cost (FLOPs or parameters) minimised. A point is on the front unless
some other point has cost <= its cost and performance >= its performance with at least one of
the two strict; identical points therefore do not dominate each other and are all on the front.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")


def front_mask(costs: npt.ArrayLike, perfs: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Boolean mask of the points on the Pareto front, in input order; O(n log n).

    Sort by cost ascending (performance descending within a cost), then sweep: a point is
    dominated when a strictly cheaper point performs at least as well, or a point of the same
    cost performs strictly better.
    """
    c = np.asarray(costs, dtype=np.float64)
    p = np.asarray(perfs, dtype=np.float64)
    if c.ndim != 1 or p.ndim != 1 or c.shape != p.shape:
        raise ValueError(
            f"costs and perfs must be one-dimensional and of equal length, got shapes "
            f"{c.shape} and {p.shape}"
        )
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(p))):
        raise ValueError("costs and perfs must be finite numbers")
    n = c.size
    mask = np.zeros(n, dtype=np.bool_)
    if n == 0:
        return mask
    order = np.lexsort((-p, c))  # last key is primary: cost asc, then perf desc
    cs, ps = c[order], p[order]
    starts = np.empty(n, dtype=np.bool_)
    starts[0] = True
    np.not_equal(cs[1:], cs[:-1], out=starts[1:])
    group = np.cumsum(starts) - 1  # index of each point's equal-cost group
    start_idx = np.flatnonzero(starts)
    group_best = ps[start_idx]  # perf desc within a group: its first point is its best
    running_best = np.maximum.accumulate(ps)
    # Best performance among strictly cheaper points, per group (-inf for the cheapest group).
    cheaper_best = np.concatenate(([-np.inf], running_best[start_idx[1:] - 1]))
    on_front = (ps > cheaper_best[group]) & (ps >= group_best[group])
    mask[order] = on_front
    return mask


def pareto_front(
    items: Sequence[T],
    *,
    cost: Callable[[T], float],
    performance: Callable[[T], float],
) -> list[T]:
    """The items on the Pareto front, by cost ascending (equal points keep their input order)."""
    if not items:
        return []
    costs = np.fromiter((cost(i) for i in items), dtype=np.float64, count=len(items))
    perfs = np.fromiter((performance(i) for i in items), dtype=np.float64, count=len(items))
    keep = np.flatnonzero(front_mask(costs, perfs))
    # On the front, cost ascending means performance ascending; a stable sort keeps ties in order.
    keep = keep[np.argsort(costs[keep], kind="stable")]
    return [items[int(i)] for i in keep]
