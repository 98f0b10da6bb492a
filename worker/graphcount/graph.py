"""Read a captured graph (plain data from the sandbox) and walk it with symbolic shapes.

Trusted side: this never imports or runs submitted code. The capture only says which operators
run, how they are wired, and the shapes and dtypes of the tensors the graph reads; every other
shape is re-derived here by running each operator on fake tensors (no data, no kernels) whose
sequence length is a sympy symbol. Operators that are not core ATen are decomposed here, with
torch's own core-ATen decomposition table, and every operator that reaches the bottom is
costed by the rule table (`rules.py`), attributed to the module call it came from.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sympy
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv
from torch.utils._python_dispatch import TorchDispatchMode

from worker.graphcount import rules

MAX_INPUTS = 100_000
MAX_NODES = 200_000
MAX_RANK = 16
# Python-level operators an exported graph uses on sizes (symbolic ints), by name.
_PY_OPERATORS = {
    f"operator.{name}": getattr(operator, name)
    for name in [
        "getitem",
        "add",
        "sub",
        "mul",
        "floordiv",
        "truediv",
        "mod",
        "neg",
        "pow",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and_",
        "or_",
        "not_",
    ]
}
_SYM_FUNCTIONS = {
    "torch.sym_max": torch.sym_max,
    "torch.sym_min": torch.sym_min,
    "torch.sym_float": torch.sym_float,
    "torch.sym_int": torch.sym_int,
    "torch.sym_not": torch.sym_not,
}
# Recurrent operators are costed whole (their decomposition unrolls the time steps).
RECURRENT = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


class CaptureFormatError(ValueError):
    """The capture is not a graph this counter can read (the sandbox's output is untrusted)."""


class LengthSpecialisedError(CaptureFormatError):
    """The walk had to fix the length (an operator chose its work by it): walk per length."""


# --- the capture's schema (bounded; extra keys ignored) -------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GraphInput(_Model):
    name: str = Field(max_length=300)
    kind: str = Field(pattern="^(input|parameter|buffer|constant_tensor)$")
    target: str = Field(max_length=500)
    shape: list[int | str] = Field(max_length=MAX_RANK)
    dtype: str = Field(max_length=40)
    storage: int | None = Field(None, ge=0)
    storage_elements: int | None = Field(None, ge=0, le=10**13)
    # parameters and persistent buffers come from a weights file; the values of the rest
    # (non-persistent buffers, constants) may come with the capture (base64, little-endian)
    persistent: bool | None = None
    value: str | None = Field(None, max_length=24 * 2**20)


class GraphNode(_Model):
    name: str = Field(max_length=300)
    target: str = Field(max_length=300)
    args: list[Any] = Field(max_length=1000)
    kw: dict[str, Any] = Field(max_length=100)  # keyword arguments
    stack: list[list[str]] = Field(default_factory=list, max_length=200)


class Graph(_Model):
    inputs: list[GraphInput] = Field(max_length=MAX_INPUTS)
    nodes: list[GraphNode] = Field(max_length=MAX_NODES)
    outputs: Any = None
    length_generic: bool = False


class Capture(_Model):
    ok: bool
    version: int = 1
    graphs: dict[str, Graph] = Field(default_factory=dict, max_length=2000)
    modules: dict[str, str | None] = Field(default_factory=dict, max_length=2000)
    notes: list[str] = Field(default_factory=list, max_length=50)
    versions: dict[str, str] = Field(default_factory=dict, max_length=10)
    error: dict[str, Any] | None = None


# --- decoding ------------------------------------------------------------------------------

_DTYPES = {
    name: getattr(torch, name)
    for name in [
        "float32",
        "float64",
        "float16",
        "bfloat16",
        "complex64",
        "complex128",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "bool",
        "float8_e4m3fn",
        "float8_e5m2",
        "quint8",
        "qint8",
        "qint32",
    ]
    if hasattr(torch, name)
}
_LAYOUTS = {"strided": torch.strided, "sparse_coo": torch.sparse_coo}
_FORMATS = {
    "contiguous_format": torch.contiguous_format,
    "preserve_format": torch.preserve_format,
    "channels_last": torch.channels_last,
}


def dtype_of(name: str) -> torch.dtype:
    try:
        dtype: torch.dtype = _DTYPES[name]
        return dtype
    except KeyError:
        raise CaptureFormatError(f"unknown dtype {name!r}") from None


def resolve(target: str) -> Any:
    """The callable a node names: an ATen/prims operator overload or a size operator."""
    if target in _PY_OPERATORS:
        return _PY_OPERATORS[target]
    if target in _SYM_FUNCTIONS:
        return _SYM_FUNCTIONS[target]
    if target.startswith("higher_order."):
        raise CaptureFormatError(
            f"the graph uses {target}, a control-flow operator this counter does not cost yet: "
            "give the model's path per sample in a modules or exit_layer file instead"
        )
    parts = target.split(".")
    if len(parts) != 3 or parts[0] not in ("aten", "prims"):
        raise CaptureFormatError(
            f"the graph calls {target!r}, which is not an ATen operator: only torch operators "
            "can be counted (custom operators and Python functions cannot)"
        )
    namespace, name, overload = parts
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
        return getattr(packet, overload)
    except (AttributeError, RuntimeError):
        raise CaptureFormatError(f"torch has no operator {target!r}") from None


def decode(
    value: Any, env: dict[str, Any], length: Any = None, device: torch.device | None = None
) -> Any:
    """A node argument from its JSON form; {"lin": [p, q]} is p*L + q (`length`).

    A device argument decodes to `device` (the CPU when None).
    """
    if isinstance(value, list):
        return [decode(v, env, length, device) for v in value]
    if isinstance(value, dict):
        if "lin" in value:
            p, q = value["lin"]
            if length is None or not all(isinstance(x, int) and abs(x) < 10**9 for x in (p, q)):
                raise CaptureFormatError(f"unreadable size {str(value)[:100]}")
            return p * length + q
        if "n" in value:
            try:
                return env[value["n"]]
            except KeyError:
                raise CaptureFormatError(
                    f"node {value['n']!r} is used before it is defined"
                ) from None
        if "dtype" in value:
            return dtype_of(str(value["dtype"]))
        if "device" in value:
            return device or torch.device("cpu")
        if "layout" in value:
            return _LAYOUTS.get(str(value["layout"]), torch.strided)
        if "memory_format" in value:
            return _FORMATS.get(str(value["memory_format"]), torch.contiguous_format)
        if "f" in value:
            return float(str(value["f"]))
        raise CaptureFormatError(f"unreadable argument {str(value)[:100]}")
    return value


# --- recording ---------------------------------------------------------------------------------


@dataclass
class OpCost:
    """The summed cost of one operator within one module-call stack."""

    full: Any = field(default_factory=lambda: sympy.Integer(0))
    elue: Any = field(default_factory=lambda: sympy.Integer(0))
    elements: Any = field(
        default_factory=lambda: sympy.Integer(0)
    )  # output elements (what an unknown operator touched)
    count: int = 0


@dataclass
class Walk:
    """What one walk of a graph found: costs by (module-call stack, operator)."""

    costs: dict[tuple[tuple[str, ...], str], OpCost] = field(default_factory=dict)
    unknown: dict[str, Any] = field(default_factory=dict)  # operator -> output elements
    failed_rules: dict[str, str] = field(default_factory=dict)
    call_fqn: dict[str, str] = field(default_factory=dict)  # module-call key -> module path
    call_order: list[str] = field(default_factory=list)  # keys in order of first operator
    call_input_shape: dict[str, list[Any]] = field(default_factory=dict)
    call_deps: dict[str, set[str]] = field(default_factory=dict)
    symbol: Any = None
    param_elements: dict[str, int] = field(default_factory=dict)  # kind -> elements


_DECOMPOSITIONS: dict[Any, Any] | None = None


def _decompositions() -> dict[Any, Any]:
    global _DECOMPOSITIONS
    if _DECOMPOSITIONS is None:
        from torch._decomp import core_aten_decompositions

        _DECOMPOSITIONS = dict(core_aten_decompositions())
    return _DECOMPOSITIONS


class _Recorder(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Decompose to core ATen and cost every operator that is left, per module-call stack."""

    def __init__(self, walk: Walk) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.walk = walk
        self.stack: tuple[str, ...] = ()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if torch.Tag.core not in func.tags and rules.rule_for(func.namespace, _name(func)) is None:
            table = _decompositions()
            if func in table:
                with self:
                    out = table[func](*args, **kwargs)
                if out is not NotImplemented:
                    return out
            if _can_decompose(func):
                with self:
                    out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
        out = func(*args, **kwargs)
        self.record(func.namespace, _name(func), args, kwargs, out)
        return out

    def record(self, namespace: str, name: str, args: Any, kwargs: Any, out: Any) -> None:
        op = f"{namespace}.{name}"
        cost = self.walk.costs.setdefault((self.stack, op), OpCost())
        cost.count += 1
        elements = rules.out_numel(out)
        cost.elements += elements
        rule = rules.rule_for(namespace, name)
        if rule is None:
            self.walk.unknown[op] = self.walk.unknown.get(op, 0) + elements
            return
        try:
            full, elue = rule.cost(list(args), dict(kwargs), out)
        except Exception as exc:  # a rule that cannot read this call: not costed, so say so
            self.walk.failed_rules[op] = f"{type(exc).__name__}: {exc}"[:300]
            self.walk.unknown[op] = self.walk.unknown.get(op, 0) + elements
            return
        cost.full += full
        cost.elue += elue


def _can_decompose(func: Any) -> bool:
    try:
        return bool(func._can_decompose())
    except RuntimeError:  # operators the dispatcher does not know (aten::size)
        return False


def _name(func: Any) -> str:
    name = str(func._opname)
    # in-place and out= variants cost as their functional form
    if name.endswith("_") and not name.endswith("__") and name[:-1] in rules.RULES:
        return name[:-1]
    return name


@contextmanager
def _fake(symbol_hint: int) -> Iterator[tuple[FakeTensorMode, ShapeEnv, Any, Any]]:
    from torch._dynamo.source import ConstantSource

    env = ShapeEnv()
    mode = FakeTensorMode(shape_env=env, allow_non_fake_inputs=False)
    source = ConstantSource("L")
    symbol = env.create_symbol(symbol_hint, source=source, dynamic_dim=DimDynamic.DYNAMIC)
    length = env.create_symintnode(symbol, hint=symbol_hint, source=source)
    with mode:
        yield mode, env, symbol, length


def _recurrent_outputs(name: str, args: Sequence[Any]) -> tuple[Any, ...]:
    """Output shapes of aten.lstm/gru/rnn_* (.input overloads), without running them."""
    x, hx, params = args[0], args[1], args[2]
    num_layers, bidirectional, batch_first = int(args[4]), bool(args[7]), bool(args[8])
    directions = 2 if bidirectional else 1
    weights = [p for p in params if p.dim() == 2]
    # the last layer's hidden-to-hidden weight: (gates * H, H_out)
    out_size = weights[-1].shape[1] if weights else x.shape[-1]
    hidden_states = list(hx) if isinstance(hx, list | tuple) else [hx]
    if batch_first:
        out_shape = (x.shape[0], x.shape[1], directions * out_size)
    else:
        out_shape = (x.shape[0], x.shape[1], directions * out_size)
    output = torch.empty(out_shape, dtype=x.dtype)
    states = tuple(torch.empty_like(h) for h in hidden_states)
    del num_layers
    return (output, *states)


def _bilinear_outputs(name: str, args: Sequence[Any]) -> Any:
    x1, weight = args[0], args[2]
    return torch.empty((*x1.shape[:-1], weight.shape[0]), dtype=x1.dtype)


def _conv_tbc_outputs(name: str, args: Sequence[Any]) -> Any:
    x, weight = args[0], args[1]
    pad = int(args[3]) if len(args) > 3 else 0
    steps = x.shape[0] + 2 * pad - weight.shape[0] + 1
    return torch.empty((steps, x.shape[1], weight.shape[2]), dtype=x.dtype)


# Operators costed whole at the graph's level, with their output shapes computed here: their
# own kernels or decompositions unroll the length or do not take symbolic sizes.
WHOLE: dict[str, Any] = {
    **dict.fromkeys(RECURRENT, _recurrent_outputs),
    "bilinear": _bilinear_outputs,
    "conv_tbc": _conv_tbc_outputs,
}


def walk_graph(graph: Graph, *, symbolic: bool, hint: int = 16) -> Walk:
    """Walk `graph` on fake tensors; the model inputs' "L" dims are one symbol (or `hint`)."""
    walk = Walk()
    recorder = _Recorder(walk)
    with _fake(hint) as (_mode, shape_env, symbol, length):
        walk.symbol = symbol if symbolic else None
        env: dict[str, Any] = {}
        origin: dict[str, frozenset[str]] = {}  # node -> module calls it depends on
        placeholders: set[str] = set()
        storages: dict[tuple[str, int], int] = {}
        for item in graph.inputs:
            dims: list[Any] = []
            for s in item.shape:
                if s == "L":
                    if item.kind != "input":
                        raise CaptureFormatError(f"{item.target!r} has a symbolic size")
                    dims.append(length if symbolic else hint)
                elif isinstance(s, int) and 0 <= s <= 10**9:
                    dims.append(s)
                else:
                    raise CaptureFormatError(f"input {item.name!r} has a bad size {s!r}")
            dtype = dtype_of(item.dtype)
            try:
                env[item.name] = torch.empty(dims, dtype=dtype)
            except (RuntimeError, TypeError) as exc:
                raise CaptureFormatError(f"input {item.name!r}: {exc}") from exc
            origin[item.name] = frozenset()
            if item.kind != "input":
                placeholders.add(item.name)
                n = 1
                for s in dims:
                    n *= int(s)
                slot = (item.kind, item.storage if item.storage is not None else -1 - len(storages))
                elements = (
                    max(n, int(item.storage_elements or 0)) if item.storage is not None else n
                )
                storages[slot] = max(storages.get(slot, 0), elements)
        by_storage: dict[int, tuple[str, int]] = {}
        for (kind, storage_id), n in storages.items():
            # a storage read under several kinds counts once, under its first kind
            if storage_id >= 0 and storage_id in by_storage:
                continue
            by_storage[storage_id] = (kind, n)
        for kind, n in by_storage.values():
            walk.param_elements[kind] = walk.param_elements.get(kind, 0) + n

        with recorder:
            for node in graph.nodes:
                stack = tuple(key for key, _fqn in node.stack if key)
                for key, fqn in node.stack:
                    if key not in walk.call_fqn:
                        walk.call_fqn[key] = fqn
                        walk.call_order.append(key)
                recorder.stack = stack
                size = length if symbolic else hint
                args = decode(node.args, env, size)
                kwargs = {k: decode(v, env, size) for k, v in node.kw.items()}
                deps: set[str] = set()
                for ref in _refs(node.args) + _refs(list(node.kw.values())):
                    if ref not in env:
                        raise CaptureFormatError(f"node {ref!r} is used before it is defined")
                    deps |= origin.get(ref, frozenset())
                    # the first outside value a module call reads is its input
                    value = env[ref]
                    if ref not in placeholders and isinstance(value, torch.Tensor):
                        for key in stack:
                            if key not in walk.call_input_shape and key not in origin_keys(
                                origin, ref
                            ):
                                walk.call_input_shape[key] = rules.shape(value)
                for key in stack:
                    walk.call_deps.setdefault(key, set()).update(d for d in deps if d != key)
                origin[node.name] = frozenset(deps | set(stack))
                target = resolve(node.target)
                name = node.target.split(".")[1] if node.target.startswith("aten.") else ""
                try:
                    if name in WHOLE:
                        out = WHOLE[name](name, args)
                        recorder.record("aten", name, args, kwargs, out)
                    else:
                        out = target(*args, **kwargs)
                except CaptureFormatError:
                    raise
                except Exception as exc:
                    raise CaptureFormatError(
                        f"the counter cannot follow the shapes through {node.target} (node "
                        f"{node.name!r}): {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                    ) from exc
                env[node.name] = out
        if symbolic and symbol in shape_env.replacements:
            raise LengthSpecialisedError(
                "the graph fixes the sequence length to one value: it cannot be costed as a "
                "function of the length"
            )
    # a module call's dependencies on calls nested inside it are not dependencies
    for key, deps in walk.call_deps.items():
        walk.call_deps[key] = {d for d in deps if not _nested(walk, d, key)}
    return walk


def origin_keys(origin: dict[str, frozenset[str]], ref: str) -> frozenset[str]:
    return origin.get(ref, frozenset())


def _nested(walk: Walk, inner: str, outer: str) -> bool:
    fqn_inner, fqn_outer = walk.call_fqn.get(inner, ""), walk.call_fqn.get(outer, "")
    return bool(fqn_outer) and fqn_inner.startswith(fqn_outer + ".")


def _refs(value: Any) -> list[str]:
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        if "n" in value and isinstance(value["n"], str):
            return [value["n"]]
        return []
    return []
