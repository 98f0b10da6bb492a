"""Benchmark: the bootstrap intervals added to scoring, on the real ELUE test sets.

    .venv/bin/python -m bench.bench_uncertainty [--elue-dir ../shared/data/elue] [--points 4]
        [--resamples 1000] [--repeat 3]

Per task, times `bootstrap_points` (every point's interval and the joint task interval, one
resampling) for a submission with --points points (gold with seeded noise), and a paired
bootstrap of two such submissions; prints the best of --repeat runs. Reads the gold straight
from test_full.tsv (no database), as the score stage's arrays are.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from core.settings import REPO_ROOT
from core.tasks.manifest import ELUE_MANIFESTS, LabelKind
from core.uncertainty import bootstrap_points, paired_bootstrap, task_rng


def _gold(elue_dir: Path, task: str) -> np.ndarray:
    manifest = ELUE_MANIFESTS[task]
    lines = (elue_dir / task / "test_full.tsv").read_text(encoding="utf-8-sig").splitlines()
    lines = [line.rstrip("\r") for line in lines if line.strip()]
    col = lines[0].split("\t").index(manifest.label_column)
    values = [line.split("\t")[col].strip() for line in lines[1:]]
    if manifest.label_kind is LabelKind.REGRESSION:
        return np.array([float(v) for v in values])
    return np.array([manifest.labels.index(v) for v in values], dtype=np.int64)


def _preds(gold: np.ndarray, n_labels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if n_labels == 0:
        return gold + rng.normal(0, 0.8, gold.size)
    return np.where(rng.random(gold.size) < 0.15, (gold + 1) % n_labels, gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    total = 0.0
    for task in ("SST-2", "SNLI", "SciTail", "MRPC", "STS-B"):
        manifest = ELUE_MANIFESTS[task]
        gold = _gold(args.elue_dir, task)
        a = [_preds(gold, len(manifest.labels), s) for s in range(args.points)]
        b = [_preds(gold, len(manifest.labels), 100 + s) for s in range(args.points)]
        best_points = best_paired = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            bootstrap_points(manifest, gold, a, n_resamples=args.resamples, rng=task_rng(1, task))
            best_points = min(best_points, time.perf_counter() - start)
            start = time.perf_counter()
            paired_bootstrap(
                manifest,
                gold,
                a,
                b,
                [(i, i) for i in range(args.points)],
                n_resamples=args.resamples,
                rng=task_rng(1, task),
            )
            best_paired = min(best_paired, time.perf_counter() - start)
        total += best_points
        print(
            f"{task:8s} n={gold.size:5d} points={args.points} resamples={args.resamples}: "
            f"intervals {best_points:.3f} s, paired {best_paired:.3f} s"
        )
    print(f"all tasks, intervals: {total:.3f} s")


if __name__ == "__main__":
    main()
