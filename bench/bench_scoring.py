"""Benchmark: parse and score a full prediction file for every task (rows per second, total).

    .venv/bin/python -m bench.bench_scoring [--elue-dir ../shared/data/elue] [--repeat 5]

Builds a migrated SQLite database in a temporary folder, imports the tasks, writes one prediction
file per task (gold with seeded noise), then times parse + score of all of them together, with
the gold loaded from the database as `paretoboard score` does. Prints the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from core.db import migrate
from core.db.session import make_engine, session_factory, transaction
from core.metrics import compute_metrics
from core.predictions import parse_predictions
from core.settings import REPO_ROOT
from core.tasks import service


def _prediction_bytes(manifest_labels: tuple[str, ...], gold: np.ndarray, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(gold))
    if manifest_labels:
        noisy = np.where(rng.random(len(gold)) < 0.1, (gold + 1) % len(manifest_labels), gold)
        values = [manifest_labels[int(v)] for v in noisy]
    else:
        values = [f"{v:.4f}" for v in gold + rng.normal(0, 0.5, len(gold))]
    lines = ["index\tprediction", *(f"{i}\t{values[i]}" for i in order)]
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        engine = make_engine(url)
        with transaction(engine) as session:
            for data in service.read_task_folders(args.elue_dir):
                service.import_task(session, data)
        with session_factory(engine)() as session:
            tasks = service.list_tasks(session)
            files = {
                t.name: _prediction_bytes(
                    service.manifest_of(t).labels, service.load_gold(session, t), seed=i
                )
                for i, t in enumerate(tasks)
            }
            rows = sum(t.test_size for t in tasks)
            best = float("inf")
            per_task: dict[str, float] = {}
            for _ in range(args.repeat):
                start = time.perf_counter()
                for task in tasks:
                    t0 = time.perf_counter()
                    manifest = service.manifest_of(task)
                    parsed = parse_predictions(
                        files[task.name],
                        manifest=manifest,
                        n_rows=task.test_size,
                        file_name=f"{task.name}.tsv",
                    )
                    result = compute_metrics(
                        manifest, service.load_gold(session, task), parsed.labels
                    )
                    per_task[task.name] = min(
                        per_task.get(task.name, float("inf")), time.perf_counter() - t0
                    )
                    assert result.performance > 0
                best = min(best, time.perf_counter() - start)
        engine.dispose()

    for name, seconds in per_task.items():
        print(f"{name:<8} {seconds * 1000:7.1f} ms")
    print(
        f"all tasks: {rows} rows in {best:.3f} s = {rows / best:,.0f} rows/s (best of {args.repeat})"
    )


if __name__ == "__main__":
    main()
