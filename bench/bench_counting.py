"""Benchmark: count the static BERT-base example on every test set through the real pipeline.

    .venv/bin/python -m bench.bench_counting [--elue-dir ../shared/data/elue] [--subset 40]
        [--no-legacy]

The counting stage is the trusted counter: `torch.export` capture in the sandbox, then the graph
counted symbolically in a trusted process and evaluated at every sample's token count. In the
same run, the first counter (per distinct shape, fvcore + FlopCounterMode inside the sandbox,
`worker.cost_job`, kept for this comparison only) counts the same job, and a per-sample fvcore
loop is timed on a subset; ratios are printed side by side.

Builds a migrated SQLite database in a temporary folder, imports the tasks, submits
examples/bert_base_eager.py with one prediction file per task (gold with seeded noise: scores do
not matter), and runs the pipeline in the foreground with the real sandbox: scoring, then
counting (tokenization, the sandboxed cost job, storing the costs). Prints wall times, traces,
samples per second and peak memory: RSS of this process (the worker), and of the sandbox's
processes (largest one, and the sum of their PSS, sampled from /proc).

Then, in the same run, counts a random subset of `--subset` test samples one at a time, as a
per-sample counter would (fvcore + FlopCounterMode on each sample's own token ids, in a separate
process, `--baseline-threads` torch threads), and extrapolates its mean time per sample to every
sample: run in one process, and spread without loss over as many processes as the sandbox
used. The speed-ups compare those with the counting stage's wall time (tokenization, sandbox
start, model load and storing included). Numbers are printed, never asserted; the machine may
be shared, so the load average is printed before and after each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.bench_scoring import _prediction_bytes
from core.db import migrate
from core.db.session import make_engine, session_factory, transaction
from core.models import Result, ResultCost, Submission, SubmissionState, Task
from core.settings import REPO_ROOT, Settings, StorageSettings
from core.storage import LocalBlobStore
from core.submissions.service import SubmissionDraft, UploadedFile, create_submission
from core.submissions.state import queue_submission
from core.tasks import service
from core.tokenizers import registered_tokenizers
from worker import counting_stage, pipeline

MODEL = REPO_ROOT / "examples" / "bert_base_eager.py"
SAMPLE_EVERY = 0.1  # seconds between two /proc samples of the sandbox's memory


# --------------------------------------------------------------------------------------------
# memory


def _status_kib(pid: int | str, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@dataclass
class MemorySampler:
    """Samples, every SAMPLE_EVERY s, the processes below this one (the sandbox and its workers):
    the largest RSS of one process, and the largest sum of PSS (shared pages split between the
    processes that map them: the real footprint of forked workers) and of RSS."""

    peak_rss_one: int = 0
    peak_pss_sum: int = 0
    peak_rss_sum: int = 0
    peak_processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(SAMPLE_EVERY):
            pids = [p for p in _descendants(me) if _status_kib(p, "VmRSS") > 0]
            rss = [_status_kib(p, "VmRSS") for p in pids]
            self.peak_rss_one = max(self.peak_rss_one, max(rss, default=0))
            self.peak_rss_sum = max(self.peak_rss_sum, sum(rss))
            self.peak_pss_sum = max(self.peak_pss_sum, sum(_pss_kib(p) for p in pids))
            python = [p for p in pids if "python" in _comm(p)]
            self.peak_processes = max(self.peak_processes, len(python))


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _gib(kib: float) -> str:
    return f"{kib / 1024**2:.2f} GiB"


# --------------------------------------------------------------------------------------------
# the pipeline run


@dataclass
class SandboxTiming:
    seconds: float = 0.0
    output: Any = None
    failure: str | None = None
    log: str = ""


def _timed_runner(timing: SandboxTiming) -> Callable[..., counting_stage.SandboxRun]:
    def runner(*args: Any, **kwargs: Any) -> counting_stage.SandboxRun:
        start = time.perf_counter()
        run = counting_stage.run_cost_job(*args, **kwargs)
        timing.seconds = time.perf_counter() - start
        timing.output = run.output
        timing.failure = run.failure
        timing.log = run.log
        return run

    return runner


def _submit(settings: Settings, engine: Any, tmp: Path, model: Path, tasks: list[str]) -> int:
    files = []
    with session_factory(engine)() as session:
        for i, task in enumerate(service.list_tasks(session)):
            if task.name not in tasks:
                continue
            gold = service.load_gold(session, task)
            path = tmp / f"{task.name}.tsv"
            path.write_bytes(_prediction_bytes(service.manifest_of(task).labels, gold, seed=i))
            files.append(UploadedFile(path.name, path))
    with transaction(engine) as session:
        sub = create_submission(
            session,
            LocalBlobStore(settings.storage.uploads_dir),
            owner_id=None,
            draft=SubmissionDraft(name="bench-counting"),
            model=UploadedFile(model.name, model),
            predictions=files,
            limits=settings.limits,
            tokenizers=registered_tokenizers(settings.storage.tokenizers_dir),
        )
        return sub.id


def _run_pipeline(
    settings: Settings, engine: Any, sid: int, timing: SandboxTiming
) -> dict[str, float]:
    """evaluate(), stage by stage, with the sandbox run timed. Returns wall times."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    with transaction(engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        job_id = queue_submission(sub, "bench")
    outcome = pipeline.run_scoring(engine, settings, sid, job_id)
    times["scoring"] = time.perf_counter() - start
    if outcome != pipeline.Outcome.CONTINUE:
        raise SystemExit(f"scoring stopped the pipeline ({outcome})")
    start = time.perf_counter()
    pipeline.run_counting(engine, settings, sid, job_id, runner=_timed_runner(timing))
    times["counting"] = time.perf_counter() - start
    return times


def _cost_job(settings: Settings, engine: Any, sid: int) -> counting_stage.CostJob:
    """The cost job the pipeline would send for this submission (its inputs tokenized)."""
    store = LocalBlobStore(settings.storage.uploads_dir)
    with session_factory(engine)() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        texts = counting_stage.job_texts(session, store, sub, settings)
        inputs = counting_stage.tokenize_inputs(texts, settings)
        return counting_stage.build_job(session, store, sub, settings, inputs)


# --------------------------------------------------------------------------------------------
# the first counter (per distinct shape, in the sandbox), on the same job


def _legacy_run(settings: Settings, engine: Any, sid: int, model: bytes) -> dict[str, Any]:
    """The first counter's sandboxed job (`worker.cost_job`) on this submission's entries."""
    from worker.sandbox import Bind, make_job_dir, run_sandboxed, sandbox_python

    job = _cost_job(settings, engine, sid)
    base = settings.storage.sandbox_jobs_dir
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    job_dir = make_job_dir(base)
    (job_dir / "model.py").write_bytes(model)
    (job_dir / "model.py").chmod(0o644)
    spec = {
        "model": f"{counting_stage.JOB_TARGET}/model.py",
        "device": "cpu",
        "threads": settings.limits.sandbox_threads,
        "workers": settings.limits.sandbox_workers,
        "entries": job.entries,
    }
    (job_dir / "job.json").write_text(json.dumps(spec))
    (job_dir / "job.json").chmod(0o644)
    start = time.perf_counter()
    result = run_sandboxed(
        [sandbox_python(), "-m", "worker.cost_job", f"{counting_stage.JOB_TARGET}/job.json"],
        binds=[
            Bind(job_dir, counting_stage.JOB_TARGET),
            Bind(REPO_ROOT / "core", f"{counting_stage.CODE_TARGET}/core"),
            Bind(REPO_ROOT / "worker", f"{counting_stage.CODE_TARGET}/worker"),
        ],
        limits=counting_stage.sandbox_limits(settings),
        env={"PYTHONPATH": counting_stage.CODE_TARGET},
    )
    seconds = time.perf_counter() - start
    report = json.loads(result.stdout or b"{}")
    traces = sum(e.get("n_new_traces", 0) for e in report.get("entries", {}).values())
    return {"seconds": seconds, "ok": bool(report.get("ok")), "traces": traces}


# --------------------------------------------------------------------------------------------
# per-sample baseline (in a child process, so that its model does not count in our RSS)


def _per_sample_child(job_file: Path) -> None:
    import torch

    from worker.counting import load_model_file
    from worker.counting.count import count_call
    from worker.counting.loading import ENTIRE_MODEL, model_call

    job = json.loads(job_file.read_text())
    torch.set_num_threads(int(job["threads"]))
    loaded = load_model_file(Path(job["model"]))
    samples = job["samples"]

    def count(sample: dict[str, Any]) -> tuple[float, float]:
        ids = torch.tensor(sample["ids"])
        call = model_call(loaded, len(ids), token_ids=ids, first_segment=sample["first_segment"])
        start, cpu = time.perf_counter(), time.process_time()
        count_call(loaded, loaded.entire_model, ENTIRE_MODEL, (len(ids),), call)
        return time.perf_counter() - start, time.process_time() - cpu

    count(samples[0])  # warm-up, not timed
    timed = [count(s) for s in samples]
    print(json.dumps({"seconds": [t[0] for t in timed], "cpu": [t[1] for t in timed]}))


def _per_sample_baseline(
    settings: Settings,
    engine: Any,
    sid: int,
    model: Path,
    subset: int,
    seed: int,
    threads: int,
    tmp: Path,
) -> dict[str, Any]:
    job = _cost_job(settings, engine, sid)
    population = [
        (entry["key"], i)
        for entry in job.entries
        if entry["kind"] == "static"
        for i in range(len(entry["lengths"]))
    ]
    entries = {entry["key"]: entry for entry in job.entries}
    picks = random.Random(seed).sample(population, min(subset, len(population)))
    samples = []
    for key, i in picks:
        segments = entries[key]["first_segments"]
        samples.append(
            {
                "ids": entries[key]["token_ids"][i],
                "first_segment": segments[i] if segments else None,
            }
        )
    spec = tmp / "per_sample.json"
    spec.write_text(json.dumps({"model": str(model), "threads": threads, "samples": samples}))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_counting", "--per-sample-child", str(spec)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    wall = time.perf_counter() - start
    timed = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds, cpu = timed["seconds"], timed["cpu"]
    lengths = [len(s["ids"]) for s in samples]
    return {
        "n": len(seconds),
        "threads": threads,
        "population": len(population),
        "mean_seconds": sum(seconds) / len(seconds),
        "mean_cpu": sum(cpu) / len(cpu),
        "mean_length": sum(lengths) / len(lengths),
        "wall": wall,
    }


# --------------------------------------------------------------------------------------------


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--tasks", nargs="*", help="task names (default: every task)")
    parser.add_argument("--subset", type=int, default=40, help="samples for the per-sample run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline-threads", type=int, default=1, help="torch threads of the per-sample run"
    )
    parser.add_argument(
        "--no-legacy", action="store_true", help="skip the first counter's run (per shape)"
    )
    parser.add_argument("--per-sample-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.per_sample_child is not None:
        _per_sample_child(args.per_sample_child)
        return

    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, cpus {os.cpu_count()}")
    # /tmp, mode 0755: the sandbox uid must traverse the job folder's parents
    with tempfile.TemporaryDirectory(prefix="paretoboard-bench-", dir="/tmp") as name:
        tmp = Path(name)
        tmp.chmod(0o755)
        settings = Settings(storage=StorageSettings(data_dir=tmp / "var", jobs_dir=tmp / "jobs"))
        settings.storage.data_dir.mkdir()
        migrate.upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        with transaction(engine) as session:
            for data in service.read_task_folders(args.elue_dir):
                if not args.tasks or data.manifest.name in args.tasks:
                    service.import_task(session, data)
        with session_factory(engine)() as session:
            tasks = [t.name for t in service.list_tasks(session)]
        sid = _submit(settings, engine, tmp, args.model.resolve(), tasks)

        timing = SandboxTiming()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with MemorySampler() as memory:
            start = time.perf_counter()
            stages = _run_pipeline(settings, engine, sid, timing)
            total = time.perf_counter() - start
        worker_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        children_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        load_mid = os.getloadavg()

        with session_factory(engine)() as session:
            sub = session.get(Submission, sid)
            assert sub is not None
            state, message = sub.state, sub.state_message
            results = session.execute(
                select(Task.name, Result, ResultCost)
                .join(ResultCost, ResultCost.result_id == Result.id)
                .join(Task, Task.id == Result.task_id)
                .where(Result.submission_id == sid)
            ).all()
            per_task = {
                name: (cost.n, float(r.flops_mean or 0), dict(cost.details))
                for name, r, cost in results
            }
        if state is not SubmissionState.DONE:
            print(f"submission ended {state.value}: {message}")
            print(timing.failure or "")
            print(f"sandbox log (end):\n{timing.log[-3000:]}")
            raise SystemExit(1)

        legacy = None
        if not args.no_legacy:
            legacy = _legacy_run(settings, engine, sid, args.model.resolve().read_bytes())
        baseline = None
        if args.subset > 0:
            baseline = _per_sample_baseline(
                settings,
                engine,
                sid,
                args.model.resolve(),
                args.subset,
                args.seed,
                args.baseline_threads,
                tmp,
            )
        engine.dispose()

    output = timing.output
    entries = output.entries
    n_samples = sum(n for n, _, _ in per_task.values())
    rows = [("task", "samples", "mean GFLOPs", "mean ELUE GFLOPs", "incomplete", "entry s")]
    for task, (n, flops, details) in sorted(per_task.items()):
        entry = entries[details["entry"]]
        elue = details.get("flops_elue_mean") or 0.0
        rows.append(
            (
                task,
                f"{n:,}",
                f"{flops / 1e9:.2f}",
                f"{elue / 1e9:.2f}",
                ",".join(entry.incomplete) or "no",
                f"{entry.seconds:.2f}",
            )
        )
    print()
    print(_table(rows))
    print(f"\nFLOPs as a function of L: {output.polynomial}")
    in_job = float(output.seconds or 0.0)
    workers = 1
    load_seconds = getattr(output, "load_seconds", None)
    print()
    summary = [
        ("measure", "value"),
        ("samples", f"{n_samples:,} in {len(per_task)} tasks"),
        ("wall: scoring stage", f"{stages['scoring']:.1f} s"),
        ("wall: counting stage (tokenize, sandbox, store)", f"{stages['counting']:.1f} s"),
        ("wall: capture (sandbox) + trusted count", f"{timing.seconds:.1f} s"),
        (
            "time in the trusted counter (walk + evaluate + fvcore)",
            f"{in_job:.1f} s"
            + (f" (graph walk {load_seconds:.1f} s)" if load_seconds is not None else ""),
        ),
        ("CPU time of child processes", f"{children_cpu:.1f} s"),
        ("wall: whole pipeline", f"{total:.1f} s"),
        ("samples/s (counting stage)", f"{n_samples / stages['counting']:,.0f}"),
        ("peak RSS: worker (this process)", _gib(worker_rss)),
        ("peak RSS: largest sandboxed process", _gib(after.ru_maxrss)),
        ("peak PSS: sandbox, all processes", _gib(memory.peak_pss_sum)),
        ("peak RSS sum: sandbox, all processes", _gib(memory.peak_rss_sum)),
    ]
    if legacy is not None:
        summary += [
            (
                "first counter (per distinct shape, in the sandbox)",
                f"{legacy['seconds']:.1f} s, {legacy['traces']} traces"
                + ("" if legacy["ok"] else " (FAILED)"),
            ),
            (
                "  ratio first counter / trusted counter (sandbox runs)",
                f"{legacy['seconds'] / timing.seconds:.1f}x",
            ),
        ]
    if baseline is not None:
        serial = baseline["mean_seconds"] * n_samples
        spread = serial / (workers or 1)
        counting = stages["counting"]
        summary += [
            (
                f"per-sample counting: {baseline['n']} random samples",
                f"{baseline['mean_seconds']:.3f} s/sample wall, {baseline['mean_cpu']:.3f} s CPU"
                f" (mean length {baseline['mean_length']:.0f}, {baseline['threads']} thread(s))",
            ),
            (f"  extrapolated to {n_samples:,}, one process", f"{serial:,.0f} s"),
            (f"  extrapolated, over {workers or 1} process(es)", f"{spread:,.0f} s"),
            ("speed-up vs per-sample, one process", f"{serial / counting:.0f}x"),
            (f"speed-up vs per-sample, {workers or 1} process(es)", f"{spread / counting:.0f}x"),
        ]
    print(_table(summary))
    load = os.getloadavg()
    print(
        f"\nload average after the pipeline: {load_mid[0]:.2f} {load_mid[1]:.2f} {load_mid[2]:.2f};"
        f" after the per-sample run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
