"""Bootstrap intervals, paired differences, curve summaries and exit-layer diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from core.metrics import compute_metrics
from core.ranking.curves import area_between, curve_summary, hypervolume
from core.ranking.score import CurvePoint
from core.tasks.manifest import Family, LabelKind, Metric, TaskManifest
from core.uncertainty import (
    bootstrap_points,
    combine_tasks,
    exit_diagnostics,
    metric_statistic,
    paired_bootstrap,
    task_rng,
)

ACC = TaskManifest(
    name="T",
    display_name="T",
    family=Family.NLI,
    metric=Metric.ACCURACY,
    label_kind=LabelKind.CLASSIFICATION,
    labels=("0", "1", "2"),
    text_columns=("a", "b"),
)
F1 = TaskManifest(
    name="M",
    display_name="M",
    family=Family.SIMILARITY,
    metric=Metric.ACCURACY_F1,
    label_kind=LabelKind.CLASSIFICATION,
    labels=("0", "1"),
    positive_label="1",
    text_columns=("a", "b"),
)
REG = TaskManifest(
    name="S",
    display_name="S",
    family=Family.SIMILARITY,
    metric=Metric.PEARSON_SPEARMAN,
    label_kind=LabelKind.REGRESSION,
    text_columns=("a", "b"),
)


def _data(manifest: TaskManifest, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if manifest.label_kind is LabelKind.REGRESSION:
        gold = np.round(rng.uniform(0, 5, n), 1)
        return gold, np.round(gold + rng.normal(0, 1.2, n), 2)
    k = len(manifest.labels)
    gold = rng.integers(0, k, n)
    return gold, np.where(rng.random(n) < 0.8, gold, rng.integers(0, k, n))


@pytest.mark.parametrize("manifest", [ACC, F1, REG], ids=["accuracy", "accuracy_f1", "corr"])
def test_statistic_equals_the_metric_and_interval_equals_scipy(manifest: TaskManifest) -> None:
    gold, pred = _data(manifest, 300, seed=1)
    metric = metric_statistic(manifest)
    assert float(metric(gold, pred)) == pytest.approx(
        compute_metrics(manifest, gold, pred).performance, abs=1e-9
    )
    result = bootstrap_points(manifest, gold, [pred], n_resamples=200, rng=task_rng(7, "T"))
    assert result is not None

    # scipy's bootstrap called directly, on the metric of core.metrics (one resample at a time).
    def reference(g: np.ndarray, p: np.ndarray) -> float:
        return compute_metrics(manifest, g, p).performance

    expected = stats.bootstrap(
        (gold, pred),
        reference,
        paired=True,
        vectorized=False,
        n_resamples=200,
        method="percentile",
        rng=task_rng(7, "T"),
    ).confidence_interval
    assert result.points[0].low == pytest.approx(expected.low, abs=1e-9)
    assert result.points[0].high == pytest.approx(expected.high, abs=1e-9)
    assert result.points[0].low < float(metric(gold, pred)) < result.points[0].high


def test_perfect_predictor_has_a_degenerate_interval() -> None:
    gold, _ = _data(ACC, 200, seed=2)
    result = bootstrap_points(ACC, gold, [gold.copy()], n_resamples=200, rng=task_rng(1, "T"))
    assert result is not None
    assert (result.points[0].low, result.points[0].high) == (100.0, 100.0)
    assert (result.mean.low, result.mean.high) == (100.0, 100.0)


def test_seeded_runs_are_identical_and_seeds_matter() -> None:
    gold, pred = _data(F1, 250, seed=3)
    a = bootstrap_points(F1, gold, [pred], n_resamples=300, rng=task_rng(5, "M"))
    b = bootstrap_points(F1, gold, [pred], n_resamples=300, rng=task_rng(5, "M"))
    c = bootstrap_points(F1, gold, [pred], n_resamples=300, rng=task_rng(6, "M"))
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.points == b.points
    assert np.array_equal(a.replicates, b.replicates)
    assert not np.array_equal(a.replicates, c.replicates)


def test_joint_task_interval_resamples_the_points_together() -> None:
    gold, pred = _data(ACC, 400, seed=4)
    rng = np.random.default_rng(9)
    other = np.where(rng.random(400) < 0.9, pred, gold)
    joint = bootstrap_points(ACC, gold, [pred, other], n_resamples=500, rng=task_rng(3, "T"))
    assert joint is not None
    metric = metric_statistic(ACC)

    def mean_of_both(g: np.ndarray, p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
        return (metric(g, p) + metric(g, q)) / 2

    expected = stats.bootstrap(
        (gold, pred, other),
        mean_of_both,
        paired=True,
        n_resamples=500,
        method="percentile",
        rng=task_rng(3, "T"),
    ).confidence_interval
    assert (joint.mean.low, joint.mean.high) == pytest.approx((expected.low, expected.high))
    assert joint.replicates.shape == (500,)
    # Each point's interval comes from the same resamples as the joint one.
    alone = bootstrap_points(ACC, gold, [pred], n_resamples=500, rng=task_rng(3, "T"))
    assert alone is not None
    assert alone.points[0] == joint.points[0]


def test_overall_interval_combines_independent_tasks() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([10.0, 10.0, 10.0, 10.0])
    interval = combine_tasks([a, b], [0.0, -10.0])  # means 0.5, 1.0, 1.5, 2.0
    lo, hi = np.percentile([0.5, 1.0, 1.5, 2.0], [2.5, 97.5])
    assert (interval.low, interval.high) == pytest.approx((lo, hi))


def test_paired_bootstrap_marks_noise() -> None:
    gold, pred = _data(ACC, 1000, seed=5)
    nearly = pred.copy()
    nearly[:3] = (nearly[:3] + 1) % 3  # three samples differ
    clearly = np.where(np.arange(1000) < 300, gold, pred)  # 300 more forced correct
    close_mean, (close,) = paired_bootstrap(
        ACC, gold, [nearly], [pred], [(0, 0)], n_resamples=500, rng=task_rng(1, "T")
    )
    assert close.within_noise
    assert close_mean.within_noise
    far_mean, (far,) = paired_bootstrap(
        ACC, gold, [clearly], [pred], [(0, 0)], n_resamples=500, rng=task_rng(1, "T")
    )
    assert not far.within_noise
    assert far.interval.low > 0
    assert far.difference == pytest.approx(
        compute_metrics(ACC, gold, clearly).performance
        - compute_metrics(ACC, gold, pred).performance
    )
    assert far_mean.difference == pytest.approx(far.difference)


# --- curves -------------------------------------------------------------------------------------


def _pts(*pairs: tuple[float, float]) -> list[CurvePoint]:
    return [CurvePoint(flops=f, performance=p) for f, p in pairs]


def test_area_shows_a_win_at_low_cost_and_a_loss_at_high_cost() -> None:
    baseline = _pts((10.0, 80.0), (1000.0, 80.0))  # flat 80 over two decades
    # Entry: 84 at 10 FLOPs down to 76 at 1000: +4 to -4, crossing at 100 (log10 = 2).
    entry = _pts((10.0, 84.0), (1000.0, 76.0))
    area = area_between(entry, baseline)
    assert area is not None
    assert (area.window_low, area.window_high) == pytest.approx((10.0, 1000.0))
    # Triangles: 0.5 * 1 decade * 4 points on each side, over a 2-decade window.
    assert area.gain == pytest.approx(1.0)
    assert area.loss == pytest.approx(1.0)
    assert area.net == pytest.approx(0.0)


def test_area_window_is_the_overlap_and_none_without_one() -> None:
    baseline = _pts((100.0, 80.0), (10000.0, 90.0))
    entry = _pts((10.0, 90.0), (1000.0, 90.0))
    area = area_between(entry, baseline)
    assert area is not None
    assert (area.window_low, area.window_high) == pytest.approx((100.0, 1000.0))
    # Over [2, 3] in log10: baseline 80 -> 85 (linear in log FLOPs), entry 90: mean gap 7.5.
    assert area.gain == pytest.approx(7.5)
    assert area.loss == 0.0
    assert area_between(_pts((20000.0, 95.0)), baseline) is None


def test_hypervolume_against_the_reference_point() -> None:
    ref = CurvePoint(flops=1000.0, performance=80.0)
    # Two front points at log10 1 and 2 (perf 82, 85) and a dominated one; ref at log10 3.
    points = _pts((10.0, 82.0), (100.0, 85.0), (500.0, 84.0), (5000.0, 99.0))
    assert hypervolume(points, ref) == pytest.approx(1 * 2 + 1 * 5)
    summary = curve_summary(points, _pts((100.0, 80.0), (1000.0, 88.0)))
    assert (summary.reference_flops, summary.reference_performance) == (1000.0, 80.0)
    assert summary.hypervolume == pytest.approx(7.0)
    assert hypervolume(_pts((2000.0, 99.0)), ref) == 0.0


# --- diagnostics --------------------------------------------------------------------------------


def test_exit_diagnostics_per_layer() -> None:
    gold = np.array([0, 1, 1, 0, 1, 0])
    pred = np.array([0, 1, 0, 0, 0, 0])
    layers = np.array([1, 1, 3, 3, 3, 12])
    d = exit_diagnostics(F1, gold, pred, layers)
    assert d["layers"] == [1, 3, 12]
    assert d["counts"] == [2, 3, 1]
    assert d["measure"] == "accuracy"
    assert d["values"] == pytest.approx([100.0, 100 / 3, 100.0])
    reg = exit_diagnostics(
        REG, np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 1.0]), np.array([2, 2, 4])
    )
    assert reg["measure"] == "mean_absolute_error"
    assert reg["values"] == pytest.approx([0.25, 2.0])
    assert math.isfinite(sum(reg["values"]))
