"""Entry point run INSIDE the sandbox: capture what a model computes, as data, and nothing else.

    python -m worker.capture /job/job.json

Loads the submitted model file, exports `entire_model` with `torch.export` (the sequence length
a symbolic dimension) and writes the graph on the descriptor that was standard output when this
process started, as JSON: operator names, argument wiring, and the shapes and dtypes of the
tensors the graph reads (no weight values). No number in it is believed: the trusted counter
(`worker.graphcount`, another process that never runs submitted code) re-derives every shape
and cost from the graph's structure. Whatever the model writes, on fd 1 or anywhere, goes to
the log: fd 1 is pointed at stderr before the model file runs.

The job file names the model file and the distinct token counts of the samples to be costed
(used only when the graph cannot be exported with a symbolic length, see `_export_static`).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CAPTURE_VERSION = 1
CAPTURE_MARKER = b"\n--paretoboard-capture--\n"
MAX_NODES = 200_000
# When a graph cannot be exported with a symbolic length, it is exported once per distinct
# length, at most this many (the rest of the job is refused with a message saying so).
MAX_STATIC_LENGTHS = 600
MIN_LENGTH = 2
# Values of the tensors the graph reads that are not in a state_dict (non-persistent buffers,
# constants: position ids, masks), so the trusted runner can run the graph with the submitted
# weights (a weights file holds parameters and persistent buffers only). Larger ones must come
# in the weights file.
MAX_VALUE_ELEMENTS = 1_000_000
MAX_VALUES_BYTES = 16 * 2**20


# How a download attempt from a model hub fails in the offline sandbox.
_HUB_SIGNS = ("from_pretrained", "offline", "huggingface", "HF_HUB", "hf.co", "Hub")


class CaptureError(Exception):
    """The model cannot be captured; `message` says why and what to do."""

    def __init__(self, message: str, kind: str = "capture") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


# --- serialisation of an exported graph ------------------------------------------------------


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _encode_arg(value: Any) -> Any:
    """A node argument as JSON: node refs, literals, dtypes, devices; anything else refused."""
    import torch
    from torch import fx

    if isinstance(value, fx.Node):
        return {"n": value.name}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"f": repr(value)}
    if isinstance(value, list | tuple):
        return [_encode_arg(v) for v in value]
    if isinstance(value, torch.dtype):
        return {"dtype": _dtype_name(value)}
    if isinstance(value, torch.device):
        return {"device": "cpu"}  # the counter runs on fake CPU tensors; the device is no cost
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    raise CaptureError(
        f"the exported graph has an argument of type {type(value).__name__} that the counter "
        "cannot read"
    )


def _target_name(target: Any) -> str:
    import operator

    import torch

    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target._opname}.{target._overloadname}"
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher_order.{target.name()}"  # type: ignore[no-untyped-call]
    if callable(target) and getattr(operator, getattr(target, "__name__", ""), None) is target:
        return f"operator.{getattr(target, '__name__', '')}"
    mod = getattr(target, "__module__", "") or ""
    return f"{mod}.{getattr(target, '__qualname__', repr(target))}"


def _module_stack(node: Any) -> list[list[str]]:
    stack = node.meta.get("nn_module_stack") or {}
    return [[str(key), str(value[0])] for key, value in stack.items()]


def _val_shape(val: Any) -> list[Any]:
    """A placeholder's shape: ints, or "L" for the symbolic length."""
    out: list[Any] = []
    for size in val.shape:
        out.append(int(size) if isinstance(size, int) else "L")
    return out


def _value_b64(tensor: Any, budget: list[int]) -> str | None:
    """A small tensor's values (contiguous, little-endian bytes, base64), within the budget."""
    import base64

    import torch

    if tensor.numel() > MAX_VALUE_ELEMENTS or tensor.is_sparse or tensor.is_quantized:
        return None
    data = tensor.detach().to("cpu").contiguous()
    if data.dtype == torch.bool:
        data = data.to(torch.uint8)
    raw = data.view(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""
    if len(raw) > budget[0]:
        return None
    budget[0] -= len(raw)
    return base64.b64encode(raw).decode("ascii")


def serialize_program(ep: Any, user_inputs: Sequence[str]) -> dict[str, Any]:
    """An ExportedProgram as plain data (no values): inputs, nodes, outputs."""
    import torch
    from torch.export.graph_signature import InputKind

    specs = {spec.arg.name: spec for spec in ep.graph_signature.input_specs}
    storages: dict[int, int] = {}
    inputs: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    outputs: Any = None
    tensors: dict[str, torch.Tensor] = {}
    for fqn, tensor in ep.state_dict.items():
        tensors[fqn] = tensor
    for fqn, tensor in ep.constants.items():
        if isinstance(tensor, torch.Tensor):
            tensors[fqn] = tensor
    user_iter = iter(user_inputs)
    budget = [MAX_VALUES_BYTES]
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            spec = specs[node.name]
            val = node.meta.get("val")
            if spec.kind is InputKind.USER_INPUT:
                if not isinstance(val, torch.Tensor):
                    raise CaptureError(f"model input {node.name!r} is not a tensor")
                inputs.append(
                    {
                        "name": node.name,
                        "kind": "input",
                        "target": next(user_iter, node.name),
                        "shape": _val_shape(val),
                        "dtype": _dtype_name(val.dtype),
                    }
                )
                continue
            if spec.kind not in (
                InputKind.PARAMETER,
                InputKind.BUFFER,
                InputKind.CONSTANT_TENSOR,
            ):
                raise CaptureError(
                    f"the exported graph reads {node.name!r}, a {spec.kind.name.lower()} the "
                    "counter cannot cost (packed or opaque objects such as eager int8 "
                    "`quantize_dynamic` weights); submit the float model, or one whose "
                    "quantized weights are plain integer tensors with the (de)quantisation "
                    "written in torch operators"
                )
            real = tensors.get(str(spec.target))
            if real is None or not isinstance(val, torch.Tensor):
                raise CaptureError(f"the exported graph reads {spec.target!r}, which has no tensor")
            storage = real.untyped_storage()
            key = storages.setdefault(storage.data_ptr() or id(storage), len(storages))
            item = {
                "name": node.name,
                "kind": spec.kind.name.lower(),
                "target": str(spec.target),
                "shape": [int(s) for s in val.shape],
                "dtype": _dtype_name(val.dtype),
                "storage": key,
                "storage_elements": storage.nbytes() // max(1, real.element_size()),
                "persistent": spec.kind is InputKind.PARAMETER
                or (spec.kind is InputKind.BUFFER and spec.persistent is not False),
            }
            if not item["persistent"]:
                value_bytes = _value_b64(real, budget)
                if value_bytes is not None:
                    item["value"] = value_bytes
            inputs.append(item)
        elif node.op == "call_function":
            nodes.append(
                {
                    "name": node.name,
                    "target": _target_name(node.target),
                    "args": _encode_arg(list(node.args)),
                    "kw": {k: _encode_arg(v) for k, v in node.kwargs.items()},
                    "stack": _module_stack(node),
                }
            )
        elif node.op == "output":
            outputs = _encode_arg(
                list(node.args[0]) if isinstance(node.args[0], tuple | list) else [node.args[0]]
            )
        elif node.op == "get_attr":  # a subgraph of a control-flow operator (torch.cond, ...)
            raise CaptureError(
                "entire_model branches inside its graph (torch.cond or another control-flow "
                "operator), which the counter does not cost yet: make entire_model's forward "
                "the full pass and give each sample's path in a `modules` or `exit_layer` "
                "prediction file",
                "content_dependent",
            )
        else:  # call_module does not occur in an exported program's graph
            raise CaptureError(f"the exported graph has a {node.op} node the counter cannot read")
        if len(nodes) > MAX_NODES:
            raise CaptureError(f"the exported graph has more than {MAX_NODES:,} operators")
    return {"inputs": inputs, "nodes": nodes, "outputs": outputs}


# --- export --------------------------------------------------------------------------------


def _is_specialisation(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return "Constraints violated" in text or "specialized" in text


def _is_data_dependent(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return any(
        sign in text
        for sign in (
            "GuardOnDataDependentSymNode",
            "data-dependent",
            "data dependent",
            "Could not guard on data-dependent",
            "aten._local_scalar_dense",
            ".item()",
        )
    )


def _call(loaded: Any, length: int) -> tuple[tuple[Any, ...], dict[str, Any], list[str]]:
    from worker.counting.loading import model_call

    call = model_call(loaded, length)
    names, _var_kw, positional = _accepted(loaded.entire_model.forward)
    arg_names = [positional[i] if i < len(positional) else f"arg{i}" for i in range(len(call.args))]
    # The optional inputs (attention_mask, token_type_ids) go only to a forward that names
    # them: through **kwargs they would reach whatever the model forwards its kwargs to
    # (transformers passes them on as attention options).
    kwargs = {k: v for k, v in call.kwargs.items() if k in names or k == "input_ids"}
    return call.args, kwargs, arg_names + list(kwargs)


def _accepted(forward: Any) -> tuple[set[str], bool, list[str]]:
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return set(), True, []
    positional = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return set(sig.parameters), var_kw, positional


def _export(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], dynamic: Any) -> Any:
    import torch

    from worker.counting.count import fastpath_disabled

    with torch.no_grad(), fastpath_disabled():
        return torch.export.export(model, args, kwargs, dynamic_shapes=dynamic, strict=False)


def _dynamic_shapes(values: Sequence[Any], names: Sequence[str], max_length: int) -> Any:
    """Every (1, L) model input gets the one symbolic length L, keyed by argument name."""
    from torch.export import Dim

    length = Dim("L", min=MIN_LENGTH, max=max_length)
    return {
        name: ({1: length} if getattr(t, "dim", lambda: 0)() == 2 else None)
        for name, t in zip(names, values, strict=True)
    }


def _export_symbolic(loaded: Any, max_length: int) -> dict[str, Any]:
    args, kwargs, names = _call(loaded, min(16, max_length))
    dynamic = _dynamic_shapes([*args, *kwargs.values()], names, max_length)
    ep = _export(loaded.entire_model, args, kwargs, dynamic)
    return serialize_program(ep, names)


def _export_auto(loaded: Any, lengths: Sequence[int], max_length: int) -> dict[str, Any] | None:
    """The graph with the length left to torch (`Dim.AUTO`), if it serves every job length.

    Called after the named symbolic length failed. Where the model branches on the length in
    Python (`if L > 64: ...`), torch.export keeps the length symbolic over the range that the
    branch taken at the example length covers: that graph serves the job if every length of
    the job lies in that range. Returns None where the length was fixed to one value (the
    graph then only fits the example length) or the range leaves job lengths out (the model
    branches on the length between them: it must be captured per length, never generalised).
    Raises _LengthBranchesError in the second case.
    """
    import torch
    from torch.export import Dim

    hint = min(16, max_length)
    args, kwargs, names = _call(loaded, hint)
    auto = Dim.AUTO(min=MIN_LENGTH, max=max_length)
    dynamic = {
        name: ({1: auto} if getattr(t, "dim", lambda: 0)() == 2 else None)
        for name, t in zip(names, [*args, *kwargs.values()], strict=True)
    }
    ep = _export(loaded.entire_model, args, kwargs, dynamic)
    lo, hi = MIN_LENGTH, max_length
    symbolic = False
    for node in ep.graph.nodes:
        val = node.meta.get("val")
        if node.op != "placeholder" or not isinstance(val, torch.Tensor) or val.dim() != 2:
            continue
        size = val.shape[1]
        if isinstance(size, torch.SymInt):
            symbolic = True
            for sym in size.node.expr.free_symbols:
                vr = ep.range_constraints.get(sym)
                if vr is not None:
                    lo = max(lo, int(vr.lower)) if vr.lower.is_finite else lo
                    hi = min(hi, int(vr.upper)) if vr.upper.is_finite else hi
    if not symbolic:
        return None
    wanted = [int(n) for n in lengths] or [MIN_LENGTH, max_length]
    if all(lo <= n <= hi for n in wanted):
        return serialize_program(ep, names)
    raise _LengthBranchesError


class _LengthBranchesError(Exception):
    """The model branches on the length in Python: its graph differs between job lengths."""


def _export_at(loaded: Any, length: int) -> dict[str, Any]:
    args, kwargs, names = _call(loaded, length)
    return serialize_program(_export(loaded.entire_model, args, kwargs, None), names)


def _generalise(graphs: Sequence[dict[str, Any]], lengths: Sequence[int]) -> Any:
    """One graph from graphs exported at several lengths, or None if they differ otherwise.

    Where the graphs differ only in integers that follow the length linearly (a size or an
    offset computed in Python and baked in as a constant), the integer becomes
    {"lin": [p, q]}, meaning p*L + q; the model inputs' length dims become "L".
    """
    a, b = lengths[0], lengths[1]

    def merge(values: Sequence[Any]) -> Any:
        first = values[0]
        if all(v == first for v in values) and all(type(v) is type(first) for v in values):
            return first
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            p, rem = divmod(values[1] - values[0], b - a)
            q = values[0] - p * a
            if rem == 0 and all(p * n + q == v for n, v in zip(lengths, values, strict=True)):
                return {"lin": [p, q]}
            raise _NotGenericError
        if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
            return [merge([v[i] for v in values]) for i in range(len(first))]
        if all(isinstance(v, dict) for v in values) and len({tuple(v) for v in values}) == 1:
            return {k: merge([v[k] for v in values]) for k in first}
        raise _NotGenericError

    try:
        merged = merge(list(graphs))
    except _NotGenericError:
        return None
    for item in merged["inputs"]:
        if item["kind"] == "input":
            item["shape"] = [
                "L" if isinstance(s, dict) and s.get("lin") == [1, 0] else s for s in item["shape"]
            ]
            if any(isinstance(s, dict) for s in item["shape"]):
                return None
        elif any(isinstance(s, dict) for s in item["shape"]):
            return None
    merged["length_generic"] = True
    return merged


class _NotGenericError(Exception):
    pass


GENERIC_PROBES = (7, 11, 13)


def _export_static(
    loaded: Any, lengths: Sequence[int], deadline: float, *, generalise: bool = True
) -> dict[str, Any]:
    """Graphs at fixed lengths, for models whose length does not export symbolically.

    Exported at three lengths first, and at the job's lengths at every tenth of their range
    (shortest and longest included): if the graphs
    differ only in integers that follow the length linearly (`_generalise`: a recurrent model
    keeps its length inside `aten.lstm`; an EmbeddingBag's offsets are computed from it), one
    graph serves every length. Otherwise (or where the model is known to branch on the
    length, `generalise=False`) one graph per distinct length.
    """
    distinct = sorted({int(n) for n in lengths})
    if generalise:
        probe_lengths = list(GENERIC_PROBES)
        # and the job's lengths at every tenth of their range (shortest and longest included):
        # a Python branch on the length shows as graphs that differ between two probes
        deciles = (
            [distinct[round(i * (len(distinct) - 1) / 10)] for i in range(11)] if distinct else []
        )
        for n in deciles:
            if n >= MIN_LENGTH and n not in probe_lengths:
                probe_lengths.append(n)
        probes = [_export_at(loaded, n) for n in probe_lengths]
        merged = _generalise(probes, probe_lengths)
        if merged is not None:
            return {"symbolic": merged}
    if len(distinct) > MAX_STATIC_LENGTHS:
        raise CaptureError(
            f"the model's graph changes with the sequence length, so it is captured once per "
            f"distinct length, and this job has {len(distinct):,} (the limit is "
            f"{MAX_STATIC_LENGTHS}); make the length a dynamic dimension (no Python branch or "
            "loop on it)"
        )
    graphs: dict[str, Any] = {}
    for n in distinct:
        if time.monotonic() > deadline:
            raise CaptureError(
                "capturing the model once per distinct length ran out of time; make the length "
                "a dynamic dimension (no Python branch or loop on it)"
            )
        graphs[str(n)] = _export_at(loaded, n)
    return graphs


# nn.Module methods torch.export relies on to find the tensors a model holds. A model that
# overrides them (to hide its weights) gets torch's own implementation back before the export:
# the graph then reads every tensor, and the count comes from the graph.
_MODULE_METHODS = (
    "named_parameters",
    "parameters",
    "named_buffers",
    "buffers",
    "named_modules",
    "modules",
    "named_children",
    "children",
    "state_dict",
    "_named_members",
)


def _restore_module_methods(model: Any) -> None:
    from torch import nn

    for _name, module in nn.Module.named_modules(model, remove_duplicate=True):
        cls = type(module)
        overridden = {
            name: getattr(nn.Module, name)
            for name in _MODULE_METHODS
            if getattr(cls, name, None) is not getattr(nn.Module, name) or name in vars(module)
        }
        for name in list(overridden):
            vars(module).pop(name, None)  # instance attributes shadowing the methods
        if overridden:
            module.__class__ = type(cls.__name__, (cls,), overridden)


def _module_map(loaded: Any) -> dict[str, str | None]:
    """module_list name -> the entry's path inside entire_model (None: not part of it)."""
    paths: dict[int, str] = {}
    from torch import nn

    for name, module in nn.Module.named_modules(loaded.entire_model, remove_duplicate=False):
        paths.setdefault(id(module), name)
    return {name: paths.get(id(module)) for name, module in loaded.module_list.items()}


def capture(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from worker.counting.loading import ModelFileError, load_model_file

    start = time.perf_counter()
    torch.set_num_threads(max(1, int(job.get("threads", 1))))
    max_length = max(MIN_LENGTH + 1, int(job.get("max_length", 512)))
    lengths = [int(n) for n in job.get("lengths", [])]
    deadline = time.monotonic() + float(job.get("seconds", 600))
    try:
        loaded = load_model_file(Path(job["model"]))
    except ModelFileError as exc:
        if any(sign in exc.message for sign in _HUB_SIGNS):
            exc.message += (
                ". Nothing can be downloaded here (no network): build the model from a config "
                "(e.g. BertForSequenceClassification(BertConfig(...))), not from_pretrained; "
                "weights do not change the cost"
            )
        raise
    loaded.entire_model.eval()
    _restore_module_methods(loaded.entire_model)
    notes: list[str] = list(loaded.notes)
    try:
        graphs = {"symbolic": _export_symbolic(loaded, max_length)}
    except CaptureError:
        raise
    except Exception as exc:
        if _is_specialisation(exc) and not _is_data_dependent(exc):
            branches = False
            auto: dict[str, Any] | None = None
            try:
                auto = _export_auto(loaded, lengths, max_length)
            except _LengthBranchesError:
                branches = True
            except Exception:
                auto = None
            if auto is not None:
                graphs = {"symbolic": auto}
                notes.append(
                    "the sequence length exports as a symbolic dimension over a narrower range "
                    "(the model may branch on it); every length of this job lies in that range, "
                    "so one graph serves all"
                )
                return _run_samples(_captured(loaded, graphs, notes, start), loaded, job, deadline)
            try:
                graphs = _export_static(loaded, lengths, deadline, generalise=not branches)
            except CaptureError:
                raise
            except Exception as inner:
                raise _export_failure(inner) from inner
            notes.append(
                "the sequence length does not export as a symbolic dimension; the model was "
                + (
                    "captured at several lengths and the graphs agree up to sizes that follow "
                    "the length, so one graph serves all"
                    if "symbolic" in graphs
                    else f"captured once per distinct length ({len(graphs)})"
                    + (" (it branches on the length)" if branches else "")
                )
            )
        else:
            raise _export_failure(exc) from exc
    return _run_samples(_captured(loaded, graphs, notes, start), loaded, job, deadline)


def _run_samples(
    captured: dict[str, Any], loaded: Any, job: dict[str, Any], deadline: float
) -> dict[str, Any]:
    """The pre-flight check's run of `entire_model` on real test samples (`job["samples"]`:
    task, token ids, first segment), after the capture: per sample its output shape or the
    error it raised. Nothing here decides a number; the worker only reports it."""
    samples = job.get("samples") or []
    if not samples:
        return captured
    import torch

    from worker.counting.loading import model_call

    runs: list[dict[str, Any]] = []
    bound = int(loaded.vocab_size) if loaded.vocab_size else None
    for sample in samples[:64]:
        # Ids at or above the vocab_size the model file declares are wrapped below it (the
        # count draws ids below it too): the run checks lengths, segments and shapes.
        ids = [int(t) % bound if bound else int(t) for t in sample["ids"]]
        run: dict[str, Any] = {
            "task": str(sample.get("task", "")),
            "index": int(sample.get("index", -1)),
            "tokens": len(ids),
        }
        if time.monotonic() > deadline:
            run["error"] = "not run: the pre-flight time limit was reached"
            runs.append(run)
            continue
        try:
            call = model_call(
                loaded, len(ids), token_ids=torch.tensor(ids), first_segment=sample.get("first")
            )
            with torch.no_grad():
                out = loaded.entire_model(*call.args, **call.kwargs)
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            shape = getattr(getattr(first, "logits", first), "shape", None)
            run["shape"] = [int(n) for n in shape] if shape is not None else None
        except Exception as exc:
            run["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        runs.append(run)
    return {**captured, "sample_runs": runs}


def _captured(
    loaded: Any, graphs: dict[str, Any], notes: list[str], start: float
) -> dict[str, Any]:
    import torch

    return {
        "ok": True,
        "version": CAPTURE_VERSION,
        "graphs": graphs,
        "modules": _module_map(loaded),
        "notes": notes[:50],
        "versions": {"torch": torch.__version__},
        "seconds": time.perf_counter() - start,
    }


def _export_failure(exc: BaseException) -> CaptureError:
    first = str(exc).strip().splitlines()[0][:600] if str(exc).strip() else type(exc).__name__
    text = f"{type(exc).__name__}: {exc}"
    if "PackedParams" in text or "quantized::" in text or "torch.classes.quantized" in text:
        return CaptureError(
            "entire_model holds packed int8 weights (eager-mode quantize_dynamic / "
            "torch.ao.quantization), which cannot be captured as a graph: submit the float "
            "model (state the int8 deployment in the description), or write the quantised "
            "layers with plain int8 tensors and torch operators (x @ (w_int8.float() * scale))",
            "export",
        )
    if "sparse" in text.lower():
        return CaptureError(
            f"entire_model uses sparse tensors ({first}), which cannot be captured and costed "
            "by their non-zeros yet: submit the pruned model with dense weights (a "
            "magnitude-pruned model counts as its dense products), or with the pruned rows "
            "and columns removed",
            "export",
        )
    if _is_data_dependent(exc):
        return CaptureError(
            "entire_model could not be captured as one graph: its computation depends on the "
            f"input values ({type(exc).__name__}: {first}). A model whose cost depends on the "
            "content (an exit decided inside forward, token dropping, a mixture of experts) "
            "must make entire_model's forward the full pass (every layer and every exit head) "
            "and give each sample's path in a `modules` or `exit_layer` prediction file; a "
            "branch can also be written with torch.cond",
            "content_dependent",
        )
    return CaptureError(
        f"torch.export could not capture entire_model: {type(exc).__name__}: {first}. Only "
        "torch operators can be counted (no numpy, .item() or Python on tensor values inside "
        "forward)",
        "export",
    )


def main(argv: Sequence[str]) -> int:
    # The capture goes out on the descriptor that is stdout now; from here on, fd 1 and
    # sys.stdout are the log (stderr), whatever the model file prints or writes.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        job = json.loads(Path(argv[1]).read_text())
        payload = capture(job)
        code = 0
    except Exception as exc:
        payload = error_payload(exc, kind=getattr(exc, "kind", "model"))
        code = 3
    emit(out_fd, CAPTURE_MARKER, payload)
    return code


def error_payload(exc: Exception, **extra: str) -> dict[str, Any]:
    """What a sandboxed job reports when `exc` ended it (call it while handling `exc`): its
    type, `extra`, message, problems and traceback, each bounded."""
    problems = [p.as_dict() for p in getattr(exc, "problems", [])]
    return {
        "ok": False,
        "error": {
            "type": type(exc).__name__,
            **extra,
            "message": getattr(exc, "message", str(exc))[:4000],
            "problems": problems[:100],
            "traceback": traceback.format_exc()[-20000:],
        },
    }


def emit(out_fd: int, marker: bytes, payload: dict[str, Any]) -> None:
    """Write `payload` as JSON after `marker` on the descriptor saved as stdout, then close it.

    Whatever reached that descriptor before (a model that found it and wrote there) comes
    before the last marker and is ignored by the reader."""
    data = memoryview(marker + json.dumps(payload, separators=(",", ":")).encode())
    while data:
        data = data[os.write(out_fd, data) :]
    os.close(out_fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
