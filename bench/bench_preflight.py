"""Benchmark: the pre-flight check's wall time ("Check only", `submit --check`), per model file.

    .venv/bin/python -m bench.bench_preflight [--tasks SST-2 SNLI] [--models examples/dan.py ...]

Builds a migrated SQLite database with the tasks in a temporary folder, picks the same real test
samples the web process sends (`web.api.submissions._preflight_samples`: the first rows and
the longest inputs of each task, tokenized with bert-base-uncased), and times
`worker.preflight.run_preflight` (the sandboxed capture, the run on the samples, the weights and
path checks) as a pre-flight worker runs it, on this machine's CPU. Each model is checked twice:
the first run includes the sandbox's cold start (imports), the second is what a warm worker
answers in. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from core.db import migrate
from core.db.session import make_engine, transaction
from core.settings import REPO_ROOT, Settings
from core.tasks import service
from web.api.submissions import _preflight_samples
from worker.preflight import PreflightRequest, run_preflight

MODELS = [
    REPO_ROOT / "examples" / "dan.py",
    REPO_ROOT / "tests" / "models" / "hf" / "bert_small.py",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    parser.add_argument("--tasks", nargs="+", default=["SST-2", "SNLI"])
    parser.add_argument("--models", nargs="+", type=Path, default=MODELS)
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        with transaction(engine) as session:
            for name in args.tasks:
                for task in service.read_task_folders(args.elue_dir / name):
                    service.import_task(session, task)
        with transaction(engine) as session:
            tasks = [service.get_task(session, name) for name in args.tasks]
            checked = SimpleNamespace(
                predictions=[SimpleNamespace(task_id=t.id, task_name=t.name) for t in tasks],
                tokenizer_name=None,
            )
            samples = _preflight_samples(
                session, settings, cast(Any, SimpleNamespace(tokenizer=None)), cast(Any, checked)
            )
        engine.dispose()
    lengths = sorted(len(s["ids"]) for s in samples)
    print(f"{len(samples)} real samples from {', '.join(args.tasks)}; tokens {lengths}")
    for model in args.models:
        request = PreflightRequest(
            model_b64=base64.b64encode(model.read_bytes()).decode(), weights={}, samples=samples
        )
        for attempt in ("first", "second"):
            start = time.perf_counter()
            result = run_preflight(request, settings, device="cpu")
            wall = time.perf_counter() - start
            print(
                f"{model.relative_to(REPO_ROOT)} ({attempt} run): {wall:.1f} s wall, "
                f"captured={result.captured} ok={result.ok} samples_run={result.samples_run} "
                f"problems={result.sample_problems or result.error or []}"
            )


if __name__ == "__main__":
    main()
