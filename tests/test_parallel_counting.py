"""Counting in forked worker processes: same counts as in one process, errors, the shared cache."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.test_counting import DENSE, DEPENDENT, dense_flops, write_model
from worker import cost_job
from worker.counting import (
    CountPool,
    ModelFileError,
    ShapeCount,
    StaticCostResult,
    count_dynamic,
    count_static,
    load_model_file,
)
from worker.counting.forkpool import ForkPool, RemoteTracebackError, WorkerDiedError

TIMINGS = ("fvcore_seconds", "cross_check_seconds")

# The first counter (per distinct shape, in the sandbox) no longer counts submissions
# (worker/capture.py + worker/graphcount do); it stays for bench/bench_counting.py's
# side-by-side comparison, so its tests run with the slow ones.
pytestmark = pytest.mark.slow


def _plain(count: ShapeCount) -> dict[str, Any]:
    """A count without its timings (the only fields that differ between two runs)."""
    return {k: v for k, v in count.as_dict().items() if k not in TIMINGS}


def _static_plain(result: StaticCostResult) -> dict[str, Any]:
    out = result.as_dict()
    out.pop("seconds")
    out["counts"] = [_plain(c) for c in result.counts]
    return out


# --------------------------------------------------------------------------------------------
# The pool itself

_MARK = {"value": "parent"}


def _mark_child() -> None:
    _MARK["value"] = "worker"


def _whoami(x: int) -> tuple[int, int, str]:
    return x * x, os.getpid(), _MARK["value"]


def test_pool_returns_results_in_input_order() -> None:
    with ForkPool(_whoami, 2, init=_mark_child) as pool:
        out = pool.map(list(range(20)), order=list(reversed(range(20))))
        again = pool.map([3, 4])
    assert [x for x, _, _ in out] == [i * i for i in range(20)]
    pids = {pid for _, pid, _ in out}
    assert len(pids) == 2  # both workers took items
    assert os.getpid() not in pids
    assert {mark for _, _, mark in out} == {"worker"}  # init ran in each worker
    assert {pid for _, pid, _ in again} <= pids  # the same workers, kept between maps
    with pytest.raises(ValueError, match="permutation"):
        ForkPool(_whoami, 2).map([1, 2], order=[0, 0])


def test_one_worker_runs_in_this_process() -> None:
    seen: list[tuple[int, int]] = []
    with ForkPool(_whoami, 1, init=_mark_child) as pool:
        out = pool.map([1, 2, 3], progress=lambda done, total: seen.append((done, total)))
    assert {pid for _, pid, _ in out} == {os.getpid()}
    assert seen == [(1, 3), (2, 3), (3, 3)]


def _fails_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd item {x}")
    return x


def test_pool_raises_the_first_failed_items_error_with_its_traceback() -> None:
    """Whichever failure is seen first, the error raised is the one a loop would raise."""
    with ForkPool(_fails_on_odd, 2) as pool:
        for _ in range(3):
            with pytest.raises(ValueError, match="odd item 3") as info:
                pool.map([0, 2, 4, 3, 6, 5, 8, 7], order=[7, 6, 5, 4, 3, 2, 1, 0])
            assert isinstance(info.value.__cause__, RemoteTracebackError)
            assert "_fails_on_odd" in str(info.value.__cause__)
        assert pool.map([2, 4]) == [2, 4]  # still usable


def _dies(x: int) -> int:
    if x == 3:
        os._exit(7)
    if x == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@pytest.mark.parametrize(("item", "how"), [(3, "exited with code 7"), (4, "signal SIGKILL")])
def test_a_dead_worker_is_reported(item: int, how: str) -> None:
    pool: ForkPool[int, int] = ForkPool(_dies, 2)
    with pytest.raises(WorkerDiedError, match=how) as info:
        pool.map([0, 1, item, 2])
    assert info.value.index == 2
    with pytest.raises(RuntimeError, match="closed"):
        pool.map([0, 1])


# --------------------------------------------------------------------------------------------
# Counting


@pytest.mark.parametrize("source", [DENSE, DEPENDENT], ids=["dense", "content-dependent"])
def test_parallel_static_counts_equal_serial(tmp_path: Path, source: str) -> None:
    loaded = load_model_file(write_model(tmp_path, source))
    lengths = [5, 5, 7, 5, 7, 9, 12, 3, 3, 12, 9, 9]
    segments = [2, None, 3, 1, 0, 4, 6, 1, 2, None, 3, 3]
    ids = [[(7 * i + j) % 50 for j in range(n)] for i, n in enumerate(lengths)]
    serial = count_static(loaded, lengths, token_ids=ids, first_segments=segments)
    with CountPool(loaded, workers=2) as pool:
        parallel = count_static(loaded, lengths, token_ids=ids, first_segments=segments, pool=pool)
        assert pool.workers == 2
    assert _static_plain(parallel) == _static_plain(serial)
    assert parallel.per_sample_flops == serial.per_sample_flops
    if source == DENSE:
        assert parallel.per_sample_flops == [dense_flops(n) for n in lengths]
        assert not parallel.content_dependent
    else:
        assert parallel.content_dependent
        assert parallel.per_sample_counted


MODULES = """
import torch
from torch import nn

class Layer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        return torch.matmul(self.lin(x).softmax(-1), x.transpose(-1, -2)) @ x

emb = nn.Embedding(100, 8)
layers = [Layer(8) for _ in range(3)]
heads = [nn.Linear(8, 2) for _ in range(3)]
entire_model = nn.ModuleList([emb, *layers, *heads])
module_list = {"emb": emb}
module_list.update({f"layer_{i + 1}": m for i, m in enumerate(layers)})
module_list.update({f"exit_{i + 1}": m for i, m in enumerate(heads)})
"""


def test_parallel_dynamic_counts_equal_serial(tmp_path: Path) -> None:
    loaded = load_model_file(write_model(tmp_path, MODULES))
    paths = [
        [("emb", (n,)), *[(f"layer_{i}", (n, 8)) for i in range(1, k + 1)], (f"exit_{k}", (8,))]
        for n, k in [(4, 1), (6, 3), (4, 2), (9, 3), (6, 1), (11, 2)]
    ]
    serial = count_dynamic(loaded, paths)
    with CountPool(loaded, workers=2) as pool:
        parallel = count_dynamic(loaded, paths, pool=pool)
    assert parallel.per_sample_flops == serial.per_sample_flops
    assert [_plain(c) for c in parallel.counts] == [_plain(c) for c in serial.counts]
    assert parallel.n_counts == serial.n_counts == len({s for p in paths for s in p})


def test_cache_is_shared_across_tasks(tmp_path: Path) -> None:
    """Two test sets with overlapping lengths: each length is counted once; each set still has
    its content checks, compared with the shared counts."""
    loaded = load_model_file(write_model(tmp_path, DENSE))
    first, second = [5, 7, 9, 5, 7, 9, 7], [7, 9, 11, 13, 9, 11, 13, 13]
    cache: dict[Any, ShapeCount] = {}
    with CountPool(loaded, workers=2) as pool:
        a = count_static(loaded, first, cache=cache, pool=pool)
        b = count_static(loaded, second, cache=cache, pool=pool)
    assert (a.n_new_traces, b.n_new_traces) == (3, 2)
    assert a.n_new_traces + b.n_new_traces == len(set(first) | set(second)) == len(cache)
    assert (a.n_traces, b.n_traces) == (3, 4)  # the counts each array rests on
    assert a.n_check_traces == b.n_check_traces == 6
    assert [c.length for c in b.content_checks] == [7, 13, 11]
    assert b.per_sample_flops == [dense_flops(n) for n in second]
    # the counts of the second set's known lengths are the very ones made for the first
    assert b.counts[0] is cache[("entire_model", (7,))] is a.counts[1]


FAILS_AT_7 = """
import torch
from torch import nn

class Picky(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 4)

    def forward(self, input_ids):
        if input_ids.shape[1] == 7:
            raise RuntimeError("seven tokens are too many")
        return self.emb(input_ids).sum()

entire_model = Picky()
"""


def test_model_error_in_a_worker_is_the_model_files(tmp_path: Path) -> None:
    loaded = load_model_file(write_model(tmp_path, FAILS_AT_7))
    with (
        CountPool(loaded, workers=2) as pool,
        pytest.raises(ModelFileError, match=r"entire_model at input shape \(7,\)") as info,
    ):
        count_static(loaded, [3, 7, 5, 9, 4], pool=pool)
    assert "seven tokens are too many" in str(info.value.problems[0])


KILLS_ITSELF = """
import os, signal
import torch
from torch import nn

class Doomed(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, input_ids):
        if input_ids.shape[1] == 6:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.lin(input_ids.float()[..., None].expand(-1, -1, 4))

entire_model = Doomed()
"""


def test_worker_killed_during_a_count(tmp_path: Path) -> None:
    loaded = load_model_file(write_model(tmp_path, KILLS_ITSELF))
    with (
        CountPool(loaded, workers=2) as pool,
        pytest.raises(ModelFileError, match=r"input shape \(6,\).*SIGKILL"),
    ):
        count_static(loaded, [3, 6, 5, 9, 4], pool=pool)


# --------------------------------------------------------------------------------------------
# The in-sandbox entry point (run here, without the sandbox)


def test_cost_job_counts_each_length_once_in_parallel(tmp_path: Path) -> None:
    model = write_model(tmp_path, DENSE)
    tasks = {"a": [5, 7, 9, 5, 7, 9, 7], "b": [7, 9, 11, 13, 9, 11, 13, 13], "c": [5, 9, 9]}
    entries = [
        {"key": f"static:{name}", "kind": "static", "lengths": lengths}
        for name, lengths in tasks.items()
    ]
    job = {"model": str(model), "threads": 2, "entries": entries}
    threads = torch.get_num_threads()
    try:
        out = {w: cost_job.run({**job, "workers": w}) for w in (1, 2)}
    finally:
        torch.set_num_threads(threads)
    assert out[1]["workers"] == 1
    assert out[2]["workers"] == 2
    for key in out[1]["entries"]:
        one, two = out[1]["entries"][key], out[2]["entries"][key]
        assert two["per_sample_flops"] == one["per_sample_flops"]
        assert {k: v for k, v in two.items() if k != "seconds"} == {
            k: v for k, v in one.items() if k != "seconds"
        }
    new = [out[2]["entries"][f"static:{name}"]["n_new_traces"] for name in tasks]
    assert new == [3, 2, 0]
    assert sum(new) == len({n for lengths in tasks.values() for n in lengths})
    json.dumps(out[2])
