"""The trusted runner of verified entries: run the captured graph with the submitted weights.

    python -m worker.verify /job/job.json        (inside the sandbox: no network, no gold)

No submitted Python runs in this process. It reads three things: the graph the capture produced
(operator names and wiring, `worker.graphcount.graph.Capture`), the weights file (safetensors:
tensors only, no pickle) and the test inputs tokenised by the platform. It runs the graph's
operators itself, node by node (`graph.resolve` accepts ATen/prims operators and size arithmetic,
nothing else), on every sample of every entry: samples of one length are run together (the
batch-1 graph mapped over them with `torch.func.vmap`, no padding, so a sample's output does not
depend on its batch), on the GPU when the job says so. For a module path (early exit) only the
nodes the exit's output depends on run: the declared path, as the cost counted it.

It writes, after a marker on the descriptor that was standard output, each sample's output
vector (the values the prediction is read from), a small latency measurement at batch size 1,
the peak memory and the hardware. It never sees the predictions or the gold labels: the
comparison is made outside (`worker.verification`).
"""

from __future__ import annotations

import base64
import json
import os
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from worker.capture import emit, error_payload
from worker.graphcount.count import graph_calls, map_module_calls
from worker.graphcount.graph import Capture, CaptureFormatError, Graph, decode, dtype_of, resolve

VERIFY_MARKER = b"\n--paretoboard-verify--\n"
MAX_WIDTH = 64  # values per sample read from an output
LATENCY_REPEATS = 5
LATENCY_SAMPLES = 3  # samples per entry timed at batch size 1 (10th, 50th, 90th length pct.)


class RunError(Exception):
    """The graph cannot be run as asked; `message` says why (the submitter's to fix)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- the program: graph + tensors --------------------------------------------------------------


def _refs(value: Any, out: set[str]) -> None:
    if isinstance(value, list):
        for v in value:
            _refs(v, out)
    elif isinstance(value, dict):
        if "n" in value and isinstance(value["n"], str):
            out.add(value["n"])
        else:
            for v in value.values():
                if isinstance(v, list | dict):
                    _refs(v, out)


def _value_tensor(item: Any) -> torch.Tensor:
    raw = base64.b64decode(item.value, validate=True)
    dtype = dtype_of(item.dtype)
    shape = [int(s) for s in item.shape]
    store_dtype = torch.uint8 if dtype == torch.bool else dtype
    if raw:
        tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(store_dtype)
    else:
        tensor = torch.empty(0, dtype=store_dtype)
    if tensor.numel() != torch.Size(shape).numel():
        raise CaptureFormatError(f"the captured value of {item.target!r} has the wrong size")
    tensor = tensor.reshape(shape)
    return tensor.to(torch.bool) if dtype == torch.bool else tensor


@dataclass
class Plan:
    """What to run of one graph for one output: the nodes in order, and the output's node."""

    nodes: list[Any]
    output: Any  # a JSON argument (a node reference or a list of them)


class Program:
    """A captured graph bound to weights, runnable on real tensors (no submitted code)."""

    def __init__(
        self, capture: Capture, weights: dict[str, torch.Tensor], device: torch.device
    ) -> None:
        self.capture = capture
        self.device = device
        self.tensors: dict[str, torch.Tensor] = {}  # graph input target -> tensor
        by_storage: dict[int, torch.Tensor] = {}
        for graph in capture.graphs.values():
            for item in graph.inputs:
                if item.kind == "input" or item.target in self.tensors:
                    continue
                tensor = weights.get(item.target)
                if tensor is None and item.storage is not None:
                    tensor = by_storage.get(item.storage)
                if tensor is None and item.value is not None:
                    tensor = _value_tensor(item)
                if tensor is None:
                    raise RunError(
                        f"the weights file has no tensor {item.target!r}, which the graph reads"
                    )
                tensor = tensor.to(device)
                self.tensors[item.target] = tensor
                if item.storage is not None:
                    by_storage.setdefault(item.storage, tensor)
        self._plans: dict[tuple[str, str | None], Plan] = {}
        self._calls: dict[str, Any] = {}

    def graph_key(self, length: int) -> str:
        if "symbolic" in self.capture.graphs:
            return "symbolic"
        if str(length) in self.capture.graphs:
            return str(length)
        raise RunError(f"the capture has no graph for {length} tokens")

    def _call_output(self, graph: Graph, module: str) -> str:
        """The node whose value module_list[module]'s call returns (used outside the call)."""
        order, fqn_of = graph_calls(graph)
        mapping = map_module_calls(self.capture.modules, order, fqn_of)
        if module not in self.capture.modules:
            raise RunError(f"unknown module {module!r} in a path")
        if module in mapping.problems:
            raise RunError(mapping.problems[module])
        key = mapping.calls[module]
        inside = {n.name for n in graph.nodes if any(k == key for k, _ in n.stack)}
        used_outside: set[str] = set()
        for node in graph.nodes:
            if node.name in inside:
                continue
            refs: set[str] = set()
            _refs(node.args, refs)
            _refs(list(node.kw.values()), refs)
            used_outside |= refs & inside
        _refs(graph.outputs or [], refs := set())
        used_outside |= refs & inside
        last = [n.name for n in graph.nodes if n.name in used_outside]
        if not last:
            raise RunError(f"the output of {module} is never used by entire_model")
        return last[-1]

    def plan(self, key: str, module: str | None) -> Plan:
        found = self._plans.get((key, module))
        if found is not None:
            return found
        graph = self.capture.graphs[key]
        output: Any = (
            graph.outputs or [] if module is None else {"n": self._call_output(graph, module)}
        )
        needed: set[str] = set()
        _refs(output, needed)
        deps: dict[str, set[str]] = {}
        for node in graph.nodes:
            refs: set[str] = set()
            _refs(node.args, refs)
            _refs(list(node.kw.values()), refs)
            deps[node.name] = refs
        _close(needed, deps)
        # An in-place operator (copy_, index_put_, ...) returns nothing anyone reads, but it
        # writes into a tensor that may be read: it runs whenever it touches what is needed.
        inplace = [n for n in graph.nodes if _is_inplace(n.target)]
        changed = True
        while changed:
            changed = False
            for node in inplace:
                if node.name in needed:
                    continue
                if _ancestors(node.name, deps) & needed:
                    needed.add(node.name)
                    _close(needed, deps)
                    changed = True
        nodes = [n for n in graph.nodes if n.name in needed]
        found = self._plans[(key, module)] = Plan(nodes, output)
        return found

    def run_one(self, key: str, plan: Plan, length: int, inputs: dict[str, torch.Tensor]) -> Any:
        """Run `plan` for one sample (inputs of shape (1, L)); the decoded output."""
        graph = self.capture.graphs[key]
        env: dict[str, Any] = {}
        for item in graph.inputs:
            if item.kind == "input":
                env[item.name] = inputs[_input_role(item.target)]
            else:
                env[item.name] = self.tensors[item.target]
        for node in plan.nodes:
            fn = _callable(node.target)
            args = decode(node.args, env, length, self.device)
            kwargs = {k: decode(v, env, length, self.device) for k, v in node.kw.items()}
            env[node.name] = fn(*args, **kwargs)
        return decode(plan.output, env, length, self.device)


ROLES = ("input_ids", "attention_mask", "token_type_ids")
# Size queries, answered from the (per-sample) tensor itself: the same value, and under vmap
# the ATen ops have no batching rule.
_SIZE_QUERIES: dict[str, Any] = {
    "aten.sym_size.int": lambda t, d: t.size(d),
    "aten.sym_numel.default": lambda t: t.numel(),
    "aten.sym_stride.int": lambda t, d: t.stride(d),
    "aten.sym_storage_offset.default": lambda t: t.storage_offset(),
}


def _callable(target: str) -> Any:
    return _SIZE_QUERIES.get(target) or resolve(target)


def _is_inplace(target: str) -> bool:
    parts = target.split(".")
    return len(parts) == 3 and parts[1].endswith("_") and not parts[1].startswith("_")


def _close(needed: set[str], deps: dict[str, set[str]]) -> None:
    """Add to `needed` everything its nodes read, transitively."""
    todo = list(needed)
    while todo:
        for ref in deps.get(todo.pop(), ()):
            if ref not in needed:
                needed.add(ref)
                todo.append(ref)


def _ancestors(name: str, deps: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for ref in deps.get(todo.pop(), ()):
            if ref not in seen:
                seen.add(ref)
                todo.append(ref)
    return seen


def _input_role(target: str) -> str:
    if target == "attention_mask":
        return "attention_mask"
    if target == "token_type_ids":
        return "token_type_ids"
    return "input_ids"


def _pick_exit(output: Any, width: int, module: str | None) -> torch.Tensor:
    """The model's own exit decision: the first integer output with one value (1-based layer)."""
    for o in output if isinstance(output, list | tuple) else [output]:
        if isinstance(o, torch.Tensor) and not o.is_floating_point() and o.numel() == 1:
            if o.dtype == torch.bool:
                continue
            return o.reshape(1).to(torch.float64)
    raise RunError("entire_model's output has no exit decision (an integer tensor)")


def _pick(output: Any, width: int, module: str | None) -> torch.Tensor:
    """The tensor a prediction is read from: the first float output with `width` values."""
    tensors = [
        o
        for o in (output if isinstance(output, list | tuple) else [output])
        if isinstance(o, torch.Tensor)
    ]
    for t in tensors:
        if (t.is_floating_point() or t.dtype == torch.bool) and t.numel() == width:
            return t.reshape(width)
    shapes = ", ".join(str(tuple(t.shape)) for t in tensors) or "none"
    where = f"the output of {module}" if module else "entire_model's output"
    raise RunError(
        f"{where} has no floating-point tensor with {width} value(s) per sample (the task's "
        f"{'labels' if width > 1 else 'score'}); its tensors have shapes {shapes}"
    )


# --- running an entry ------------------------------------------------------------------------


def _sample_inputs(
    ids: Sequence[int], first_segment: int | None, device: torch.device
) -> dict[str, torch.Tensor]:
    x = torch.as_tensor(list(ids), dtype=torch.long, device=device).reshape(1, -1)
    types = torch.zeros_like(x)
    if first_segment is not None and 0 <= first_segment < x.shape[1]:
        types[0, first_segment:] = 1
    return {"input_ids": x, "attention_mask": torch.ones_like(x), "token_type_ids": types}


class Runner:
    def __init__(self, program: Program, *, tokens_per_batch: int, deadline: float) -> None:
        self.program = program
        self.tokens_per_batch = max(1, tokens_per_batch)
        self.deadline = deadline
        self.batched = 0
        self.single = 0

    def _check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RunError("running the graph on every sample took longer than the time limit")

    def run_group(
        self,
        module: str | None,
        length: int,
        samples: list[dict[str, torch.Tensor]],
        width: int,
        pick: Callable[[Any, int, str | None], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Outputs (n, width) for samples of one length that read one output."""
        picker = pick or _pick
        program = self.program
        key = program.graph_key(length)
        plan = program.plan(key, module)
        # One sample first: clear errors (a missing tensor, a wrong width) come from here.
        first = picker(program.run_one(key, plan, length, samples[0]), width, module)
        rows = [first.reshape(1, width)]
        rest = samples[1:]
        step = max(1, self.tokens_per_batch // max(1, length))
        i = 0
        while i < len(rest):
            self._check_time()
            chunk = rest[i : i + step]
            stacked = {role: torch.stack([s[role] for s in chunk]) for role in ROLES}

            def one(
                input_ids: torch.Tensor,
                attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor,
            ) -> torch.Tensor:
                out = program.run_one(
                    key,
                    plan,
                    length,
                    {
                        "input_ids": input_ids,
                        "attention_mask": attention_mask,
                        "token_type_ids": token_type_ids,
                    },
                )
                return picker(out, width, module)

            try:
                out = torch.func.vmap(one)(
                    stacked["input_ids"], stacked["attention_mask"], stacked["token_type_ids"]
                )
                self.batched += len(chunk)
            except RunError:
                raise
            except Exception:  # an operator without a batching rule: one sample at a time
                out = torch.stack(
                    [picker(program.run_one(key, plan, length, s), width, module) for s in chunk]
                )
                self.single += len(chunk)
            rows.append(out.reshape(len(chunk), width))
            i += step
        return torch.cat(rows).to(torch.float64).cpu()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _latency(
    runner: Runner,
    entry: dict[str, Any],
    inputs: dict[str, Any],
    width: int,
    repeats: int,
) -> list[dict[str, Any]]:
    """Batch-1 wall-clock time of a few samples (10th/50th/90th percentile of length)."""
    program = runner.program
    lengths = [len(x) for x in inputs["token_ids"]]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    picks = sorted({order[int(q * (len(order) - 1))] for q in (0.1, 0.5, 0.9)})
    out = []
    for i in picks[:LATENCY_SAMPLES]:
        module = (entry.get("targets") or [None] * len(lengths))[i]
        first = (inputs.get("first_segments") or [None] * len(lengths))[i]
        sample = _sample_inputs(inputs["token_ids"][i], first, program.device)
        key = program.graph_key(lengths[i])
        plan = program.plan(key, module)
        _pick(program.run_one(key, plan, lengths[i], sample), width, module)  # warm-up
        times = []
        for _ in range(repeats):
            _sync(program.device)
            start = time.perf_counter()
            _pick(program.run_one(key, plan, lengths[i], sample), width, module)
            _sync(program.device)
            times.append((time.perf_counter() - start) * 1000.0)
        times.sort()
        out.append(
            {
                "index": i,
                "length": lengths[i],
                "median_ms": statistics.median(times),
                "min_ms": times[0],
                "max_ms": times[-1],
                "repeats": repeats,
            }
        )
    return out


def run_entry(
    runner: Runner, entry: dict[str, Any], inputs: dict[str, Any], *, repeats: int
) -> dict[str, Any]:
    width = int(entry["width"])
    if not 1 <= width <= MAX_WIDTH:
        raise RunError(f"a task with {width} outputs cannot be verified")
    ids: list[list[int]] = inputs["token_ids"]
    firsts = inputs.get("first_segments") or [None] * len(ids)
    targets: list[str | None] = entry.get("targets") or [None] * len(ids)
    if len(targets) != len(ids):
        raise RunError("the entry's paths do not cover every sample")
    groups: dict[tuple[str | None, int], list[int]] = defaultdict(list)
    for i, x in enumerate(ids):
        groups[(targets[i], len(x))].append(i)
    out = torch.zeros((len(ids), width), dtype=torch.float64)
    for (module, length), members in sorted(groups.items(), key=lambda g: (g[0][1], str(g[0][0]))):
        samples = [_sample_inputs(ids[i], firsts[i], runner.program.device) for i in members]
        values = runner.run_group(module, length, samples, width)
        out[torch.as_tensor(members)] = values
    # A NaN or infinite output reproduces no prediction: sent as 0 and listed (the report
    # carries finite numbers only)
    bad = ~torch.isfinite(out).all(dim=1)
    out[bad] = 0.0
    result: dict[str, Any] = {
        "outputs": out.tolist(),
        "nonfinite": [int(i) for i in torch.nonzero(bad).flatten().tolist()],
    }
    if entry.get("targets"):
        derived = _derived_exits(runner, ids, firsts)
        if derived is not None:
            result["derived_exits"] = derived
    if repeats > 0 and ids:
        result["latency"] = _latency(runner, entry, inputs, width, repeats)
    return result


def _derived_exits(
    runner: Runner, ids: list[list[int]], firsts: Sequence[int | None]
) -> list[int] | None:
    """Each sample's exit as the model's own graph decides it (an integer output), if it has one.

    Only a model whose entire_model returns its exit decision as an integer tensor expresses
    its policy in the graph; for the others (None), the declared paths are the submitter's.
    """
    if not ids:
        return None
    device = runner.program.device
    try:
        runner.run_group(
            None, len(ids[0]), [_sample_inputs(ids[0], firsts[0], device)], 1, _pick_exit
        )
    except RunError:
        return None
    groups: dict[int, list[int]] = defaultdict(list)
    for i, x in enumerate(ids):
        groups[len(x)].append(i)
    out = [0] * len(ids)
    for length, members in sorted(groups.items()):
        samples = [_sample_inputs(ids[i], firsts[i], device) for i in members]
        values = runner.run_group(None, length, samples, 1, _pick_exit)
        for i, v in zip(members, values[:, 0].tolist(), strict=True):
            out[i] = int(v)
    return out


def _hardware(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"kind": "gpu", "name": torch.cuda.get_device_name(device), "threads": None}
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"kind": "cpu", "name": name, "threads": torch.get_num_threads()}


def load_weights(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types
        raise RunError(f"the weights file could not be read as safetensors: {exc}") from exc


def verify(job: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    torch.set_num_threads(max(1, int(job.get("threads", 1))))
    device = torch.device("cuda" if job.get("device") == "cuda" else "cpu")
    deadline = time.monotonic() + float(job.get("seconds", 3600))
    capture = Capture.model_validate(json.loads(Path(job["capture"]).read_text()))
    weights = load_weights(Path(job["weights"]), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    entries: dict[str, Any] = {}
    with torch.inference_mode():
        program = Program(capture, weights, device)
        runner = Runner(
            program, tokens_per_batch=int(job.get("tokens_per_batch", 8192)), deadline=deadline
        )
        repeats = int(job.get("latency_repeats", LATENCY_REPEATS))
        for entry in job["entries"]:
            inputs = job["inputs"][entry["task"]]
            try:
                entries[entry["key"]] = run_entry(runner, entry, inputs, repeats=repeats)
            except RunError as exc:
                entries[entry["key"]] = {"error": exc.message}
            except CaptureFormatError as exc:
                entries[entry["key"]] = {"error": f"the graph cannot be run: {exc}"}
    if device.type == "cuda":
        peak = int(torch.cuda.max_memory_allocated(device))
    else:
        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return {
        "ok": True,
        "entries": entries,
        "hardware": _hardware(device),
        "peak_memory_bytes": peak,
        "batched_samples": runner.batched,
        "single_samples": runner.single,
        "seconds": time.perf_counter() - start,
        "versions": {"torch": torch.__version__},
    }


def main(argv: Sequence[str]) -> int:
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        payload = verify(json.loads(Path(argv[1]).read_text()))
        code = 0
    except Exception as exc:
        payload = error_payload(exc)
        code = 3
    emit(out_fd, VERIFY_MARKER, payload)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
