"""Curve-level summaries beside the ELUE score: where a curve wins and where it loses.

The ELUE score averages point deltas, so a curve that beats the baseline at low cost and trails
it at high cost can score near 0 either way. Two numbers show the shape (docs/ranking.md):

- **Area between the curves**, on a log10-FLOPs axis over the *common window*: the
  intersection of the entry's and the baseline's FLOPs ranges. Both curves are drawn as on the
  task plots: straight segments between their points in log10 FLOPs (several points at one FLOPs
  value keep the best). The area where the entry lies above the baseline (`gain`) and below it
  (`loss`) are kept apart, each divided by the window's width in decades, so they read as an
  average number of performance points; `net = gain - loss`.
- **Hypervolume** of the entry's points: the area (log10 FLOPs x performance points) that its
  points dominate inside the box bounded by a reference point, here the baseline's costliest
  FLOPs and its lowest performance, so every entry of a task is measured against the same box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.integrate import trapezoid

from core.ranking.fronts import front_mask
from core.ranking.score import BaselineCurve, CurvePoint


@dataclass(frozen=True, slots=True)
class AreaSummary:
    """Area between an entry's curve and the baseline over the common FLOPs window."""

    window_low: float  # FLOPs
    window_high: float
    gain: float  # mean height above the baseline over the window (>= 0)
    loss: float  # mean depth below the baseline over the window (>= 0)

    @property
    def net(self) -> float:
        return self.gain - self.loss


@dataclass(frozen=True, slots=True)
class CurveSummary:
    area: AreaSummary | None  # None: the FLOPs ranges do not overlap over a positive width
    hypervolume: float
    reference_flops: float
    reference_performance: float


def _log_curve(points: Sequence[CurvePoint]) -> tuple[np.ndarray, np.ndarray]:
    curve = BaselineCurve(points).points  # de-duplicated (best at equal FLOPs), FLOPs ascending
    xs = np.log10(np.array([p.flops for p in curve], dtype=np.float64))
    ys = np.array([p.performance for p in curve], dtype=np.float64)
    return xs, ys


def area_between(
    points: Sequence[CurvePoint], baseline: Sequence[CurvePoint]
) -> AreaSummary | None:
    """Gain and loss of `points`' curve against `baseline`'s over their common log-FLOPs window;
    None when that window has no width (e.g. a one-point curve, or disjoint ranges)."""
    ex, ey = _log_curve(points)
    bx, by = _log_curve(baseline)
    low, high = max(ex[0], bx[0]), min(ex[-1], bx[-1])
    if not high > low:
        return None
    xs = np.unique(np.concatenate(([low, high], ex, bx)))
    xs = xs[(xs >= low) & (xs <= high)]
    d = np.interp(xs, ex, ey) - np.interp(xs, bx, by)
    # Where the difference changes sign inside a segment, add the crossing, so every segment
    # keeps one sign and the trapezoid rule is exact for the positive and negative parts.
    cross = np.flatnonzero(d[:-1] * d[1:] < 0)
    if cross.size:
        t = d[cross] / (d[cross] - d[cross + 1])
        xc = xs[cross] + t * (xs[cross + 1] - xs[cross])
        order = np.argsort(np.concatenate((xs, xc)), kind="stable")
        xs = np.concatenate((xs, xc))[order]
        d = np.concatenate((d, np.zeros(xc.size)))[order]
    width = high - low
    gain = float(trapezoid(np.maximum(d, 0.0), xs)) / width
    loss = float(trapezoid(np.maximum(-d, 0.0), xs)) / width
    return AreaSummary(window_low=10**low, window_high=10**high, gain=gain, loss=loss)


def hypervolume(points: Sequence[CurvePoint], reference: CurvePoint) -> float:
    """Area in (log10 FLOPs, performance) dominated by `points` (cheaper and better is better)
    and bounded by `reference`: points costlier or worse than the reference add nothing."""
    ref_x = math.log10(reference.flops)
    kept = [
        p for p in points if p.flops < reference.flops and p.performance > reference.performance
    ]
    if not kept:
        return 0.0
    xs = np.log10(np.array([p.flops for p in kept], dtype=np.float64))
    ys = np.array([p.performance for p in kept], dtype=np.float64)
    on_front = front_mask(xs, ys)
    fx, fy = xs[on_front], ys[on_front]
    order = np.lexsort((fy, fx))
    fx, fy = fx[order], fy[order]
    # Along the front (cost ascending, performance ascending), the strip from one point's cost
    # to the next one's is dominated up to that point's performance.
    widths = np.diff(np.append(fx, ref_x))
    return float(np.sum(widths * (fy - reference.performance)))


def curve_summary(points: Sequence[CurvePoint], baseline: Sequence[CurvePoint]) -> CurveSummary:
    """The area between `points`' curve and the baseline's, and the hypervolume of `points`
    against the reference (baseline's costliest FLOPs, baseline's lowest performance)."""
    if not points or not baseline:
        raise ValueError("a curve summary needs points and a baseline")
    reference = CurvePoint(
        flops=max(p.flops for p in baseline), performance=min(p.performance for p in baseline)
    )
    return CurveSummary(
        area=area_between(points, baseline),
        hypervolume=hypervolume(points, reference),
        reference_flops=reference.flops,
        reference_performance=reference.performance,
    )
