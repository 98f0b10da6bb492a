"""Task metrics: accuracy, MRPC's accuracy/F1 mean, STS-B's Pearson/Spearman mean (all x100)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from core.metrics import MetricResult, compute_metrics
from core.tasks.manifest import ELUE_MANIFESTS, Family, LabelKind, Metric, TaskManifest

SST2 = ELUE_MANIFESTS["SST-2"]
SNLI = ELUE_MANIFESTS["SNLI"]
MRPC = ELUE_MANIFESTS["MRPC"]
STSB = ELUE_MANIFESTS["STS-B"]


def codes(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def floats(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def test_accuracy() -> None:
    result = compute_metrics(SST2, codes(0, 1, 1, 0, 1), codes(0, 1, 0, 0, 1))
    assert result == MetricResult(performance=80.0, components={"accuracy": 80.0})


def test_accuracy_three_classes() -> None:
    result = compute_metrics(SNLI, codes(0, 1, 2, 2), codes(0, 2, 2, 1))
    assert result.performance == pytest.approx(50.0)
    assert result.components == {"accuracy": pytest.approx(50.0)}


def test_accuracy_f1_mrpc() -> None:
    gold = codes(1, 1, 1, 0, 0, 1, 0, 1)
    pred = codes(1, 0, 1, 0, 1, 1, 0, 1)
    # accuracy 6/8; positive "1": tp=4, fp=1, fn=1 -> F1 = 8/10
    result = compute_metrics(MRPC, gold, pred)
    assert result.components["accuracy"] == pytest.approx(75.0)
    assert result.components["f1"] == pytest.approx(80.0)
    assert result.performance == pytest.approx(77.5)


def test_accuracy_f1_uses_the_positive_label_code() -> None:
    # Labels in another order: "1" is code 0 here, so F1 is computed for code 0.
    manifest = TaskManifest(
        name="para",
        display_name="Para",
        family=Family.SIMILARITY,
        metric=Metric.ACCURACY_F1,
        label_kind=LabelKind.CLASSIFICATION,
        labels=("1", "0"),
        positive_label="1",
        text_columns=("a", "b"),
    )
    gold = codes(0, 0, 1, 1)
    pred = codes(0, 1, 1, 1)
    # positive code 0: tp=1, fp=0, fn=1 -> F1 = 2/3
    result = compute_metrics(manifest, gold, pred)
    assert result.components["f1"] == pytest.approx(200 / 3)
    assert result.components["accuracy"] == pytest.approx(75.0)


def test_accuracy_f1_without_positives_is_zero_f1() -> None:
    result = compute_metrics(MRPC, codes(0, 0, 0), codes(0, 0, 0))
    assert result.components == {"accuracy": 100.0, "f1": 0.0}
    assert result.performance == 50.0


def test_pearson_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, size=200)
    pred = gold + rng.normal(0, 1, size=200)
    result = compute_metrics(STSB, gold, pred)
    pearson = 100 * stats.pearsonr(gold, pred).statistic
    spearman = 100 * stats.spearmanr(gold, pred).statistic
    assert result.components["pearson"] == pytest.approx(pearson)
    assert result.components["spearman"] == pytest.approx(spearman)
    assert result.performance == pytest.approx((pearson + spearman) / 2)


def test_pearson_spearman_perfect_and_monotone() -> None:
    gold = floats(0.0, 1.0, 2.0, 3.0, 4.0)
    assert compute_metrics(STSB, gold, gold).performance == pytest.approx(100.0)
    result = compute_metrics(STSB, gold, gold**3)  # monotone but not linear
    assert result.components["spearman"] == pytest.approx(100.0)
    assert result.components["pearson"] < 100.0


def test_constant_regression_prediction_scores_zero_without_warning() -> None:
    gold = floats(0.5, 1.5, 2.5, 4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_metrics(STSB, gold, floats(2.0, 2.0, 2.0, 2.0))
    assert result == MetricResult(performance=0.0, components={"pearson": 0.0, "spearman": 0.0})


def test_constant_gold_or_single_row_scores_zero() -> None:
    assert compute_metrics(STSB, floats(3.0, 3.0, 3.0), floats(1.0, 2.0, 3.0)).performance == 0.0
    assert compute_metrics(STSB, floats(3.0), floats(1.0)).performance == 0.0


def test_integer_regression_values_are_accepted() -> None:
    result = compute_metrics(STSB, np.array([0, 1, 2, 3]), floats(0.0, 1.0, 2.0, 3.0))
    assert result.performance == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("manifest", "gold", "pred"),
    [
        (SST2, codes(0, 1, 1), codes(0, 1)),
        (MRPC, codes(0), codes(0, 1)),
        (STSB, floats(1.0, 2.0), floats(1.0, 2.0, 3.0)),
    ],
)
def test_length_mismatch_is_a_value_error(
    manifest: TaskManifest, gold: np.ndarray, pred: np.ndarray
) -> None:
    with pytest.raises(ValueError, match="rows"):
        compute_metrics(manifest, gold, pred)


@pytest.mark.parametrize(
    ("manifest", "gold", "pred", "match"),
    [
        (SST2, codes(), codes(), "empty"),
        (SST2, codes(0, 1, 2), codes(0, 1, 1), "outside"),
        (SST2, codes(0, 1), codes(0, -1), "outside"),
        (SST2, floats(0.0, 1.0), floats(0.0, 1.0), "integer"),
        (SST2, np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2), dtype=np.int64), "dimensional"),
        (STSB, floats(1.0, np.nan), floats(1.0, 2.0), "NaN"),
        (STSB, floats(1.0, 2.0), floats(np.inf, 2.0), "NaN"),
        (STSB, np.array(["a", "b"]), floats(1.0, 2.0), "numbers"),
    ],
)
def test_invalid_inputs(
    manifest: TaskManifest, gold: np.ndarray, pred: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        compute_metrics(manifest, gold, pred)
