"""The FIRST counter's sandbox entry point, kept for bench/bench_counting.py's comparison only.

Submissions are captured by `worker/capture.py` and counted by `worker/graphcount` instead: this
process counted in the same interpreter as the model file, so its numbers could be bent.

    python -m worker.cost_job /job/job.json

The job file (written by the worker, read-only here) names the model file and, per entry, the
inputs: token lengths (and ids) of a task's test set for static models, module paths for ELUE
`modules` files, or exit layers plus lengths for the exit-layer shorthand. One count cache is
shared by every entry, so a (module, shape) is counted once per submission. Nothing here sees
labels, the database or the network.

Counts on the CPU are made by `workers` processes forked once the model is loaded (job key
"workers"; default: one per CPU this process may use), which share its memory; "threads" is
the number of torch threads of the whole job, split between them (at least one each).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.capture import error_payload

if TYPE_CHECKING:
    from worker.counting import CountPool, LoadedModel

JOB_VERSION = 1
MAX_BREAKDOWN_KEYS = 200


def _weighted(
    counts: Sequence[Any], weights: Sequence[float], field: str, n: int
) -> dict[str, float]:
    """Per-sample mean of a per-count breakdown (by_operator, by_module, uncounted)."""
    total: Counter[str] = Counter()
    for count, weight in zip(counts, weights, strict=True):
        for key, value in getattr(count, field).items():
            total[key] += value * weight
    top = total.most_common(MAX_BREAKDOWN_KEYS)
    return {k: v / n for k, v in top} if n else {}


def _summarise(result: Any, weights: Sequence[float], n: int) -> dict[str, Any]:
    counts = result.counts
    return {
        "per_sample_flops": result.per_sample_flops,
        "per_sample_flops_without_norm": result.per_sample_flops_without_norm,
        "per_operator": _weighted(counts, weights, "by_operator", n),
        "per_module": _weighted(counts, weights, "by_module", n),
        "uncounted": _weighted(counts, weights, "uncounted", n),
        "n_counts": len(counts),
        "all_agree": bool(result.all_agree),
        "disagreements": [
            {
                "module": c.module,
                "shape": list(c.shape),
                "flops": c.compared_flops,
                "cross_check": c.cross_check_flops,
            }
            for c in counts
            if not c.agrees
        ][:50],
        "seconds": result.seconds,
    }


def _static_weights(result: Any, lengths: Sequence[int]) -> list[float]:
    if result.per_sample_counted:
        return [1.0] * len(result.counts)
    per_length = Counter(int(n) for n in lengths)
    return [float(per_length[c.shape[0]]) for c in result.counts]


def _path_weights(
    result: Any, paths: Sequence[Sequence[tuple[str, tuple[int, ...]]]]
) -> list[float]:
    uses: Counter[tuple[str, tuple[int, ...]]] = Counter()
    for path in paths:
        for name, shape in path:
            uses[(name, tuple(int(s) for s in shape))] += 1
    return [float(uses[(c.module, tuple(c.shape))]) for c in result.counts]


def run(job: dict[str, Any]) -> dict[str, Any]:
    import fvcore
    import torch

    from worker.counting import CountPool, available_cpus, count_parameters, load_model_file

    start = time.perf_counter()
    device = job.get("device", "cpu")
    threads = max(1, int(job.get("threads", 1)))
    workers = max(1, int(job.get("workers") or available_cpus())) if device == "cpu" else 1
    # Forked workers each get their share of the threads; this process only coordinates, and
    # starts no thread pool before forking.
    torch.set_num_threads(1 if workers > 1 else threads)
    loaded = load_model_file(Path(job["model"]))
    loaded_at = time.perf_counter()
    with CountPool(loaded, workers, threads=max(1, threads // workers)) as pool:
        out = _count_entries(job["entries"], loaded, device, pool)
    return {
        "ok": True,
        "version": JOB_VERSION,
        "params": count_parameters(loaded.entire_model),
        "device": device if device == "cpu" else torch.cuda.get_device_name(0),
        "versions": {
            "torch": torch.__version__,
            "fvcore": getattr(fvcore, "__version__", "unknown"),
        },
        "notes": list(loaded.notes),
        "entries": out,
        "workers": workers,
        "load_seconds": loaded_at - start,
        "seconds": time.perf_counter() - start,
    }


def _count_entries(
    entries: Sequence[dict[str, Any]], loaded: LoadedModel, device: str, pool: CountPool
) -> dict[str, Any]:
    from worker.counting import count_dynamic, count_static, exit_layer_paths, infer_hidden_size

    cache: dict[Any, Any] = {}
    static_cache: dict[Any, Any] = {}
    out: dict[str, Any] = {}
    hidden: int | None = None
    for entry in entries:
        kind = entry["kind"]
        if kind == "static":
            lengths = entry["lengths"]
            result = count_static(
                loaded,
                lengths,
                token_ids=entry.get("token_ids"),
                first_segments=entry.get("first_segments"),
                device=device,
                cache=static_cache,
                pool=pool,
            )
            summary = _summarise(result, _static_weights(result, lengths), len(lengths))
            summary.update(
                content_dependent=result.content_dependent,
                per_sample_counted=result.per_sample_counted,
                n_traces=result.n_traces,
                n_new_traces=result.n_new_traces,
                n_check_traces=result.n_check_traces,
            )
        else:
            if kind == "exit_layer":
                if hidden is None:
                    hidden = infer_hidden_size(loaded)
                paths = exit_layer_paths(entry["exit_layers"], entry["lengths"], hidden)
            else:
                paths = [[(name, tuple(shape)) for name, shape in path] for path in entry["paths"]]
            dynamic = count_dynamic(loaded, paths, device=device, cache=cache, pool=pool)
            summary = _summarise(dynamic, _path_weights(dynamic, paths), len(paths))
            summary.update(
                content_dependent=False,
                per_sample_counted=False,
                n_traces=dynamic.n_counts,
                n_new_traces=dynamic.n_counts,
            )
        out[entry["key"]] = summary
    return out


def main(argv: Sequence[str]) -> int:
    # User code may print: keep the real stdout for the result, send everything else to stderr.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        job = json.loads(Path(argv[1]).read_text())
        payload = run(job)
        code = 0
    except Exception as exc:
        payload = error_payload(exc)
        code = 3
    real_stdout.write(json.dumps(payload))
    real_stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
