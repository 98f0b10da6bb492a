"""Task metrics: a task's headline performance (x100) from gold and predicted arrays.

Only scikit-learn and scipy compute the statistics; this module validates inputs and combines
the components the way ELUE does (see docs/ranking.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score

from core.tasks.manifest import LabelKind, Metric, TaskManifest


@dataclass(frozen=True, slots=True)
class MetricResult:
    """A task's headline number and the components it was averaged from, all x100."""

    performance: float  # the number rankings use
    components: dict[str, float]  # e.g. {"accuracy": 87.1, "f1": 90.2}; STS-B: pearson, spearman


def compute_metrics(manifest: TaskManifest, gold: np.ndarray, pred: np.ndarray) -> MetricResult:
    """Score `pred` against `gold` with the task's metric; every number is x100.

    Classification arrays hold int64 codes (indexes into `manifest.labels`); regression arrays
    hold float64 values. Both must be one-dimensional, non-empty and of equal length, otherwise
    `ValueError`.

    - ACCURACY: accuracy.
    - ACCURACY_F1: mean(accuracy, F1 of the class `manifest.positive_label`); F1 is 0 when the
      positive class is neither predicted nor present.
    - PEARSON_SPEARMAN: mean(Pearson, Spearman). A correlation is undefined when either array is
      constant (e.g. a model that predicts the same value for every row) or has fewer than two
      rows; such a correlation is defined here as 0.0 (no linear / rank agreement) instead of NaN,
      so the result always stays a finite number that can be stored and ranked.
    """
    gold_arr, pred_arr = _check_shapes(gold, pred)
    if manifest.label_kind is LabelKind.CLASSIFICATION:
        gold_codes = _check_codes(gold_arr, len(manifest.labels), "gold")
        pred_codes = _check_codes(pred_arr, len(manifest.labels), "pred")
        accuracy = 100.0 * float(accuracy_score(gold_codes, pred_codes))
        if manifest.metric is Metric.ACCURACY:
            return MetricResult(performance=accuracy, components={"accuracy": accuracy})
        if manifest.metric is Metric.ACCURACY_F1:
            assert manifest.positive_label is not None  # the manifest validator guarantees it
            positive = manifest.labels.index(manifest.positive_label)
            # labels=[positive] with average="macro" is the F1 of that one class, for two or
            # more classes alike (average="binary" refuses more than two).
            f1 = 100.0 * float(
                f1_score(
                    gold_codes, pred_codes, labels=[positive], average="macro", zero_division=0.0
                )
            )
            return MetricResult(
                performance=(accuracy + f1) / 2, components={"accuracy": accuracy, "f1": f1}
            )
        raise ValueError(f"metric {manifest.metric} does not apply to a classification task")
    if manifest.metric is not Metric.PEARSON_SPEARMAN:
        raise ValueError(f"metric {manifest.metric} does not apply to a regression task")
    gold_vals = _check_values(gold_arr, "gold")
    pred_vals = _check_values(pred_arr, "pred")
    if _correlation_undefined(gold_vals, pred_vals):
        pearson = spearman = 0.0
    else:
        pearson = 100.0 * _finite_or_zero(stats.pearsonr(gold_vals, pred_vals).statistic)
        spearman = 100.0 * _finite_or_zero(stats.spearmanr(gold_vals, pred_vals).statistic)
    return MetricResult(
        performance=(pearson + spearman) / 2,
        components={"pearson": pearson, "spearman": spearman},
    )


def _check_shapes(gold: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gold_arr, pred_arr = np.asarray(gold), np.asarray(pred)
    if gold_arr.ndim != 1 or pred_arr.ndim != 1:
        raise ValueError(
            f"gold and pred must be one-dimensional, got shapes {gold_arr.shape} and "
            f"{pred_arr.shape}"
        )
    if gold_arr.shape != pred_arr.shape:
        raise ValueError(f"gold has {gold_arr.size} rows but pred has {pred_arr.size}")
    if gold_arr.size == 0:
        raise ValueError("cannot score an empty set of predictions")
    return gold_arr, pred_arr


def _check_codes(arr: np.ndarray, n_labels: int, name: str) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer label codes, got dtype {arr.dtype}")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= n_labels:
        raise ValueError(f"{name} holds label codes outside 0..{n_labels - 1}")
    return arr.astype(np.int64, copy=False)


def _check_values(arr: np.ndarray, name: str) -> np.ndarray:
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    values = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return values


def _correlation_undefined(gold: np.ndarray, pred: np.ndarray) -> bool:
    # Checked up front so scipy never warns (ConstantInputWarning) or raises (n < 2).
    return bool(gold.size < 2 or np.all(gold == gold[0]) or np.all(pred == pred[0]))


def _finite_or_zero(value: Any) -> float:
    # Near-constant inputs can still round to NaN inside scipy; same rule as constant ones.
    result = float(value)
    return result if math.isfinite(result) else 0.0
