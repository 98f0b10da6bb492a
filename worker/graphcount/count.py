"""From a captured graph to per-sample costs: symbolic totals, module paths, parameters.

Trusted side (never runs submitted code). `count_capture(capture, entries)` returns the cost
report (`jobs.cost_output.CostOutput` as a dict) for a cost job's entries:

- static entries: the graph's cost, a function of the length, at every sample's token count;
- exit-layer and module-path entries: per sample, the module calls on its path (as
  `entire_model`'s graph makes them) plus whatever the graph computes outside every
  `module_list` entry, at the sample's token count. The path is checked against the graph:
  every entry a submodule of `entire_model` called by its forward, the model's own order, no
  module the path's modules depend on left out, and the declared shapes equal to the shapes
  the graph gives at the sample's real token count.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from core.cost_counter import COUNTER_VERSION
from worker.graphcount import rules
from worker.graphcount.graph import (
    Capture,
    CaptureFormatError,
    Graph,
    LengthSpecialisedError,
    Walk,
    walk_graph,
)

MAX_PROBLEMS = 50
MAX_BREAKDOWN = 200
OUTSIDE = "(outside module_list)"


class PathError(Exception):
    """Module paths that do not match the model's graph; `problems` lists them by line."""

    def __init__(self, message: str, problems: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems


@dataclass
class Costs:
    """Symbolic costs of one graph, summed in the ways the report needs."""

    symbol: Any
    full: Any = field(default_factory=lambda: sympy.Integer(0))
    elue: Any = field(default_factory=lambda: sympy.Integer(0))
    by_op: dict[str, Any] = field(default_factory=dict)
    by_top_module: dict[str, Any] = field(default_factory=dict)
    unknown: dict[str, Any] = field(default_factory=dict)
    walk: Walk | None = None

    def call_costs(self, keys: Sequence[str]) -> tuple[Any, Any, dict[str, Any]]:
        """(full, elue, by operator) of everything inside any of `keys`' calls."""
        assert self.walk is not None
        wanted = set(keys)
        full, elue = sympy.Integer(0), sympy.Integer(0)
        by_op: dict[str, Any] = defaultdict(lambda: sympy.Integer(0))
        for (stack, op), cost in self.walk.costs.items():
            if wanted.intersection(stack):
                full += cost.full
                elue += cost.elue
                by_op[op] += cost.full
        return full, elue, dict(by_op)


def _summarise(walk: Walk) -> Costs:
    costs = Costs(symbol=walk.symbol, walk=walk)
    by_op: dict[str, Any] = defaultdict(lambda: sympy.Integer(0))
    by_top: dict[str, Any] = defaultdict(lambda: sympy.Integer(0))
    for (stack, op), cost in walk.costs.items():
        costs.full += cost.full
        costs.elue += cost.elue
        by_op[op] += cost.full
        top = walk.call_fqn.get(stack[1], "") if len(stack) > 1 else ""
        by_top[top or "(top level)"] += cost.full
    costs.by_op = dict(by_op)
    costs.by_top_module = dict(by_top)
    costs.unknown = dict(walk.unknown)
    return costs


class Evaluator:
    """Evaluates expressions of the length at many lengths at once (numpy)."""

    def __init__(self, symbol: Any) -> None:
        self.symbol = symbol
        self._cache: dict[Any, Any] = {}

    def __call__(self, expr: Any, lengths: np.ndarray) -> np.ndarray:
        expr = sympy.sympify(expr)
        free = expr.free_symbols
        if not free:
            return np.full(lengths.shape, float(expr), dtype=np.float64)
        if self.symbol is None or free != {self.symbol}:
            raise CaptureFormatError(
                "a cost depends on sizes the graph computes from the data (e.g. nonzero), "
                "not only on the length"
            )
        fn = self._cache.get(expr)
        if fn is None:
            fn = self._cache[expr] = sympy.lambdify(self.symbol, expr, [_SIZE_FUNCTIONS, "numpy"])
        values = np.asarray(fn(lengths.astype(np.float64)), dtype=np.float64)
        return np.broadcast_to(values, lengths.shape).astype(np.float64)


# torch's own sympy functions on sizes (torch.utils._sympy.functions), for numpy.
_SIZE_FUNCTIONS: dict[str, Any] = {
    "FloorDiv": np.floor_divide,
    "CleanDiv": np.floor_divide,
    "IntTrueDiv": np.true_divide,
    "FloatTrueDiv": np.true_divide,
    "CeilDiv": lambda a, b: -np.floor_divide(-a, b),
    "PythonMod": np.mod,
    "Mod": np.mod,
    "ModularIndexing": lambda a, b, c: np.mod(np.floor_divide(a, b), c),
    "TruncToInt": np.trunc,
    "TruncToFloat": np.trunc,
    "FloorToInt": np.floor,
    "CeilToInt": np.ceil,
    "RoundToInt": np.round,
    "ToFloat": lambda a: a,
    "Identity": lambda a: a,
    "Max": np.maximum,
    "Min": np.minimum,
    "OpaqueUnaryFn_log2": np.log2,
    "OpaqueUnaryFn_sqrt": np.sqrt,
}


@dataclass
class GraphSet:
    """One symbolic graph, or one graph per length (models whose length does not export)."""

    symbolic: Costs | None
    per_length: dict[int, Costs]

    def any(self) -> Costs:
        if self.symbolic is not None:
            return self.symbolic
        return next(iter(self.per_length.values()))

    def all(self) -> list[Costs]:
        return [self.symbolic] if self.symbolic is not None else list(self.per_length.values())


# A graph whose operators choose their work by the length (linalg.multi_dot's order) is walked
# once per distinct length instead, up to this many nodes x lengths.
MAX_PER_LENGTH_WORK = 3_000_000


def walk_capture(capture: Capture, lengths: Sequence[int] = ()) -> GraphSet:
    if "symbolic" in capture.graphs:
        graph = capture.graphs["symbolic"]
        try:
            return GraphSet(_summarise(walk_graph(graph, symbolic=True)), {})
        except LengthSpecialisedError:
            distinct = sorted({int(n) for n in lengths})
            if not distinct or len(distinct) * max(1, len(graph.nodes)) > MAX_PER_LENGTH_WORK:
                raise
            return GraphSet(
                None,
                {n: _summarise(walk_graph(graph, symbolic=False, hint=n)) for n in distinct},
            )
    per_length: dict[int, Costs] = {}
    for key, graph in capture.graphs.items():
        if not key.isdigit():
            raise CaptureFormatError(f"unexpected graph key {key!r}")
        per_length[int(key)] = _summarise(walk_graph(graph, symbolic=False, hint=int(key)))
    if not per_length:
        raise CaptureFormatError("the capture holds no graph")
    return GraphSet(None, per_length)


def _eval_many(graphs: GraphSet, pick: Any, lengths: np.ndarray) -> np.ndarray:
    """pick(costs) -> expr, evaluated per sample (per-length graphs: each its own)."""
    if graphs.symbolic is not None:
        return Evaluator(graphs.symbolic.symbol)(pick(graphs.symbolic), lengths)
    out = np.zeros(lengths.shape, dtype=np.float64)
    for n in np.unique(lengths):
        costs = graphs.per_length.get(int(n))
        if costs is None:
            raise CaptureFormatError(f"the capture has no graph for length {int(n)}")
        out[lengths == n] = float(sympy.sympify(pick(costs)))
    return out


def _mean_breakdown(graphs: GraphSet, table: str, lengths: np.ndarray) -> dict[str, float]:
    names: set[str] = set()
    for costs in graphs.all():
        names.update(getattr(costs, table))
    out: dict[str, float] = {}
    n = max(1, lengths.size)
    for name in names:
        values = _eval_many(graphs, lambda c, k=name: getattr(c, table).get(k, 0), lengths)
        total = float(values.sum()) / n
        if total > 0:
            out[name] = total
    top = sorted(out.items(), key=lambda kv: -kv[1])[:MAX_BREAKDOWN]
    return dict(top)


def _ints(values: np.ndarray) -> list[int]:
    if values.size and not np.all(np.isfinite(values)):
        raise CaptureFormatError("a cost is not a finite number")
    return [int(v) for v in np.rint(values)]


# --- module paths ------------------------------------------------------------------------------


def _natural(name: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


@dataclass
class CallMap:
    """module_list name -> the call of that module in entire_model's graph."""

    calls: dict[str, str]
    problems: dict[str, str]  # name -> why it has no call


def map_calls(capture: Capture, walk: Walk) -> CallMap:
    return map_module_calls(capture.modules, walk.call_order, walk.call_fqn)


def graph_calls(graph: Graph) -> tuple[list[str], dict[str, str]]:
    """Module-call keys in order of their first node, and each key's module path (as a walk)."""
    order: list[str] = []
    fqn_of: dict[str, str] = {}
    for node in graph.nodes:
        for key, fqn in node.stack:
            if key and key not in fqn_of:
                fqn_of[key] = fqn
                order.append(key)
    return order, fqn_of


def map_module_calls(
    modules: dict[str, str | None], call_order: Sequence[str], call_fqn: dict[str, str]
) -> CallMap:
    """module_list name -> its call in entire_model's graph (the i-th call for the i-th name)."""
    by_fqn: dict[str, list[str]] = defaultdict(list)
    for key in call_order:
        by_fqn[call_fqn[key]].append(key)
    names_by_fqn: dict[str, list[str]] = defaultdict(list)
    problems: dict[str, str] = {}
    for name, fqn in modules.items():
        if fqn is None:
            problems[name] = (
                f"module_list[{name!r}] is not a submodule of entire_model: a path's modules "
                "must be the model's own (the same objects)"
            )
        elif fqn == "":
            problems[name] = f"module_list[{name!r}] is entire_model itself"
        else:
            names_by_fqn[fqn].append(name)
    calls: dict[str, str] = {}
    for fqn, names in names_by_fqn.items():
        keys = by_fqn.get(fqn, [])
        for i, name in enumerate(sorted(names, key=_natural)):
            if i < len(keys):
                calls[name] = keys[i]
            else:
                problems[name] = (
                    f"module_list[{name!r}] (entire_model.{fqn}) is never called by "
                    "entire_model.forward"
                    + (f" (or not {i + 1} times)" if keys else "")
                    + ": a path's cost is read from entire_model's graph, so its forward must "
                    "run every module a path may use (the full pass, every exit head included)"
                )
    return CallMap(calls, problems)


def _shape_at(shape: list[Any], length: int) -> tuple[int, ...]:
    return tuple(int(rules.evaluate(s, length)) for s in shape)


@dataclass
class PathPlan:
    """The distinct paths of an entry (as module-call keys), and each sample's path."""

    paths: list[tuple[str, ...]]
    sample_path: np.ndarray


def check_paths(
    capture: Capture,
    costs: Costs,
    names_per_sample: Sequence[Sequence[str]],
    declared: Sequence[Sequence[Sequence[int]] | None] | None,
    lengths: np.ndarray,
    *,
    file_label: str,
) -> PathPlan:
    """Map every sample's path to module calls; PathError listing every problem by line."""
    assert costs.walk is not None
    walk = costs.walk
    mapping = map_calls(capture, walk)
    order = {key: i for i, key in enumerate(walk.call_order)}
    listed = set(mapping.calls.values())
    problems: list[dict[str, Any]] = []
    total_problems = 0
    distinct: dict[tuple[str, ...], int] = {}
    sample_path = np.zeros(len(names_per_sample), dtype=np.int64)
    shape_cache: dict[tuple[str, int], tuple[int, ...]] = {}

    def problem(i: int, text: str) -> None:
        nonlocal total_problems
        total_problems += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(
                {"problem": text, "file": file_label, "line": i + 2, "column": "modules"}
            )

    for i, names in enumerate(names_per_sample):
        keys: list[str] = []
        ok = True
        for j, name in enumerate(names):
            if name not in capture.modules:
                known = ", ".join(sorted(capture.modules, key=_natural)[:30]) or "none"
                problem(i, f"unknown module {name!r} (module_list has: {known})")
                ok = False
                continue
            if name in mapping.problems:
                problem(i, mapping.problems[name])
                ok = False
                continue
            key = mapping.calls[name]
            keys.append(key)
            if declared is not None and declared[i] is not None:
                want = tuple(int(s) for s in declared[i][j])  # type: ignore[index]
                got_key = (key, int(lengths[i]))
                if got_key not in shape_cache:
                    shape = walk.call_input_shape.get(key)
                    shape_cache[got_key] = (
                        _shape_at(shape, int(lengths[i]))[1:] if shape is not None else ()
                    )
                got = shape_cache[got_key]
                if got and want != got:
                    problem(
                        i,
                        f"{name} is declared with input shape {want} but, for this sample's "
                        f"{int(lengths[i])} tokens, entire_model gives it {got}",
                    )
                    ok = False
        if not ok:
            continue
        if len(set(keys)) != len(keys):
            problem(i, "the path lists a module twice")
            continue
        if any(order[a] > order[b] for a, b in itertools.pairwise(keys)):
            problem(i, "the path does not follow the model's own order of modules")
            continue
        needed: set[str] = set()
        for key in keys:
            needed |= {d for d in walk.call_deps.get(key, set()) if d in listed}
        missing = needed - set(keys)
        if missing:
            inverse = {v: k for k, v in mapping.calls.items()}
            names_missing = sorted((inverse[m] for m in missing), key=_natural)
            problem(
                i,
                "the path skips "
                + ", ".join(names_missing[:10])
                + (" ..." if len(names_missing) > 10 else "")
                + ", which its modules depend on in entire_model (every module whose output "
                "the path uses must be on it)",
            )
            continue
        path = tuple(keys)
        sample_path[i] = distinct.setdefault(path, len(distinct))
    if total_problems:
        more = (
            f" (showing {len(problems)} of {total_problems})"
            if total_problems > len(problems)
            else ""
        )
        raise PathError(
            f"{file_label}: {total_problems} module path(s) do not match the model{more}", problems
        )
    return PathPlan(list(distinct), sample_path)


def _path_costs(
    costs: Costs, plan: PathPlan, capture: Capture, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, float]]:
    """Per-sample (full, elue) of module paths, and per-operator / per-module means."""
    assert costs.walk is not None
    walk = costs.walk
    calls = map_calls(capture, walk).calls
    listed = set(calls.values())
    inverse = {v: k for k, v in calls.items()}
    # everything outside every listed call is charged to every path
    outside_full, outside_elue = sympy.Integer(0), sympy.Integer(0)
    outside_ops: dict[str, Any] = defaultdict(lambda: sympy.Integer(0))
    for (stack, op), cost in walk.costs.items():
        if not listed.intersection(stack):
            outside_full += cost.full
            outside_elue += cost.elue
            outside_ops[op] += cost.full
    ev = Evaluator(costs.symbol)
    full = ev(outside_full, lengths)
    elue = ev(outside_elue, lengths)
    n = max(1, lengths.size)
    by_op: dict[str, float] = defaultdict(float)
    by_module: dict[str, float] = defaultdict(float)
    for op, expr in outside_ops.items():
        by_op[op] += float(ev(expr, lengths).sum()) / n
    by_module[OUTSIDE] += float(full.sum()) / n
    call_cache: dict[str, tuple[Any, Any, dict[str, Any]]] = {}
    for p, path in enumerate(plan.paths):
        mask = plan.sample_path == p
        if not mask.any():
            continue
        sub = lengths[mask]
        for key in path:
            if key not in call_cache:
                call_cache[key] = costs.call_costs([key])
            f, e, ops = call_cache[key]
            fv = ev(f, sub)
            full[mask] += fv
            elue[mask] += ev(e, sub)
            by_module[inverse.get(key, key)] += float(fv.sum()) / n
            for op, expr in ops.items():
                by_op[op] += float(ev(expr, sub).sum()) / n
    return full, elue, _top(by_op), _top(by_module)


def _top(values: dict[str, float]) -> dict[str, float]:
    return dict(sorted(values.items(), key=lambda kv: -kv[1])[:MAX_BREAKDOWN])


def exit_layer_names(exit_layer: int) -> list[str]:
    names = ["emb"]
    for k in range(1, exit_layer + 1):
        names += [f"layer_{k}", f"exit_{k}"]
    return names


# --- parameters ----------------------------------------------------------------------------


def parameter_count(graphs: GraphSet) -> tuple[int, dict[str, int]]:
    walk = graphs.any().walk
    assert walk is not None
    kinds = {k: int(v) for k, v in walk.param_elements.items()}
    return sum(kinds.values()), kinds


# --- the report ----------------------------------------------------------------------------


def count_capture(
    capture: Capture,
    entries: Sequence[dict[str, Any]],
    *,
    cross_check: Any = None,
) -> dict[str, Any]:
    """The cost report for `entries` (the cost job's), from a capture. Raises PathError,
    CaptureFormatError."""
    start = time.perf_counter()
    all_lengths: set[int] = set()
    for entry in entries:
        all_lengths.update(int(n) for n in entry.get("lengths", []))
    graphs = walk_capture(capture, sorted(all_lengths))
    walked = time.perf_counter()
    params, param_kinds = parameter_count(graphs)
    unknown: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for costs in graphs.all():
        for op, elements in costs.unknown.items():
            unknown[op] = elements
        assert costs.walk is not None
        failed.update(costs.walk.failed_rules)
    out_entries: dict[str, Any] = {}
    check = cross_check(graphs) if cross_check is not None else None
    for entry in entries:
        t0 = time.perf_counter()
        kind = entry["kind"]
        lengths = np.asarray(entry.get("lengths", []), dtype=np.int64)
        if kind == "static":
            full = _eval_many(graphs, lambda c: c.full, lengths)
            elue = _eval_many(graphs, lambda c: c.elue, lengths)
            per_op = _mean_breakdown(graphs, "by_op", lengths)
            per_module = _mean_breakdown(graphs, "by_top_module", lengths)
        else:
            if graphs.symbolic is None:
                raise CaptureFormatError(
                    "module paths need one graph for every length, and this model's length "
                    "does not export as a symbolic dimension"
                )
            if kind == "exit_layer":
                names = [exit_layer_names(int(k)) for k in entry["exit_layers"]]
                declared: list[Any] | None = None
            else:
                names = [[str(step[0]) for step in path] for path in entry["paths"]]
                declared = [[list(step[1]) for step in path] for path in entry["paths"]]
            if lengths.size != len(names):
                raise CaptureFormatError(
                    f"entry {entry['key']!r} has {len(names)} paths and {lengths.size} lengths"
                )
            plan = check_paths(
                capture,
                graphs.symbolic,
                names,
                declared,
                lengths,
                file_label=str(entry.get("file") or entry["key"]),
            )
            full, elue, per_op, per_module = _path_costs(graphs.symbolic, plan, capture, lengths)
        incomplete = _incomplete_means(graphs, unknown, lengths)
        cross = _apply_cross_check(check, full, elue, lengths)
        out_entries[entry["key"]] = {
            "per_sample_flops": _ints(cross["full"]),
            "per_sample_flops_elue": _ints(cross["elue"]),
            "per_sample_flops_without_norm": _ints(cross["elue"]),
            "per_operator": per_op,
            "per_module": per_module,
            "uncounted": incomplete,
            "incomplete": sorted(incomplete),
            "n_counts": len(graphs.all()),
            "all_agree": cross["agree"],
            "disagreements": [],
            "cross_check": cross["report"],
            "seconds": time.perf_counter() - t0,
            "content_dependent": False,
            "per_sample_counted": False,
            "n_traces": len(graphs.all()),
        }
    return {
        "ok": True,
        "version": 2,
        "params": params,
        "param_kinds": param_kinds,
        "device": "cpu",
        "versions": {
            "counter": COUNTER_VERSION,
            "rules": rules.rule_table_hash()[:16],
            "fvcore": _fvcore_version(),
            **{k: v for k, v in capture.versions.items() if k in ("torch",)},
        },
        "counter_version": COUNTER_VERSION,
        "rule_hash": rules.rule_table_hash(),
        "notes": list(capture.notes)
        + [f"rule for {op} could not read a call ({why})" for op, why in sorted(failed.items())][
            :10
        ],
        "entries": out_entries,
        "polynomial": _polynomial_text(graphs),
        "load_seconds": walked - start,
        "seconds": time.perf_counter() - start,
    }


def _fvcore_version() -> str:
    try:
        import fvcore

        return str(getattr(fvcore, "__version__", "unknown"))[:100]
    except ImportError:
        return "absent"


def _incomplete_means(
    graphs: GraphSet, unknown: dict[str, Any], lengths: np.ndarray
) -> dict[str, float]:
    out: dict[str, float] = {}
    n = max(1, lengths.size)
    for op in unknown:
        try:
            values = _eval_many(graphs, lambda c, k=op: c.unknown.get(k, 0), lengths)
            out[op] = max(float(values.sum()) / n, 1.0)
        except CaptureFormatError:
            out[op] = 1.0
    return out


def _polynomial_text(graphs: GraphSet) -> str | None:
    if graphs.symbolic is None:
        return None
    expr = sympy.expand(graphs.symbolic.full)
    return str(expr.subs({graphs.symbolic.symbol: sympy.Symbol("L")}))[:2000]


def _apply_cross_check(
    check: Any, full: np.ndarray, elue: np.ndarray, lengths: np.ndarray
) -> dict[str, Any]:
    """Where fvcore (ELUE convention) finds more than the rules, the larger number is kept."""
    if not check:
        return {"full": full, "elue": elue, "agree": True, "report": check or {}}
    ratio = max([1.0] + [p["fvcore"] / p["rules"] for p in check["points"] if p["rules"] > 0])
    agree = all(
        abs(p["fvcore"] - p["rules"]) <= 0.01 * max(p["rules"], 1.0) for p in check["points"]
    )
    report = dict(check)
    report["agree"] = agree
    report["scale"] = ratio
    if ratio > 1.0 + 1e-9 and not agree:
        extra = elue * (ratio - 1.0)
        return {"full": full + extra, "elue": elue + extra, "agree": agree, "report": report}
    return {"full": full, "elue": elue, "agree": agree, "report": report}


__all__ = ["COUNTER_VERSION", "PathError", "count_capture"]
