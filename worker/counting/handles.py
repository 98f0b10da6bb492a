"""Operator cost rules added to the two counters, and the operator lists they rely on.

fvcore handles receive `torch._C.Value` lists (jit trace) and return multiply-accumulates (MACs);
FlopCounterMode formulas receive shapes (dispatch time) and return FLOPs (2 x MACs). Every rule
added to one counter is added to the other with the same arithmetic, so the cross-check compares
like with like. The one exception is normalisation (LayerNorm etc.), which only fvcore costs:
see `FVCORE_ONLY_OPS`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch

# Prefix of the keys that the catch-all fvcore handle uses for operators nobody costs. Those keys
# carry element counts, not MACs, and are split off before any total is formed.
UNCOUNTED_PREFIX = "uncounted:"

# Operators treated as zero cost by design: they only reinterpret metadata (views, reshapes,
# shape queries, dtype/scalar conversions of Python numbers) or create constant tensors that do
# not depend on the input data. Everything else that no rule costs is listed in `uncounted`
# with the number of elements of its output -- including relu, dropout, softmax, gelu, add,
# embedding, cat, copies and dtype casts of tensors.
ZERO_COST_OPS: frozenset[str] = frozenset(
    {
        # shape and scalar queries / conversions
        "aten::size",
        "aten::sym_size",
        "aten::numel",
        "aten::dim",
        "aten::len",
        "aten::Int",
        "aten::IntImplicit",
        "aten::Float",
        "aten::FloatImplicit",
        "aten::Bool",
        "aten::ScalarImplicit",
        "aten::item",
        "aten::__getitem__",
        # views and reshapes (no data touched, or a layout copy reported by `reshape` users)
        "aten::view",
        "aten::view_as",
        "aten::reshape",
        "aten::reshape_as",
        "aten::_reshape_alias",
        "aten::flatten",
        "aten::unflatten",
        "aten::permute",
        "aten::transpose",
        "aten::swapaxes",
        "aten::swapdims",
        "aten::movedim",
        "aten::t",
        "aten::expand",
        "aten::expand_as",
        "aten::squeeze",
        "aten::unsqueeze",
        "aten::unsqueeze_",
        "aten::select",
        "aten::slice",
        "aten::narrow",
        "aten::split",
        "aten::split_with_sizes",
        "aten::tensor_split",
        "aten::chunk",
        "aten::unbind",
        "aten::alias",
        "aten::detach",
        "aten::real",
        "aten::imag",
        "aten::view_as_real",
        "aten::view_as_complex",
        # constant tensors independent of the input data
        "aten::arange",
        "aten::zeros",
        "aten::zeros_like",
        "aten::ones",
        "aten::ones_like",
        "aten::full",
        "aten::full_like",
        "aten::empty",
        "aten::empty_like",
        "aten::new_zeros",
        "aten::new_ones",
        "aten::new_full",
        "aten::new_empty",
        "aten::tensor",
        "aten::scalar_tensor",
        "aten::lift_fresh",
    }
)

# prim:: nodes are graph plumbing (constants, list construction, attribute access) and are zero
# cost, except these two, which hide real work (a custom autograd Function, a scripted call).
_PRIM_WITH_WORK = ("prim::PythonOp", "prim::CallFunction")

# Operators (as named in fvcore's per-operator breakdown) that fvcore costs and FlopCounterMode
# does not; removed from the fvcore side before the cross-check compares the two.
NORM_OPS: frozenset[str] = frozenset({"layer_norm", "group_norm", "batch_norm", "instance_norm"})
FVCORE_ONLY_OPS: frozenset[str] = NORM_OPS | frozenset(
    {"upsample_nearest2d", "upsample_bilinear2d", "adaptive_avg_pool2d", "grid_sampler"}
)

FvcoreHandle = Callable[[list[Any], list[Any]], "Counter[str] | int"]


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _shape(value: Any) -> list[int] | None:
    """Shape of a jit Value, or None when it is not a tensor of known shape."""
    if value.isCompleteTensor():
        return [int(s) for s in value.type().sizes()]
    return None


def _shapes(*values: Any) -> list[list[int]]:
    """Shapes of jit Values that must be tensors of known shape."""
    shapes = [_shape(v) for v in values]
    out = [x for x in shapes if x is not None]
    if len(out) != len(shapes):
        raise ValueError("an operator input has no known tensor shape")
    return out


def _ivalue(value: Any) -> Any:
    """Constant Python value of a jit Value (constants and lists of constants), else None."""
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [_ivalue(v) for v in node.inputs()]
    try:
        return value.toIValue()
    except RuntimeError:
        return None


def output_elements(outputs: list[Any]) -> int:
    """Elements of an operator's first output (0 when it is not a tensor of known shape)."""
    if not outputs:
        return 0
    shape = _shape(outputs[0])
    return _prod(shape) if shape is not None else 0


def _uncounted(kind: str) -> str:
    return UNCOUNTED_PREFIX + kind


class HandleTable(dict[str, FvcoreHandle]):
    """fvcore's handle table with a catch-all: every operator without a rule gets one.

    fvcore would merely log an unknown operator's name (and silently skip the ones on its own
    ignore list, such as relu and dropout). Here an operator with no cost rule contributes
    `uncounted:<kind>` = elements of its output instead, so it reaches the result with its
    size; operators in `ZERO_COST_OPS` and prim:: plumbing contribute nothing.
    """

    def __contains__(self, kind: object) -> bool:
        return True

    def __missing__(self, kind: str) -> FvcoreHandle:
        handle = _zero_cost_handle if _is_zero_cost(kind) else _uncounted_handle(kind)
        self[kind] = handle
        return handle


def _is_zero_cost(kind: str) -> bool:
    if kind in ZERO_COST_OPS:
        return True
    return kind.startswith("prim::") and not kind.startswith(_PRIM_WITH_WORK)


def _zero_cost_handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    return Counter()


def _uncounted_handle(kind: str) -> FvcoreHandle:
    key = _uncounted(kind)

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        return Counter({key: output_elements(outputs)})

    return handle


# --------------------------------------------------------------------------------------------
# Shared arithmetic (MACs), used by both counters.


def matmul_macs(a: Sequence[int], b: Sequence[int]) -> int:
    """MACs of torch.matmul with broadcasting (1-D operands included)."""
    if len(a) == 1 and len(b) == 1:
        return int(a[0])
    if len(a) == 1:
        return _prod(b[:-2]) * int(a[0]) * int(b[-1])
    if len(b) == 1:
        return _prod(a[:-1]) * int(b[0])
    return _prod(_broadcast(a[:-2], b[:-2])) * int(a[-2]) * int(a[-1]) * int(b[-1])


def _broadcast(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """Broadcast shape of two batch shapes (numpy rules)."""
    width = max(len(a), len(b))
    pa = [1] * (width - len(a)) + [int(x) for x in a]
    pb = [1] * (width - len(b)) + [int(x) for x in b]
    return [x if y == 1 else y for x, y in zip(pa, pb, strict=True)]


def attention_macs(q: Sequence[int], k: Sequence[int], v: Sequence[int]) -> tuple[int, int]:
    """(MACs of Q.K^T plus attn.V, elements of the attention matrix) for (..., L, E) inputs."""
    batch = _prod(q[:-2])
    length, source, e, ev = int(q[-2]), int(k[-2]), int(q[-1]), int(v[-1])
    return batch * length * source * (e + ev), batch * length * source


def mha_macs(q: Sequence[int], k: Sequence[int], embed_dim: int, num_heads: int) -> tuple[int, int]:
    """(MACs, attention-matrix elements) of fused multi-head attention with projections.

    q and k are (B, L, E) / (B, S, E) (or unbatched (L, E)); in/out projections are E x E each.
    """
    tokens_q, tokens_k = _prod(q[:-1]), _prod(k[:-1])
    batch = _prod(q[:-2])
    length, source = int(q[-2]), int(k[-2])
    projections = (2 * tokens_q + 2 * tokens_k) * embed_dim * embed_dim
    products = 2 * batch * length * source * embed_dim
    return projections + products, batch * num_heads * length * source


def encoder_layer_macs(
    src: Sequence[int], embed_dim: int, num_heads: int, ffn_dim: int
) -> tuple[int, int, int]:
    """(matmul MACs, LayerNorm MACs as fvcore costs them, attention elements) of one fused
    `nn.TransformerEncoderLayer` (torch's fast path `_transformer_encoder_layer_fwd`)."""
    macs, attn = mha_macs(src, src, embed_dim, num_heads)
    tokens = _prod(src[:-1])
    macs += 2 * tokens * embed_dim * ffn_dim
    layer_norm = 2 * tokens * embed_dim * 5
    return macs, layer_norm, attn


def fft_macs(shape: Sequence[int], dims: Sequence[int], sizes: Sequence[int], real: bool) -> int:
    """MACs charged for an FFT: 5 N log2 N FLOPs for a complex transform of N points (radix-2
    Cooley-Tukey), half that for a real-input or real-output transform, times the batch.

    shape: the input's shape; dims: transformed dims; sizes: signal length along each dim.
    """
    rank = len(shape)
    dims = [d % rank for d in dims] if rank else []
    batch = _prod([s for i, s in enumerate(shape) if i not in dims])
    points = _prod(sizes)
    if points <= 1:
        return 0
    flops = (2.5 if real else 5.0) * batch * points * math.log2(points)
    return round(flops / 2)


# --------------------------------------------------------------------------------------------
# fvcore handles (jit Values in, MACs out).


def _matmul_handle(inputs: list[Any], outputs: list[Any]) -> int:
    a, b = _shapes(inputs[0], inputs[1])
    return matmul_macs(a, b)


def _baddbmm_handle(inputs: list[Any], outputs: list[Any]) -> int:
    # baddbmm / addbmm / addmm(self, a, b, ...): the product of inputs 1 and 2
    a, b = _shapes(inputs[1], inputs[2])
    return matmul_macs(a, b)


def _sdpa_handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    q, k, v = _shapes(*inputs[:3])
    macs, attn = attention_macs(q, k, v)
    return Counter(
        {
            "scaled_dot_product_attention": macs,
            _uncounted("aten::scaled_dot_product_attention(softmax)"): attn,
        }
    )


def _native_mha_handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    q, k = _shapes(inputs[0], inputs[1])
    embed_dim, num_heads = _ivalue(inputs[3]), _ivalue(inputs[4])
    macs, attn = mha_macs(q, k, int(embed_dim), int(num_heads))
    return Counter(
        {
            "_native_multi_head_attention": macs,
            _uncounted("aten::_native_multi_head_attention(softmax)"): attn,
        }
    )


def _encoder_layer_handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    src, ffn_w1 = _shapes(inputs[0], inputs[14])
    embed_dim, num_heads = _ivalue(inputs[1]), _ivalue(inputs[2])
    macs, norm, attn = encoder_layer_macs(src, int(embed_dim), int(num_heads), ffn_w1[0])
    return Counter(
        {
            "_transformer_encoder_layer_fwd": macs,
            "layer_norm": norm,
            _uncounted("aten::_transformer_encoder_layer_fwd(softmax)"): attn,
        }
    )


# fvcore jit kinds of torch.fft functions: (real input or output?, default dims or None = all)
_FFT_KINDS: dict[str, tuple[bool, tuple[int, ...] | None]] = {
    "fft": (False, (-1,)),
    "ifft": (False, (-1,)),
    "fft2": (False, (-2, -1)),
    "ifft2": (False, (-2, -1)),
    "fftn": (False, None),
    "ifftn": (False, None),
    "rfft": (True, (-1,)),
    "irfft": (True, (-1,)),
    "rfft2": (True, (-2, -1)),
    "irfft2": (True, (-2, -1)),
    "rfftn": (True, None),
    "irfftn": (True, None),
    "hfft": (True, (-1,)),
    "ihfft": (True, (-1,)),
    "hfft2": (True, (-2, -1)),
    "ihfft2": (True, (-2, -1)),
    "hfftn": (True, None),
    "ihfftn": (True, None),
}
_C2R = frozenset({"irfft", "irfft2", "irfftn", "hfft", "hfft2", "hfftn"})


def _fft_handle(name: str) -> FvcoreHandle:
    real, default_dims = _FFT_KINDS[name]

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        # schema: (self, n | s, dim, norm)
        shape, out = _shapes(inputs[0], outputs[0])
        s, dim = _ivalue(inputs[1]), _ivalue(inputs[2])
        if isinstance(s, int):
            s = [s]
        if isinstance(dim, int):
            dim = [dim]
        if dim is None:
            dim = list(default_dims) if default_dims is not None else None
        if dim is None:
            rank = len(s) if s is not None else len(shape)
            dim = list(range(len(shape) - rank, len(shape)))
        if name in _C2R:
            # real output: the signal length is the output's size along each dim
            sizes = [out[d] for d in dim]
        else:
            sizes = list(s) if s is not None else [shape[d] for d in dim]
        return Counter({f"fft_{name}": fft_macs(shape, dim, sizes, real)})

    return handle


def fvcore_extra_handles() -> dict[str, FvcoreHandle]:
    """Handles added to (or replacing) fvcore's defaults."""
    handles: dict[str, FvcoreHandle] = {
        "aten::matmul": _matmul_handle,
        "aten::mm": _matmul_handle,
        "aten::mv": _matmul_handle,
        "aten::dot": _matmul_handle,
        "aten::vdot": _matmul_handle,
        "aten::baddbmm": _baddbmm_handle,
        "aten::addbmm": _baddbmm_handle,
        "aten::addmv": _baddbmm_handle,
        "aten::scaled_dot_product_attention": _sdpa_handle,
        "aten::_native_multi_head_attention": _native_mha_handle,
        "aten::_transformer_encoder_layer_fwd": _encoder_layer_handle,
    }
    for name in _FFT_KINDS:
        handles[f"aten::fft_{name}"] = _fft_handle(name)
    return handles


# --------------------------------------------------------------------------------------------
# FlopCounterMode formulas (shapes in, FLOPs out). Called as f(*args, out_shape=..., **kwargs)
# with every tensor argument replaced by its shape.


def _sdpa_cpu_flop(
    q: Sequence[int], k: Sequence[int], v: Sequence[int], *args: Any, **kwargs: Any
) -> int:
    return 2 * attention_macs(q, k, v)[0]


def _mv_flop(a: Sequence[int], b: Sequence[int], *args: Any, **kwargs: Any) -> int:
    return 2 * matmul_macs(a, b)


def _addmv_flop(
    self_shape: Sequence[int], a: Sequence[int], b: Sequence[int], *args: Any, **kwargs: Any
) -> int:
    return 2 * matmul_macs(a, b)


def _addbmm_flop(
    self_shape: Sequence[int], a: Sequence[int], b: Sequence[int], *args: Any, **kwargs: Any
) -> int:
    return 2 * matmul_macs(a, b)


def _native_mha_flop(
    q: Sequence[int],
    k: Sequence[int],
    v: Sequence[int],
    embed_dim: int,
    num_heads: int,
    *args: Any,
    **kwargs: Any,
) -> int:
    return 2 * mha_macs(q, k, embed_dim, num_heads)[0]


def _encoder_layer_flop(
    src: Sequence[int], embed_dim: int, num_heads: int, *args: Any, **kwargs: Any
) -> int:
    ffn_w1 = args[11] if len(args) > 11 else kwargs["ffn_weight_1"]
    return 2 * encoder_layer_macs(src, embed_dim, num_heads, int(ffn_w1[0]))[0]


def _fft_flop(kind: str) -> Callable[..., int]:
    def formula(shape: Sequence[int], dim: Sequence[int], *args: Any, **kwargs: Any) -> int:
        out = kwargs.get("out_shape")
        dims = [d % len(shape) for d in dim]
        if kind == "c2r":
            assert out is not None
            sizes = [int(out[d]) for d in dims]
            real = True
        else:
            sizes = [int(shape[d]) for d in dims]
            # r2c with onesided=False yields the full complex spectrum: costed as complex,
            # like the jit-level `fft_fft` of a real input that produces it
            onesided = args[1] if len(args) > 1 else kwargs.get("onesided", True)
            real = kind == "r2c" and bool(onesided)
        return 2 * fft_macs(shape, dims, sizes, real)

    return formula


def flop_counter_mapping() -> dict[Any, Callable[..., int]]:
    """`custom_mapping` for FlopCounterMode: CPU SDPA, fused MHA, mv/dot, FFT."""
    aten = torch.ops.aten
    mapping: dict[Any, Callable[..., int]] = {
        aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
        aten._native_multi_head_attention: _native_mha_flop,
        aten._transformer_encoder_layer_fwd: _encoder_layer_flop,
        aten.mv: _mv_flop,
        aten.dot: _mv_flop,
        aten.vdot: _mv_flop,
        aten.addmv: _addmv_flop,
        aten.addbmm: _addbmm_flop,
        aten._fft_c2c: _fft_flop("c2c"),
        aten._fft_r2c: _fft_flop("r2c"),
        aten._fft_c2r: _fft_flop("c2r"),
    }
    overrideable = getattr(aten, "_scaled_dot_product_fused_attention_overrideable", None)
    if overrideable is not None:
        mapping[overrideable] = _sdpa_cpu_flop
    return mapping
