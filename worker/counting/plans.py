"""Per-sample costs of a test set: static models (one cost per length) and module paths."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from core.errors import Problem
from worker.counting.count import (
    ShapeCount,
    count_call,
    count_module,
    output_tensors,
    warm_up,
)
from worker.counting.forkpool import ForkPool, WorkerDiedError
from worker.counting.loading import (
    ENTIRE_MODEL,
    LoadedModel,
    ModelFileError,
    model_call,
    module_call,
)

Shape = tuple[int, ...]
PathStep = tuple[str, Shape]
CountCache = MutableMapping[tuple[str, Shape], ShapeCount]


@dataclass(frozen=True, slots=True)
class CountRequest:
    """One count, described as plain data (it travels to a worker process).

    module None: `entire_model` on one sample of shape[0] tokens (its `token_ids` and
    `first_segment` when given, else random ids drawn with `seed`); otherwise the module_list
    entry `module` on the input the contract builds for `shape` (see `count_module`).
    """

    module: str | None
    shape: Shape
    seed: int = 0
    token_ids: tuple[int, ...] | None = None
    first_segment: int | None = None
    device: str = "cpu"
    cross_check: bool = True

    def describe(self) -> str:
        return f"{self.module or ENTIRE_MODEL} at input shape {self.shape}"


def run_request(loaded: LoadedModel, request: CountRequest) -> ShapeCount:
    """Make one count (fvcore, cross-checked by FlopCounterMode) in this process."""
    if request.module is None:
        length = request.shape[0]
        ids = torch.tensor(request.token_ids) if request.token_ids is not None else None
        call = model_call(
            loaded, length, seed=request.seed, token_ids=ids, first_segment=request.first_segment
        )
        return count_call(
            loaded,
            loaded.entire_model,
            ENTIRE_MODEL,
            (length,),
            call,
            device=request.device,
            cross_check=request.cross_check,
        )
    return count_module(
        loaded,
        request.module,
        request.shape,
        device=request.device,
        cross_check=request.cross_check,
    )


class CountPool:
    """Makes counts for one loaded model: in this process (workers=1), or in `workers`
    processes forked from this one once the model is loaded (default: one per available CPU),
    each with `threads` torch threads. Every count is the same whichever process makes it;
    `map` returns them in request order. Counts on a GPU are always made in this process.
    Close it (or use it as a context manager) to stop the workers.
    """

    def __init__(self, loaded: LoadedModel, workers: int | None = None, *, threads: int = 1):
        self.loaded = loaded
        self.threads = max(1, int(threads))
        self._pool: ForkPool[CountRequest, ShapeCount] = ForkPool(
            self._run, workers, init=self._init, before_fork=warm_up
        )

    @property
    def workers(self) -> int:
        return self._pool.workers

    def _run(self, request: CountRequest) -> ShapeCount:
        return run_request(self.loaded, request)

    def _init(self) -> None:
        torch.set_num_threads(self.threads)

    def __enter__(self) -> CountPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def map(
        self,
        requests: Sequence[CountRequest],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[ShapeCount]:
        if any(r.device != "cpu" for r in requests):
            out = []
            for done, request in enumerate(requests, start=1):
                out.append(self._run(request))
                if progress is not None:
                    progress(done, len(requests))
            return out
        # the biggest inputs first, so that no worker is left with a long count at the end
        order = sorted(range(len(requests)), key=lambda i: -math.prod(requests[i].shape))
        try:
            return self._pool.map(requests, order=order, progress=progress)
        except WorkerDiedError as exc:
            what = requests[exc.index].describe()
            raise ModelFileError(
                f"counting {what}: {exc}",
                [Problem(f"counting {what}: {exc}", file=self.loaded.path.name)],
            ) from exc


@dataclass(frozen=True, slots=True)
class ContentCheck:
    """Counts of several samples of one length with different token ids."""

    length: int
    flops: list[int]
    cross_check_flops: list[int | None]

    @property
    def consistent(self) -> bool:
        return len(set(self.flops)) == 1 and len(set(self.cross_check_flops)) == 1


@dataclass(frozen=True, slots=True)
class StaticCostResult:
    """Per-sample cost of `entire_model` over a test set given its token lengths.

    per_sample_flops[i]: FLOPs (2 x MACs, LayerNorm included as fvcore costs it) of sample i;
    per_sample_flops_without_norm[i]: the same without normalisation layers (ELUE closed form).
    counts: one ShapeCount per distinct length (content-independent model), or one per sample
    (content-dependent model, `per_sample_counted` true). n_traces: counts the array rests on
    (len(counts)), cached ones included; n_new_traces: those made by this call (cache hits
    excluded); n_check_traces: counts made to test content independence (a check count made
    on a test-set sample is reused for that sample when the model turns out content-dependent).
    """

    per_sample_flops: list[int]
    per_sample_flops_without_norm: list[int]
    mean_flops: float
    counts: list[ShapeCount]
    content_dependent: bool
    per_sample_counted: bool
    content_checks: list[ContentCheck]
    n_traces: int
    n_check_traces: int
    all_agree: bool
    uncounted_mean: dict[str, float]
    seconds: float
    n_new_traces: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DynamicCostResult:
    """Per-sample cost of module paths: sum of each listed module's cost at its shape.

    counts: one ShapeCount per distinct (module, shape), in first-seen order; n_counts is the
    number of counts made in this call (cached ones excluded).
    """

    per_sample_flops: list[int]
    per_sample_flops_without_norm: list[int]
    mean_flops: float
    counts: list[ShapeCount]
    n_counts: int
    all_agree: bool
    uncounted_mean: dict[str, float]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _uncounted_mean(per_sample: Sequence[ShapeCount | Sequence[ShapeCount]]) -> dict[str, float]:
    total: Counter[str] = Counter()
    for item in per_sample:
        for count in [item] if isinstance(item, ShapeCount) else item:
            total.update(count.uncounted)
    n = max(len(per_sample), 1)
    return {k: v / n for k, v in sorted(total.items())}


def _check_lengths(distinct: Sequence[int], how_many: int) -> list[int]:
    """Up to `how_many` lengths spread over the distinct ones: shortest, longest, median..."""
    if how_many <= 0 or not distinct:
        return []
    ordered = sorted(distinct)
    picks = [ordered[0], ordered[-1], ordered[len(ordered) // 2]]
    idx = np.linspace(0, len(ordered) - 1, num=min(how_many, len(ordered))).round().astype(int)
    picks += [ordered[int(i)] for i in idx]
    out: list[int] = []
    for length in picks:
        if length not in out:
            out.append(length)
    return out[:how_many]


def count_static(
    loaded: LoadedModel,
    lengths: Sequence[int],
    *,
    token_ids: Sequence[Sequence[int]] | None = None,
    first_segments: Sequence[int | None] | None = None,
    device: str = "cpu",
    check_lengths: int = 3,
    check_samples: int = 2,
    cross_check: bool = True,
    cache: CountCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    pool: CountPool | None = None,
) -> StaticCostResult:
    """Cost of `entire_model` on every sample, counting once per distinct length.

    lengths[i]: tokens of sample i. token_ids (optional, real ids per sample) are used where
    given, random ids otherwise; first_segments[i]: tokens of the first segment of a pair.
    Content independence is tested on `check_lengths` lengths (shortest, longest, middle):
    `check_samples` more samples of each length are counted with other ids (the test set's own
    samples of that length first, then random ids) and compared with the length's count (made
    here, or taken from the cache). If any count differs, the model is content-dependent and
    every sample is counted on its own ids. `cache` maps ("entire_model", (L,)) to counts kept
    between calls (only trusted, and only filled, for content-independent models).
    `progress(done, total)` is called after each count. `pool` makes the counts (in parallel
    when it has several workers); without one they are made here, one after the other.
    """
    start = time.perf_counter()
    lengths = [int(n) for n in lengths]
    if any(n < 1 for n in lengths):
        raise ValueError("every length must be >= 1")
    if token_ids is not None and len(token_ids) != len(lengths):
        raise ValueError("token_ids must have one entry per sample")
    if first_segments is not None and len(first_segments) != len(lengths):
        raise ValueError("first_segments must have one entry per sample")
    cache = cache if cache is not None else {}
    counter = pool if pool is not None else CountPool(loaded, workers=1)

    samples_of: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        samples_of.setdefault(n, []).append(i)
    distinct = list(samples_of)
    checks = _check_lengths(distinct, check_lengths)

    def request(i: int | None, length: int, seed: int) -> CountRequest:
        ids = split = None
        if i is not None:
            ids = tuple(int(t) for t in token_ids[i]) if token_ids is not None else None
            split = first_segments[i] if first_segments is not None else None
        return CountRequest(
            None,
            (length,),
            seed=seed,
            token_ids=ids,
            first_segment=split,
            device=device,
            cross_check=cross_check,
        )

    per_length: dict[int, ShapeCount] = {}
    # counts made on a test-set sample's own input (its ids, or random ids seeded by its index)
    by_sample: dict[int, ShapeCount] = {}
    # one count per length the cache does not hold, on the first sample of that length...
    firsts: list[tuple[int, int]] = []
    for length in distinct:
        key = (ENTIRE_MODEL, (length,))
        if key in cache:
            per_length[length] = cache[key]
        else:
            firsts.append((length, samples_of[length][0]))
    # ...and the content checks: other samples of the check lengths (then random ids, seeds
    # beyond any sample index). Independent of each other: made together.
    check_plan: list[tuple[int, int | None, int]] = []  # (length, sample, seed)
    for length in checks:
        others = samples_of[length][1 : 1 + check_samples]
        for j in range(check_samples):
            if j < len(others):
                check_plan.append((length, others[j], others[j]))
            else:
                check_plan.append((length, None, len(lengths) + 1000 * j + length))
    counted = counter.map(
        [request(i, length, seed=i) for length, i in firsts]
        + [request(i, length, seed) for length, i, seed in check_plan],
        progress=progress,
    )
    for (length, first), result in zip(firsts, counted[: len(firsts)], strict=True):
        per_length[length] = by_sample[first] = result
    check_counts: dict[int, list[ShapeCount]] = {length: [per_length[length]] for length in checks}
    for (length, sample, _), result in zip(check_plan, counted[len(firsts) :], strict=True):
        check_counts[length].append(result)
        if sample is not None:
            by_sample[sample] = result
    content_checks = [
        ContentCheck(
            length,
            [c.flops for c in check_counts[length]],
            [c.cross_check_flops for c in check_counts[length]],
        )
        for length in checks
    ]
    dependent = not all(c.consistent for c in content_checks)

    n_new = len(firsts)
    if dependent:
        rest = [i for i in range(len(lengths)) if i not in by_sample]
        n_new += len(rest)
        made = len(counted)

        def more_progress(done: int, total: int) -> None:
            if progress is not None:
                progress(made + done, made + total)

        more = counter.map([request(i, lengths[i], seed=i) for i in rest], more_progress)
        by_sample.update(zip(rest, more, strict=True))
        per_sample = [by_sample[i] for i in range(len(lengths))]
        counts_out = per_sample
    else:
        for length, result in per_length.items():
            cache[(ENTIRE_MODEL, (length,))] = result
        per_sample = [per_length[n] for n in lengths]
        counts_out = [per_length[n] for n in distinct]

    flops = [c.flops for c in per_sample]
    return StaticCostResult(
        per_sample_flops=flops,
        per_sample_flops_without_norm=[c.flops_without_norm for c in per_sample],
        mean_flops=float(np.mean(flops)) if flops else 0.0,
        counts=counts_out,
        content_dependent=dependent,
        per_sample_counted=dependent,
        content_checks=content_checks,
        n_traces=len(counts_out),
        n_check_traces=len(check_plan),
        all_agree=all(c.agrees for c in counts_out),
        uncounted_mean=_uncounted_mean(per_sample),
        seconds=round(time.perf_counter() - start, 6),
        n_new_traces=n_new,
    )


def _validate_paths(loaded: LoadedModel, paths: Sequence[Sequence[PathStep]]) -> None:
    problems: list[Problem] = []
    for i, path in enumerate(paths):
        if not path:
            problems.append(Problem(f"sample {i}: empty module path", column="modules"))
        for name, shape in path:
            if name not in loaded.module_list:
                problems.append(
                    Problem(f"sample {i}: module {name!r} is not in module_list", column="modules")
                )
            if not shape or any(int(s) < 1 for s in shape):
                problems.append(Problem(f"sample {i}: bad shape {shape!r}", column="modules"))
        if len(problems) >= 20:
            break
    if problems:
        known = ", ".join(sorted(loaded.module_list)) or "none"
        raise ModelFileError(
            f"module paths do not match the model file's module_list (it has: {known})",
            problems,
        )


def count_dynamic(
    loaded: LoadedModel,
    paths: Sequence[Sequence[PathStep]],
    *,
    device: str = "cpu",
    cross_check: bool = True,
    cache: CountCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    pool: CountPool | None = None,
) -> DynamicCostResult:
    """Cost of each sample's module path (ELUE `modules` column), counting each distinct
    (module, shape) once. `cache` keeps counts between calls (e.g. several prediction files
    of one model). `pool` makes the counts (see `count_static`)."""
    start = time.perf_counter()
    _validate_paths(loaded, paths)
    cache = cache if cache is not None else {}
    distinct: dict[tuple[str, Shape], None] = {}
    for path in paths:
        for name, shape in path:
            distinct[(name, tuple(int(s) for s in shape))] = None
    todo = [key for key in distinct if key not in cache]
    counter = pool if pool is not None else CountPool(loaded, workers=1)
    requests = [
        CountRequest(name, shape, device=device, cross_check=cross_check) for name, shape in todo
    ]
    for key, result in zip(todo, counter.map(requests, progress=progress), strict=True):
        cache[key] = result

    per_sample_counts = [
        [cache[(name, tuple(int(s) for s in shape))] for name, shape in path] for path in paths
    ]
    flops = [sum(c.flops for c in path) for path in per_sample_counts]
    counts = [cache[key] for key in distinct]
    return DynamicCostResult(
        per_sample_flops=flops,
        per_sample_flops_without_norm=[
            sum(c.flops_without_norm for c in path) for path in per_sample_counts
        ],
        mean_flops=float(np.mean(flops)) if flops else 0.0,
        counts=counts,
        n_counts=len(todo),
        all_agree=all(c.agrees for c in counts),
        uncounted_mean=_uncounted_mean(per_sample_counts),
        seconds=round(time.perf_counter() - start, 6),
        notes=list(loaded.notes),
    )


def infer_hidden_size(loaded: LoadedModel, emb: str = "emb", length: int = 4) -> int:
    """Hidden size: last dimension of the embedding module's output on `length` tokens."""
    module = loaded.module(emb)
    call = module_call(loaded, emb, (length,))
    module.eval()
    with torch.no_grad():
        out = output_tensors(module(*call.args))
    if not out or out[0].dim() < 1:
        raise ModelFileError(
            f"module {emb!r} returned no tensor; cannot infer the hidden size",
            [Problem(f"{emb!r} returned no tensor", file=loaded.path.name)],
        )
    return int(out[0].shape[-1])


def exit_layer_paths(
    exit_layers: Sequence[int],
    lengths: Sequence[int],
    hidden: int,
    *,
    emb: str = "emb",
    layer: str = "layer_{}",
    exit: str = "exit_{}",
    exit_input: str = "cls",
) -> list[list[PathStep]]:
    """Module paths for the exit-layer shorthand: a sample of L tokens that exits after layer k
    ran emb at (L), then layer_i at (L, hidden) and exit_i for every i <= k (each head ran to
    decide whether to exit). exit_input "cls": exit heads take (hidden); "sequence": (L, hidden).
    """
    if len(exit_layers) != len(lengths):
        raise ValueError("exit_layers and lengths must have one entry per sample")
    if exit_input not in ("cls", "sequence"):
        raise ValueError("exit_input must be 'cls' or 'sequence'")
    paths: list[list[PathStep]] = []
    for k, n in zip(exit_layers, lengths, strict=True):
        if k < 1:
            raise ValueError(f"exit layer must be >= 1, got {k}")
        head: Shape = (hidden,) if exit_input == "cls" else (n, hidden)
        path: list[PathStep] = [(emb, (n,))]
        for i in range(1, k + 1):
            path.append((layer.format(i), (n, hidden)))
            path.append((exit.format(i), head))
        paths.append(path)
    return paths
