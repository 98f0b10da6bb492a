"""ELUE score, Pareto fronts and parameter-budget tracks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ranking.fronts import front_mask, pareto_front
from core.ranking.score import (
    BaselineCurve,
    CurvePoint,
    OverallScore,
    overall_score,
    overall_sort_key,
    rank_overall,
    task_score,
)
from core.ranking.tracks import Track, average_performance, rank_track, tracks_for

# ElasticBERT-base on SST-2 as published (MFLOPs, accuracy x100): exits 3, 4, 6, 12.
SST2_POINTS = [
    CurvePoint(1059, 84.1),
    CurvePoint(1412, 85.7),
    CurvePoint(2118, 87.0),
    CurvePoint(4237, 88.6),
]
SST2 = BaselineCurve(SST2_POINTS)
ELUE_TASKS = ["SST-2", "IMDb", "MRPC", "STS-B", "SNLI", "SciTail"]


# --- baseline curve and task score -------------------------------------------------------


def test_baseline_scores_exactly_zero() -> None:
    result = task_score(SST2_POINTS, SST2)
    assert result.score == 0.0
    assert [p.delta for p in result.points] == [0.0] * 4
    assert all(p.position == "within" for p in result.points)
    assert not result.out_of_range


def test_interpolated_point() -> None:
    # Halfway between (1412, 85.7) and (2118, 87.0): baseline 86.35.
    assert SST2.at(1765) == pytest.approx(86.35)
    result = task_score([CurvePoint(1765, 87.0)], SST2)
    (point,) = result.points
    assert point.baseline_performance == pytest.approx(86.35)
    assert point.delta == pytest.approx(0.65)
    assert point.position == "within"
    assert result.score == pytest.approx(0.65)


def test_task_score_is_the_mean_of_the_deltas() -> None:
    result = task_score([CurvePoint(1765, 87.0), CurvePoint(2118, 86.0)], SST2)
    assert result.score == pytest.approx((0.65 - 1.0) / 2)
    assert [p.flops for p in result.points] == [1765, 2118]  # input order kept


def test_point_cheaper_than_baseline_is_compared_with_its_cheapest_point() -> None:
    result = task_score([CurvePoint(500, 83.0)], SST2)
    (point,) = result.points
    assert point.position == "below"
    assert point.baseline_performance == 84.1
    assert point.delta == pytest.approx(-1.1)
    assert result.out_of_range


def test_point_costlier_than_baseline_is_compared_with_its_costliest_point() -> None:
    result = task_score([CurvePoint(10_000, 90.0)], SST2)
    (point,) = result.points
    assert point.position == "above"
    assert point.baseline_performance == 88.6
    assert point.delta == pytest.approx(1.4)


def test_endpoints_are_within_range() -> None:
    assert SST2.position(1059) == "within"
    assert SST2.position(4237) == "within"
    assert SST2.position(1058.999) == "below"
    assert SST2.position(4237.001) == "above"
    assert (SST2.min_flops, SST2.max_flops) == (1059, 4237)


def test_mixed_positions() -> None:
    result = task_score(
        [CurvePoint(100, 80.0), CurvePoint(3000, 88.0), CurvePoint(9e9, 95.0)], SST2
    )
    assert [p.position for p in result.points] == ["below", "within", "above"]


def test_one_point_baseline_is_flat_everywhere() -> None:
    curve = BaselineCurve([CurvePoint(2000, 90.0)])
    assert [curve.at(f) for f in (1, 2000, 1e12)] == [90.0, 90.0, 90.0]
    assert [curve.position(f) for f in (1, 2000, 3000)] == ["below", "within", "above"]
    assert task_score([CurvePoint(1, 91.0), CurvePoint(5000, 89.0)], curve).score == 0.0


def test_baseline_keeps_best_performance_at_duplicated_flops_and_sorts() -> None:
    curve = BaselineCurve([CurvePoint(3000, 80.0), CurvePoint(1000, 70.0), CurvePoint(3000, 82.0)])
    assert curve.points == (CurvePoint(1000, 70.0), CurvePoint(3000, 82.0))
    assert curve.at(2000) == pytest.approx(76.0)
    assert curve.at(3000) == 82.0


@pytest.mark.parametrize(
    ("flops", "performance"),
    [(0, 80.0), (-5, 80.0), (math.inf, 80.0), (math.nan, 80.0), (10, math.nan), (10, math.inf)],
)
def test_curve_point_rejects_bad_values(flops: float, performance: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        CurvePoint(flops, performance)


def test_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one point"):
        BaselineCurve([])
    with pytest.raises(ValueError, match="at least one point"):
        task_score([], SST2)


@given(
    st.lists(
        st.tuples(st.floats(1, 1e6, allow_nan=False), st.floats(0, 100, allow_nan=False, width=32)),
        min_size=1,
        max_size=8,
    ),
    st.floats(1e-3, 1e9),
)
def test_baseline_stays_within_its_performance_range(
    raw: list[tuple[float, float]], flops: float
) -> None:
    curve = BaselineCurve([CurvePoint(f, p) for f, p in raw])
    perfs = [p.performance for p in curve.points]
    value = curve.at(flops)
    assert min(perfs) - 1e-9 <= value <= max(perfs) + 1e-9
    if curve.position(flops) == "below":
        assert value == curve.points[0].performance
    if curve.position(flops) == "above":
        assert value == curve.points[-1].performance


# --- overall score -----------------------------------------------------------------------


def test_overall_score_over_all_tasks() -> None:
    per_task = dict(zip(ELUE_TASKS, [1.0, 2.0, 3.0, -1.0, 0.0, 1.0], strict=True))
    result = overall_score(per_task, ELUE_TASKS)
    assert result.average == pytest.approx(1.0)
    assert (result.tasks_covered, result.tasks_total) == (6, 6)
    assert result.complete


def test_overall_score_with_missing_tasks_averages_the_covered_ones() -> None:
    result = overall_score({"SciTail": 2.0, "SST-2": 1.0}, ELUE_TASKS)
    assert result.average == pytest.approx(1.5)
    assert result.per_task == {"SST-2": 1.0, "SciTail": 2.0}
    assert list(result.per_task) == ["SST-2", "SciTail"]  # order of all_tasks
    assert (result.tasks_covered, result.tasks_total) == (2, 6)
    assert not result.complete


def test_overall_score_with_no_task() -> None:
    result = overall_score({}, ELUE_TASKS)
    assert result == OverallScore(average=None, per_task={}, tasks_covered=0, tasks_total=6)


def test_overall_score_refuses_unknown_or_duplicate_tasks_and_nan() -> None:
    with pytest.raises(ValueError, match="outside all_tasks"):
        overall_score({"CoLA": 1.0}, ELUE_TASKS)
    with pytest.raises(ValueError, match="twice"):
        overall_score({}, ["SST-2", "SST-2"])
    with pytest.raises(ValueError, match="finite"):
        overall_score({"SST-2": math.nan}, ELUE_TASKS)


def test_ranked_by_score_as_elue_and_dropping_a_weak_task_leaves_the_default_view() -> None:
    full = overall_score({"SST-2": 2.0, "MRPC": -1.0}, ["SST-2", "MRPC"])  # average 0.5
    partial = overall_score({"SST-2": 1.0}, ["SST-2", "MRPC"])  # average 1.0, one task
    nothing = overall_score({}, ["SST-2", "MRPC"])
    better_full = overall_score({"SST-2": 2.0, "MRPC": 0.0}, ["SST-2", "MRPC"])
    # Score first, as ELUE ranked: a better score is never below a worse one.
    ranked = sorted([nothing, partial, full, better_full], key=overall_sort_key)
    assert ranked == [better_full, partial, full, nothing]
    # The default view ("all tasks"): dropping MRPC removes the entry instead of raising it.
    entries = [nothing, partial, full, better_full]
    assert rank_overall(entries, score=lambda s: s, coverage="all") == [better_full, full]
    assert rank_overall(entries, score=lambda s: s, coverage="any") == ranked
    # Equal scores: more tasks covered first.
    one = overall_score({"SST-2": 0.5}, ["SST-2", "MRPC"])
    assert sorted([one, full], key=overall_sort_key) == [full, one]


def test_rank_overall_is_stable() -> None:
    tasks = ["SST-2"]
    entries = [("a", overall_score({"SST-2": 1.0}, tasks)), ("b", overall_score({}, tasks))]
    entries += [
        ("c", overall_score({"SST-2": 1.0}, tasks)),
        ("d", overall_score({"SST-2": 3}, tasks)),
    ]
    ranked = rank_overall(entries, score=lambda e: e[1])
    assert [name for name, _ in ranked] == ["d", "a", "c", "b"]


# --- Pareto fronts -----------------------------------------------------------------------


def brute_force_mask(costs: np.ndarray, perfs: np.ndarray) -> np.ndarray:
    n = len(costs)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            no_worse = costs[j] <= costs[i] and perfs[j] >= perfs[i]
            better = costs[j] < costs[i] or perfs[j] > perfs[i]
            if no_worse and better:
                mask[i] = False
                break
    return mask


def test_front_hand_case() -> None:
    costs = np.array([1.0, 2.0, 3.0, 2.0, 4.0, 0.5])
    perfs = np.array([80.0, 85.0, 84.0, 83.0, 90.0, 70.0])
    # (3, 84) beaten by (2, 85); (2, 83) beaten by (2, 85) at the same cost.
    assert front_mask(costs, perfs).tolist() == [True, True, False, False, True, True]


def test_front_ties() -> None:
    # Identical points are both on the front; equal performance at higher cost is not.
    costs = np.array([1.0, 1.0, 2.0, 0.5])
    perfs = np.array([80.0, 80.0, 80.0, 79.0])
    assert front_mask(costs, perfs).tolist() == [True, True, False, True]


def test_front_edge_cases() -> None:
    assert front_mask(np.array([]), np.array([])).tolist() == []
    assert front_mask(np.array([5.0]), np.array([1.0])).tolist() == [True]
    assert front_mask([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]).tolist() == [True, False, False]
    assert front_mask([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).tolist() == [True, True, True]
    with pytest.raises(ValueError, match="equal length"):
        front_mask(np.array([1.0, 2.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        front_mask(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


# Small value sets so that ties in cost, performance or both are frequent.
_coords = st.lists(
    st.tuples(st.integers(0, 6), st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])),
    max_size=40,
)


@given(_coords)
def test_front_mask_matches_brute_force(points: list[tuple[int, float]]) -> None:
    costs = np.array([c for c, _ in points], dtype=np.float64)
    perfs = np.array([p for _, p in points], dtype=np.float64)
    assert front_mask(costs, perfs).tolist() == brute_force_mask(costs, perfs).tolist()


@given(
    st.lists(
        st.tuples(
            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        ),
        max_size=30,
    )
)
def test_front_mask_matches_brute_force_on_floats(points: list[tuple[float, float]]) -> None:
    costs = np.array([c for c, _ in points], dtype=np.float64)
    perfs = np.array([p for _, p in points], dtype=np.float64)
    assert front_mask(costs, perfs).tolist() == brute_force_mask(costs, perfs).tolist()


@dataclass(frozen=True)
class Entry:
    name: str
    flops: float
    score: float


@given(_coords)
@settings(max_examples=50)
def test_pareto_front_is_sorted_by_cost_and_matches_mask(points: list[tuple[int, float]]) -> None:
    items = [Entry(str(i), c, p) for i, (c, p) in enumerate(points)]
    front = pareto_front(items, cost=lambda e: e.flops, performance=lambda e: e.score)
    mask = brute_force_mask(
        np.array([e.flops for e in items], dtype=np.float64),
        np.array([e.score for e in items], dtype=np.float64),
    )
    assert sorted(front, key=lambda e: int(e.name)) == [
        e for e, m in zip(items, mask, strict=True) if m
    ]
    assert [e.flops for e in front] == sorted(e.flops for e in front)
    assert [e.score for e in front] == sorted(e.score for e in front)


def test_pareto_front_generic_items() -> None:
    items = [Entry("big", 4237, 88.6), Entry("bad", 3000, 84.0), Entry("small", 1059, 84.1)]
    items.append(Entry("small-twin", 1059, 84.1))
    front = pareto_front(items, cost=lambda e: e.flops, performance=lambda e: e.score)
    assert [e.name for e in front] == ["small", "small-twin", "big"]
    assert pareto_front([], cost=lambda e: e.flops, performance=lambda e: e.score) == []


def test_front_mask_on_100k_points_matches_a_sweep() -> None:
    rng = np.random.default_rng(1)
    costs = rng.integers(1, 1000, size=100_000).astype(np.float64)
    perfs = rng.normal(80, 5, size=100_000).round(1)
    mask = front_mask(costs, perfs)
    # Check against a plain Python sweep (the brute force is too slow at this size).
    best_cheaper = -math.inf
    expected = np.zeros(len(costs), dtype=bool)
    by_cost: dict[float, list[int]] = {}
    for i in np.argsort(costs, kind="stable"):
        by_cost.setdefault(float(costs[i]), []).append(int(i))
    for group in by_cost.values():
        top = max(perfs[i] for i in group)
        for i in group:
            expected[i] = perfs[i] == top and perfs[i] > best_cheaper
        best_cheaper = max(best_cheaper, top)
    assert mask.tolist() == expected.tolist()
    assert 0 < mask.sum() < 1000


# --- tracks ------------------------------------------------------------------------------


def test_track_values_and_limits() -> None:
    assert [t.value for t in Track] == ["40M", "55M", "70M", "110M"]
    assert [t.limit for t in Track] == [40_000_000, 55_000_000, 70_000_000, 110_000_000]
    assert Track("55M") is Track.M55


def test_tracks_for() -> None:
    assert tracks_for(30_000_000) == list(Track)
    assert tracks_for(40_000_000) == list(Track)  # limits are inclusive
    assert tracks_for(40_000_001) == [Track.M55, Track.M70, Track.M110]
    assert tracks_for(67_000_000) == [Track.M70, Track.M110]
    assert tracks_for(109_483_778) == [Track.M110]  # BERT-base
    assert tracks_for(110_000_001) == []
    with pytest.raises(ValueError, match="negative"):
        tracks_for(-1)


def test_average_performance() -> None:
    # ElasticBERT-base 12L's published test scores.
    best = {"SST-2": 88.6, "IMDb": 93.9, "MRPC": 87.9, "STS-B": 87.6, "SNLI": 91.3, "SciTail": 93.8}
    assert average_performance(best) == pytest.approx(90.5166666)
    assert average_performance({}) is None
    with pytest.raises(ValueError, match="finite"):
        average_performance({"SST-2": math.inf})


@dataclass(frozen=True)
class Model:
    name: str
    params: int
    avg: float | None
    tasks: int = 6


MODELS = [
    Model("ElasticBERT-12L", 109_000_000, 90.5),
    Model("BERT-base", 109_483_778, 88.2),
    Model("ALBERT-base", 12_000_000, 89.9),
    Model("TinyBERT-6L", 67_000_000, 87.2),
    Model("MobileBERT", 25_000_000, 88.6),
    Model("ElasticBERT-6L", 67_000_000, 89.4),
    Model("Tiny-twin", 60_000_000, 87.2),
    Model("no-results", 10_000_000, None),
    Model("huge", 340_000_000, 95.0),
]


def _rank(track: Track) -> list[str]:
    ranked = rank_track(
        MODELS, track, params=lambda m: m.params, average_performance=lambda m: m.avg
    )
    return [m.name for m in ranked]


def test_rank_track() -> None:
    assert _rank(Track.M40) == ["ALBERT-base", "MobileBERT"]
    assert _rank(Track.M55) == ["ALBERT-base", "MobileBERT"]
    # Equal average 87.2: fewer parameters first.
    assert _rank(Track.M70) == [
        "ALBERT-base",
        "ElasticBERT-6L",
        "MobileBERT",
        "Tiny-twin",
        "TinyBERT-6L",
    ]
    assert _rank(Track.M110) == [
        "ElasticBERT-12L",
        "ALBERT-base",
        "ElasticBERT-6L",
        "MobileBERT",
        "BERT-base",
        "Tiny-twin",
        "TinyBERT-6L",
    ]


def test_rank_track_with_coverage() -> None:
    models = [Model("full", 20_000_000, 85.0, 6), Model("partial", 20_000_000, 90.0, 2)]
    plain = rank_track(
        models, Track.M40, params=lambda m: m.params, average_performance=lambda m: m.avg
    )
    assert [m.name for m in plain] == ["partial", "full"]
    covered = rank_track(
        models,
        Track.M40,
        params=lambda m: m.params,
        average_performance=lambda m: m.avg,
        tasks_covered=lambda m: m.tasks,
    )
    # Coverage never ahead of the average (the view filters by coverage instead) ...
    assert [m.name for m in covered] == ["partial", "full"]
    # ... it breaks ties: at equal averages the entry with more tasks comes first.
    tied = [Model("partial", 20_000_000, 85.0, 2), Model("full", 20_000_000, 85.0, 6)]
    ranked = rank_track(
        tied,
        Track.M40,
        params=lambda m: m.params,
        average_performance=lambda m: m.avg,
        tasks_covered=lambda m: m.tasks,
    )
    assert [m.name for m in ranked] == ["full", "partial"]
