"""Scoring real prediction files against the stored gold, checked with scikit-learn / scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score
from sqlalchemy.orm import Session

from core.errors import PredictionFileError
from core.scoring import score_file
from tests.helpers import noisy_predictions, raw_gold, write_predictions

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_problems": 50}


def _expected(task: str, gold: list[str], preds: list[str]) -> tuple[float, dict[str, float]]:
    if task == "STS-B":
        g, p = np.array(gold, dtype=float), np.array(preds, dtype=float)
        pear, spear = pearsonr(g, p)[0] * 100, spearmanr(g, p)[0] * 100
        return (pear + spear) / 2, {"pearson": pear, "spearman": spear}
    acc = accuracy_score(gold, preds) * 100
    if task == "MRPC":
        f1 = f1_score(gold, preds, pos_label="1") * 100
        return (acc + f1) / 2, {"accuracy": acc, "f1": f1}
    return acc, {"accuracy": acc}


@pytest.mark.parametrize("task", ["SST-2", "SNLI", "SciTail", "MRPC", "STS-B"])
def test_metric_matches_sklearn_and_ignores_row_order(
    seeded_session: Session, elue_dir: Path, tmp_path: Path, task: str
) -> None:
    gold = raw_gold(elue_dir, task)
    preds = noisy_predictions(gold, task, seed=2026)
    performance, components = _expected(task, gold, preds)

    in_order = write_predictions(tmp_path / "a.tsv", preds)
    shuffled = write_predictions(
        tmp_path / "b.tsv",
        preds,
        order=np.random.default_rng(1).permutation(len(preds)),
        header="index\tpred",
    )
    a = score_file(seeded_session, task, in_order, **LIMITS).metrics
    b = score_file(seeded_session, task, shuffled, **LIMITS).metrics
    assert a.performance == pytest.approx(performance, abs=1e-9)
    assert a.components == pytest.approx(components, abs=1e-9)
    assert b == a


def test_bad_file_lists_problems_and_scores_nothing(
    seeded_session: Session, elue_dir: Path, tmp_path: Path
) -> None:
    gold = raw_gold(elue_dir, "SST-2")
    path = write_predictions(tmp_path / "SST-2.tsv", gold)
    lines = path.read_text().splitlines()
    lines[5] = "4\tpositive"  # line 6: a label outside {0, 1}
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PredictionFileError) as info:
        score_file(seeded_session, "SST-2", path, **LIMITS)
    problem = info.value.problems[0]
    assert (problem.file, problem.line) == ("SST-2.tsv", 6)
    assert "positive" in problem.problem
