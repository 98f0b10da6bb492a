"""Counting one module at one input shape with fvcore, cross-checked by FlopCounterMode."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from core.errors import Problem
from worker.counting.handles import (
    FVCORE_ONLY_OPS,
    NORM_OPS,
    UNCOUNTED_PREFIX,
    HandleTable,
    flop_counter_mapping,
    fvcore_extra_handles,
)
from worker.counting.loading import (
    ENTIRE_MODEL,
    LoadedModel,
    ModelCall,
    ModelFileError,
    model_call,
    module_call,
)

with warnings.catch_warnings():
    # fvcore.nn scripts a loss function at import time: torch warns that jit is deprecated
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis

# Relative difference between the two counters above which a count is flagged.
AGREEMENT_TOLERANCE = 0.01


@dataclass(frozen=True, slots=True)
class ShapeCount:
    """Cost of one module at one input shape. All FLOPs are 2 x MACs.

    flops: fvcore's count x 2, with the extra rules (attention, fused MHA, FFT...) and with
        normalisation layers as fvcore costs them (LayerNorm: 5 MACs per element).
    norm_flops: the part of `flops` due to normalisation layers (LayerNorm, BatchNorm...);
        `flops - norm_flops` is the ELUE closed-form convention (LayerNorm excluded).
    compared_flops: `flops` minus what only fvcore costs (`FVCORE_ONLY_OPS`); compared with
        `cross_check_flops` (FlopCounterMode, dispatch level, same extra rules).
    agrees: |compared_flops - cross_check_flops| <= 1% of the larger (or the check failed).
    by_operator: FLOPs per costed operator (fvcore names, e.g. linear, matmul, layer_norm).
    by_module: FLOPs per submodule down to `module_depth` dots ("" is the whole module).
    uncounted: operator -> elements of its output summed over calls, for every operator that
        no rule costs (softmax, gelu, add, embedding, relu, dropout...); see ZERO_COST_OPS for
        the ones left out by design.
    """

    module: str
    shape: tuple[int, ...]
    input: str
    flops: int
    macs: int
    norm_flops: int
    compared_flops: int
    cross_check_flops: int | None
    agrees: bool
    disagreement: float | None
    by_operator: dict[str, int]
    cross_check_by_operator: dict[str, int]
    by_module: dict[str, int]
    uncounted: dict[str, int]
    fvcore_seconds: float
    cross_check_seconds: float
    cross_check_error: str | None = None

    @property
    def flops_without_norm(self) -> int:
        return self.flops - self.norm_flops

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def fastpath_disabled(disabled: bool = True) -> Iterator[None]:
    """Turn off torch's fused MHA / TransformerEncoder fast path (restored afterwards)."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(not disabled and before)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def output_tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor in a (nested) model output: tensor, tuple/list, dict/ModelOutput, dataclass."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in output_tensors(v)]
    if isinstance(out, list | tuple):
        return [t for v in out for t in output_tensors(v)]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [t for f in dataclasses.fields(out) for t in output_tensors(getattr(out, f.name))]
    return []


class _Call(nn.Module):
    """Positional-tensor adapter for tracing: forward(*tensors) -> model(*args, **kwargs),
    output flattened to a tuple of tensors (outputs that are not tensors are ignored)."""

    def __init__(self, model: nn.Module, n_args: int, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.n_args = n_args
        self.keys = keys

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        args = tensors[: self.n_args]
        kwargs = dict(zip(self.keys, tensors[self.n_args :], strict=True))
        return tuple(output_tensors(self.model(*args, **kwargs)))


def _split(counter: Mapping[str, float]) -> tuple[Counter[str], Counter[str]]:
    """fvcore counter -> (MACs per costed op, elements per uncounted op)."""
    costed: Counter[str] = Counter()
    uncounted: Counter[str] = Counter()
    for key, value in counter.items():
        if key.startswith(UNCOUNTED_PREFIX):
            uncounted[key.removeprefix(UNCOUNTED_PREFIX)] += int(value)
        else:
            costed[key] += int(value)
    return costed, uncounted


def _fvcore(
    module: nn.Module, call: ModelCall, module_depth: int
) -> tuple[Counter[str], Counter[str], dict[str, int]]:
    wrapper = _Call(module, len(call.args), tuple(call.kwargs))
    inputs = (*call.args, *call.kwargs.values())
    analysis = FlopCountAnalysis(wrapper, inputs)
    analysis._op_handles = HandleTable(analysis._op_handles)
    analysis.set_op_handle(**fvcore_extra_handles())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_module = analysis.by_module_and_operator()
    costed, uncounted = _split(per_module[""])
    by_module: dict[str, int] = {}
    for name, counter in per_module.items():
        if name != "model" and not name.startswith("model."):
            continue
        rel = name.removeprefix("model").removeprefix(".")
        if rel and rel.count(".") >= module_depth:
            continue
        by_module[rel] = 2 * sum(_split(counter)[0].values())
    return costed, uncounted, by_module


def _flop_counter(module: nn.Module, call: ModelCall) -> dict[str, int]:
    with FlopCounterMode(display=False, custom_mapping=flop_counter_mapping()) as counter:
        module(*call.args, **call.kwargs)
    return {str(op): int(v) for op, v in counter.get_flop_counts().get("Global", {}).items()}


def _run_error(loaded: LoadedModel, name: str, shape: tuple[int, ...], exc: Exception) -> Exception:
    what = f"{name} at input shape {shape}"
    return ModelFileError(
        f"running {what} failed: {type(exc).__name__}: {exc}",
        [Problem(f"{what} raised {type(exc).__name__}: {exc}", file=loaded.path.name)],
    )


def count_call(
    loaded: LoadedModel,
    module: nn.Module,
    name: str,
    shape: tuple[int, ...],
    call: ModelCall,
    *,
    device: str = "cpu",
    cross_check: bool = True,
    module_depth: int = 2,
    disable_fastpath: bool = True,
) -> ShapeCount:
    """Count `module` (labelled `name`) on a prepared call. See `count_module`."""
    module.eval()
    module.to(device)
    call = call.to(device)
    with torch.no_grad(), fastpath_disabled(disable_fastpath):
        start = time.perf_counter()
        try:
            costed, uncounted, by_module = _fvcore(module, call, module_depth)
        except Exception as exc:
            raise _run_error(loaded, name, shape, exc) from exc
        fvcore_seconds = time.perf_counter() - start
        cross: dict[str, int] = {}
        cross_flops: int | None = None
        error: str | None = None
        start = time.perf_counter()
        if cross_check:
            try:
                cross = _flop_counter(module, call)
                cross_flops = sum(cross.values())
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        cross_seconds = time.perf_counter() - start

    macs = sum(costed.values())
    norm = sum(v for k, v in costed.items() if k in NORM_OPS)
    compared = 2 * sum(v for k, v in costed.items() if k not in FVCORE_ONLY_OPS)
    disagreement: float | None = None
    agrees = True
    if cross_flops is not None:
        top = max(compared, cross_flops)
        disagreement = abs(compared - cross_flops) / top if top else 0.0
        agrees = disagreement <= AGREEMENT_TOLERANCE
    elif cross_check:
        agrees = False
    return ShapeCount(
        module=name,
        shape=tuple(shape),
        input=call.description,
        flops=2 * macs,
        macs=macs,
        norm_flops=2 * norm,
        compared_flops=compared,
        cross_check_flops=cross_flops,
        agrees=agrees,
        disagreement=disagreement,
        by_operator={k: 2 * v for k, v in sorted(costed.items())},
        cross_check_by_operator=dict(sorted(cross.items())),
        by_module=by_module,
        uncounted=dict(sorted(uncounted.items())),
        fvcore_seconds=round(fvcore_seconds, 6),
        cross_check_seconds=round(cross_seconds, 6),
        cross_check_error=error,
    )


def warm_up() -> None:
    """Count a tiny module once: the first FlopCounterMode of a process spends about a second
    setting itself up. Done before forking counting workers, so that none of them repeats it."""
    tiny = nn.Linear(2, 2)
    call = ModelCall((torch.ones(1, 2),), {}, "warm-up")
    loaded = LoadedModel(path=Path("warm-up"), entire_model=tiny)
    count_call(loaded, tiny, "warm-up", (2,), call)


def count_module(
    loaded: LoadedModel,
    name: str | None,
    shape: tuple[int, ...],
    *,
    device: str = "cpu",
    seed: int = 0,
    first_segment: int | None = None,
    cross_check: bool = True,
    module_depth: int = 2,
) -> ShapeCount:
    """Cost of one module at one input shape (shape without the batch dimension; batch 1).

    name None (or "entire_model" when module_list has no such entry) counts `entire_model`
    on `shape` = (L,) token ids, with attention_mask / token_type_ids as the contract says
    (`first_segment` tokens of type 0, the rest type 1). Otherwise counts module_list[name]
    on the input the contract builds for `shape`. `seed` picks the random input.
    """
    shape = tuple(int(s) for s in shape)
    if name is None or (name == ENTIRE_MODEL and name not in loaded.module_list):
        if len(shape) != 1:
            raise ValueError(f"entire_model takes a (length,) shape, got {shape}")
        call = model_call(loaded, shape[0], seed=seed, first_segment=first_segment)
        label, module = ENTIRE_MODEL, loaded.entire_model
    else:
        module = loaded.module(name)  # unknown names raise ModelFileError before any work
        try:
            call = module_call(loaded, name, shape, seed=seed)
        except ModelFileError:
            raise
        except Exception as exc:
            raise _run_error(loaded, name, shape, exc) from exc
        label = name
    return count_call(
        loaded,
        module,
        label,
        shape,
        call,
        device=device,
        cross_check=cross_check,
        module_depth=module_depth,
    )
