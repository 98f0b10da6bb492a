"""How sure a performance number is: seeded bootstrap intervals over the test samples.

Every interval here is a 95% percentile bootstrap from `scipy.stats.bootstrap`, resampling the
test samples with replacement and keeping each sample's gold and predictions together
(`paired=True`). The statistic is the task metric itself (`metric_statistic`), vectorised over
resamples, and equals `core.metrics.compute_metrics` on the original data.

- `bootstrap_points`: the points of one submission on one task share the test samples, so they
  are resampled jointly: one resampling gives every point's interval and the interval (and the
  bootstrap distribution) of their mean performance, from which the task ELUE score's interval
  follows (the baseline is a fixed reference: the score is that mean minus a constant).
- `combine_tasks`: the overall score is a mean of task scores whose tasks have independent test
  sets; their distributions come from independently seeded resamplings (`task_rng`), so the
  j-th replicates of the tasks are independent draws and their mean is a replicate of the
  overall score (percentile interval of those).
- `paired_bootstrap`: two entries on the same task, resampled jointly: the interval of their
  difference; a difference whose interval contains 0 is within the noise of the test set.
- `exit_diagnostics`: per exit layer of an early-exit point, how many samples left there and the
  metric on them (aggregates only; never per-sample correctness).

See docs/ranking.md ("Uncertainty") for the method, the seed and the number of resamples.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from core.tasks.manifest import LabelKind, Metric, TaskManifest

CONFIDENCE = 0.95
METHOD = "percentile"
# Memory per batch of resamples: about this many array elements per resampled array.
_BATCH_ELEMENTS = 2_000_000

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval (x100 like the performance it belongs to)."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def shifted(self, by: float) -> Interval:
        return Interval(self.low + by, self.high + by)


@dataclass(frozen=True, slots=True)
class PointsBootstrap:
    """One joint resampling of a submission's points on a task."""

    points: tuple[Interval, ...]  # per point, in the order given
    mean: Interval  # of the points' mean performance
    replicates: npt.NDArray[np.float64]  # bootstrap distribution of the mean (n_resamples,)


@dataclass(frozen=True, slots=True)
class Difference:
    """`a - b` of two performances measured on the same samples, with its interval."""

    difference: float
    interval: Interval

    @property
    def within_noise(self) -> bool:
        """True when the interval contains 0: the test set cannot tell the two apart."""
        return self.interval.contains(0.0)


# --- the metric, vectorised over resamples ------------------------------------------------------


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return np.asarray(np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0))


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis; 0 where either side is constant (as
    `compute_metrics` defines it)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    num = np.sum(xc * yc, axis=-1)
    den = np.sqrt(np.sum(xc * xc, axis=-1) * np.sum(yc * yc, axis=-1))
    constant = (np.ptp(x, axis=-1) == 0) | (np.ptp(y, axis=-1) == 0)
    r = _safe_ratio(num, den)
    return np.asarray(np.where(constant, 0.0, np.clip(r, -1.0, 1.0)))


def metric_statistic(manifest: TaskManifest) -> Statistic:
    """The task's headline metric (x100) as a function of (gold, pred) arrays whose last axis
    is the samples; leading axes are resamples."""
    many = metric_many(manifest)

    def one(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
        return np.asarray(many(gold, [pred])[0])

    return one


ManyStatistic = Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]


def metric_many(manifest: TaskManifest) -> ManyStatistic:
    """The task metric of several prediction arrays against one gold array, stacked on a new
    first axis; what depends on the gold alone (its ranks for Spearman) is computed once."""
    if manifest.label_kind is LabelKind.REGRESSION:

        def correlation(gold: np.ndarray, preds: Sequence[np.ndarray]) -> np.ndarray:
            g = np.asarray(gold, dtype=np.float64)
            g_ranks = stats.rankdata(g, axis=-1).astype(np.float64)
            out = []
            for pred in preds:
                p = np.asarray(pred, dtype=np.float64)
                p_ranks = stats.rankdata(p, axis=-1).astype(np.float64)
                out.append(50.0 * (_pearson(g, p) + _pearson(g_ranks, p_ranks)))
            return np.stack(out)

        return correlation
    if manifest.metric is Metric.ACCURACY_F1:
        assert manifest.positive_label is not None
        positive = manifest.labels.index(manifest.positive_label)

        def accuracy_f1(gold: np.ndarray, preds: Sequence[np.ndarray]) -> np.ndarray:
            gp = gold == positive
            out = []
            for pred in preds:
                accuracy = np.mean(gold == pred, axis=-1)
                pp = pred == positive
                tp = np.sum(gp & pp, axis=-1)
                fp = np.sum(~gp & pp, axis=-1)
                fn = np.sum(gp & ~pp, axis=-1)
                f1 = _safe_ratio(2.0 * tp, (2.0 * tp + fp + fn).astype(np.float64))
                out.append(50.0 * (accuracy + f1))
            return np.stack(out)

        return accuracy_f1

    def accuracy(gold: np.ndarray, preds: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([100.0 * np.mean(gold == pred, axis=-1) for pred in preds])

    return accuracy


# --- bootstrap ----------------------------------------------------------------------------------


def task_rng(seed: int, task: str) -> np.random.Generator:
    """The generator for one task's resampling: seeded by the installation's seed and the task
    name, so tasks are resampled independently and every run draws the same resamples."""
    return np.random.default_rng([seed, zlib.crc32(task.encode())])


def _batch(n: int, arrays: int, n_resamples: int) -> int:
    return max(1, min(n_resamples, _BATCH_ELEMENTS // max(1, n * arrays)))


def _check(gold: np.ndarray, preds: Sequence[np.ndarray]) -> int:
    if not preds:
        raise ValueError("a bootstrap needs at least one prediction array")
    n = int(np.asarray(gold).shape[0])
    for pred in preds:
        if np.asarray(pred).shape != (n,):
            raise ValueError(f"every prediction array must hold {n} samples, as the gold does")
    return n


def bootstrap_points(
    manifest: TaskManifest,
    gold: np.ndarray,
    preds: Sequence[np.ndarray],
    *,
    n_resamples: int,
    rng: np.random.Generator,
) -> PointsBootstrap | None:
    """Intervals of each point's performance and of their mean, from one joint resampling of
    the samples; None with fewer than two samples (nothing to resample)."""
    n = _check(gold, preds)
    if n < 2:
        return None
    metric = metric_many(manifest)

    def statistic(g: np.ndarray, *ps: np.ndarray, axis: int = -1) -> np.ndarray:
        per_point = metric(g, ps)
        return np.concatenate([per_point, per_point.mean(axis=0, keepdims=True)])

    res = stats.bootstrap(
        (gold, *preds),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        batch=_batch(n, len(preds) + 1, n_resamples),
        confidence_level=CONFIDENCE,
        method=METHOD,
        rng=rng,
    )
    low = np.atleast_1d(res.confidence_interval.low)
    high = np.atleast_1d(res.confidence_interval.high)
    intervals = tuple(Interval(float(lo), float(hi)) for lo, hi in zip(low, high, strict=True))
    distribution = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    return PointsBootstrap(
        points=intervals[:-1], mean=intervals[-1], replicates=distribution[-1].copy()
    )


def combine_tasks(replicates: Sequence[np.ndarray], offsets: Sequence[float]) -> Interval:
    """Interval of the mean over tasks of (replicate + offset), the tasks resampled
    independently (`task_rng`): percentile interval of the per-replicate means."""
    if not replicates or len(replicates) != len(offsets):
        raise ValueError("one replicate array and one offset per task are needed")
    k = min(len(r) for r in replicates)
    if k == 0:
        raise ValueError("empty bootstrap distribution")
    overall = np.mean(
        [np.asarray(r[:k], dtype=np.float64) + o for r, o in zip(replicates, offsets, strict=True)],
        axis=0,
    )
    alpha = (1.0 - CONFIDENCE) / 2
    low, high = np.percentile(overall, [100 * alpha, 100 * (1 - alpha)])
    return Interval(float(low), float(high))


def paired_bootstrap(
    manifest: TaskManifest,
    gold: np.ndarray,
    a_preds: Sequence[np.ndarray],
    b_preds: Sequence[np.ndarray],
    pairs: Sequence[tuple[int, int]],
    *,
    n_resamples: int,
    rng: np.random.Generator,
) -> tuple[Difference, list[Difference]]:
    """Two entries' predictions on the same samples, resampled jointly.

    First: mean metric over `a_preds` minus mean metric over `b_preds` (the two entries' ELUE
    task scores differ by this plus fixed baseline terms). Then, per (i, j) in `pairs`:
    metric(a_preds[i]) - metric(b_preds[j]).
    """
    if not a_preds or not b_preds:
        raise ValueError("a paired bootstrap needs predictions of both entries")
    n = _check(gold, [*a_preds, *b_preds])
    if n < 2:
        raise ValueError("a paired bootstrap needs at least two samples")
    metric = metric_many(manifest)
    k = len(a_preds)

    def statistic(g: np.ndarray, *ps: np.ndarray, axis: int = -1) -> np.ndarray:
        values = metric(g, ps)
        a, b = values[:k], values[k:]
        rows = [a.mean(axis=0) - b.mean(axis=0)]
        rows.extend(a[i] - b[j] for i, j in pairs)
        return np.stack(rows)

    data = (np.asarray(gold), *a_preds, *b_preds)
    res = stats.bootstrap(
        data,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        batch=_batch(n, len(data), n_resamples),
        confidence_level=CONFIDENCE,
        method=METHOD,
        rng=rng,
    )
    observed = statistic(*data)
    low = np.atleast_1d(res.confidence_interval.low)
    high = np.atleast_1d(res.confidence_interval.high)
    diffs = [
        Difference(float(d), Interval(float(lo), float(hi)))
        for d, lo, hi in zip(observed, low, high, strict=True)
    ]
    return diffs[0], diffs[1:]


# --- early-exit diagnostics ---------------------------------------------------------------------


def exit_diagnostics(
    manifest: TaskManifest, gold: np.ndarray, pred: np.ndarray, exit_layers: np.ndarray
) -> dict[str, Any]:
    """Per exit layer (1-based, ascending): how many samples exited there and how well they
    were predicted: accuracy (x100) for classification, mean absolute error for regression (a
    correlation over a handful of samples at one layer means little)."""
    layers = np.asarray(exit_layers, dtype=np.int64)
    g, p = np.asarray(gold), np.asarray(pred)
    if not (layers.shape == g.shape == p.shape):
        raise ValueError("gold, predictions and exit layers must have one entry per sample")
    found, inverse, counts = np.unique(layers, return_inverse=True, return_counts=True)
    if manifest.label_kind is LabelKind.REGRESSION:
        per_sample = np.abs(g.astype(np.float64) - p.astype(np.float64))
        measure = "mean_absolute_error"
    else:
        per_sample = 100.0 * (g == p).astype(np.float64)
        measure = "accuracy"
    sums = np.bincount(inverse, weights=per_sample, minlength=found.size)
    return {
        "measure": measure,
        "layers": [int(k) for k in found],
        "counts": [int(c) for c in counts],
        "values": [float(v) for v in sums / counts],
    }
