"""Test helpers: gold labels read independently of the importer, and prediction files from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.tasks.manifest import ELUE_MANIFESTS


def raw_gold(elue_dir: Path, task: str) -> list[str]:
    """The gold column of test_full.tsv, read with plain string handling (not the importer)."""
    text = (elue_dir / task / "test_full.tsv").read_text(encoding="utf-8-sig")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    header = lines[0].split("\t")
    col = header.index(ELUE_MANIFESTS[task].label_column)
    return [line.split("\t")[col].strip() for line in lines[1:]]


def noisy_predictions(gold: list[str], task: str, seed: int, flip: float = 0.15) -> list[str]:
    """Predictions equal to gold except for a seeded fraction of errors (or noise for STS-B)."""
    rng = np.random.default_rng(seed)
    manifest = ELUE_MANIFESTS[task]
    if manifest.labels:
        out = list(gold)
        for i in np.flatnonzero(rng.random(len(gold)) < flip):
            others = [lab for lab in manifest.labels if lab != gold[i]]
            out[i] = others[int(rng.integers(len(others)))]
        return out
    values = np.array([float(g) for g in gold]) + rng.normal(0, 0.8, len(gold))
    return [f"{v:.4f}" for v in values]


def write_predictions(
    path: Path,
    preds: list[str],
    *,
    order: np.ndarray | None = None,
    header: str = "index\tprediction",
) -> Path:
    idx = np.arange(len(preds)) if order is None else order
    lines = [header] + [f"{i}\t{preds[i]}" for i in idx]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
