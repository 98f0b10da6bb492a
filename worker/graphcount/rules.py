"""The cost rule table: every operator the counter may meet, with its cost in two conventions.

One row per operator (ATen packet name, all overloads alike). Costs are symbolic (sympy) in the
shapes of the operator's inputs and output, so one walk of the graph gives the cost at every
length. Two conventions:

- **FLOPs** (the ranking axis): everything the model computes. Products (mm, bmm, addmm,
  convolution, ...) at 2 x multiply-accumulates, a complex multiply-accumulate at 4 real ones;
  elementwise arithmetic at 1 per output element (a complex multiply at 6); reductions at 1 per
  input element; normalisations, softmax, activations and FFTs by the per-element formulas
  below; views, copies, indexing and shape operators at 0, by name.
- **ELUE FLOPs** (for comparison with papers): 2 x multiply-accumulates of the products plus
  LayerNorm (and the other normalisations) at fvcore's 5 per element x 2, as ELUE's counter and
  its published numbers use; everything else 0.

An operator that is not in the table makes the count *incomplete*: the counter names it and
the number is a lower bound, kept off the fronts. Nothing costs 0 because it is unknown.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sympy
import torch

RULES_VERSION = "1"

Expr = Any  # sympy.Expr or int
CostFn = Callable[[Sequence[Any], dict[str, Any], Any], tuple[Expr, Expr]]


def size(value: Any) -> Expr:
    """A (possibly symbolic) int as a sympy expression."""
    if isinstance(value, torch.SymInt):
        return value.node.expr
    return sympy.Integer(int(value))


def shape(t: Any) -> list[Expr]:
    return [size(s) for s in t.shape]


def numel(t: Any) -> Expr:
    out: Expr = sympy.Integer(1)
    for s in shape(t):
        out *= s
    return out


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def out_numel(out: Any) -> Expr:
    return sum((numel(t) for t in _tensors(out)), sympy.Integer(0))


def _complex(*tensors: Any) -> bool:
    return any(isinstance(t, torch.Tensor) and t.is_complex() for t in tensors)


def _product(macs: Expr, *tensors: Any) -> Expr:
    """2 FLOPs per multiply-accumulate; a complex one is 4 real multiply-accumulates."""
    return 2 * macs * (4 if _complex(*tensors) else 1)


# --- products ----------------------------------------------------------------------------------


def _mm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    a, b = args[0], args[1]
    m, k = shape(a)
    n = shape(b)[1]
    flops = _product(m * k * n, a, b)
    return flops, flops


def _addmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    bias, a, b = args[0], args[1], args[2]
    m, k = shape(a)
    n = shape(b)[1]
    flops = _product(m * k * n, a, b)
    return flops + numel(out) * (2 if _complex(bias) else 1), flops


def _addmm_activation(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    full, elue = _addmm(args, kwargs, out)
    use_gelu = bool(args[5]) if len(args) > 5 else bool(kwargs.get("use_gelu", False))
    return full + numel(out) * (8 if use_gelu else 1), elue


def _bilinear(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    # y_k = x1^T W_k x2 + b_k: per output element, in1 x in2 + in2 multiply-accumulates
    x1, x2, weight = args[0], args[1], args[2]
    in1, in2 = shape(x1)[-1], shape(x2)[-1]
    del weight
    flops = _product(numel(out) * (in1 * in2 + in2), x1, x2)
    bias = args[3] if len(args) > 3 else None
    return flops + (numel(out) if bias is not None else 0), flops


def _bmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    a, b = args[0], args[1]
    batch, m, k = shape(a)
    n = shape(b)[2]
    flops = _product(batch * m * k * n, a, b)
    return flops, flops


def _baddbmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    flops = _bmm(args[1:], kwargs, out)[0]
    return flops + numel(out), flops


def _conv_macs(x: Any, w: Any, out: Any, transposed: bool, groups: Any) -> Expr:
    """Multiply-accumulates of a convolution: each output (or, transposed, input) element
    takes in_channels/groups x kernel elements."""
    kernel: Expr = sympy.Integer(1)
    for s in shape(w)[2:]:
        kernel *= s
    if transposed:
        # weight (in, out/groups, k...): every input element is spread over out/groups x kernel
        return numel(x) * shape(w)[1] * kernel
    # weight (out, in/groups, k...)
    return numel(out) * shape(w)[1] * kernel


def _convolution(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    x, w, bias = args[0], args[1], args[2]
    transposed = bool(args[6]) if len(args) > 6 else bool(kwargs.get("transposed", False))
    groups = args[8] if len(args) > 8 else kwargs.get("groups", 1)
    flops = _product(_conv_macs(x, w, out, transposed, groups), x, w)
    extra = numel(out) if bias is not None else 0
    return flops + extra, flops


def _mkldnn_convolution(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    x, w, bias = args[0], args[1], args[2]
    flops = _product(_conv_macs(x, w, out, False, 1), x, w)
    return flops + (numel(out) if bias is not None else 0), flops


def _conv_tbc(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    # input (time, batch, in), weight (kernel, in, out), bias (out,)
    x, w = args[0], args[1]
    kernel, c_in, _c_out = shape(w)
    flops = _product(numel(out) * c_in * kernel, x, w)
    return flops + numel(out), flops


def _cdist(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    # (.., P, M) x (.., R, M) -> (.., P, R): per pair, M differences, M products, M sums.
    m = shape(args[0])[-1]
    pairs = numel(out)
    return 3 * pairs * m, 2 * pairs * m


def _embedding_bag(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    weight, indices = args[0], args[1]
    per_sample = args[6] if len(args) > 6 else kwargs.get("per_sample_weights")
    dim = shape(weight)[1]
    looked_up = numel(indices) * dim
    if per_sample is not None:  # a weighted sum of rows: one multiply-accumulate per element
        return 2 * looked_up, 2 * looked_up
    return looked_up, sympy.Integer(0)  # sums (or means / maxes) of looked-up rows


def _rnn_rule(gates: int) -> CostFn:
    """aten.lstm / gru / rnn_* kept whole: per step and direction, the input and hidden
    products of every gate (2 x MACs, biases added), plus the gate arithmetic."""

    def rule(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
        x = args[0]
        params = [p for p in _tensors(args[2]) if p.dim() == 2]
        batch_first = bool(args[-1])
        steps = shape(x)[1] if batch_first else shape(x)[0]
        batch = shape(x)[0] if batch_first else shape(x)[1]
        macs: Expr = sympy.Integer(0)
        hidden: Expr = sympy.Integer(0)
        for w in params:  # w_ih (gates*H, in) and w_hh (gates*H, H) of every layer/direction
            rows, cols = shape(w)
            macs += rows * cols
            hidden += rows
        products = 2 * macs * steps * batch
        # biases (2 adds per gate row), gate nonlinearities and state update: ~8 per gate row
        elementwise = hidden * steps * batch * 5
        return products + elementwise, products

    return rule


def _fft(half: bool) -> CostFn:
    """5 N log2 N per transform of length N (Cooley-Tukey); half of it for real transforms.

    N is read on the real side of a real transform (the output of c2r, the input of r2c) and
    on either side of a complex one.
    """

    def rule(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
        x = args[0]
        real_out = isinstance(out, torch.Tensor) and not out.is_complex() and x.is_complex()
        if real_out:
            x = out
        dims = list(args[1]) if len(args) > 1 else []
        sizes = shape(x)
        n: Expr = sympy.Integer(1)
        for d in dims:
            n *= sizes[int(d)]
        batch = numel(x) / n
        cost = 5 * n * sympy.log(n, 2) * batch
        return (cost / 2 if half else cost), sympy.Integer(0)

    return rule


# --- per-element rules -------------------------------------------------------------------------


def _per_output(k: int, complex_k: int | None = None) -> CostFn:
    def rule(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
        factor = complex_k if complex_k is not None and _complex(*args, out) else k
        return factor * out_numel(out), sympy.Integer(0)

    return rule


def _per_input(k: int) -> CostFn:
    def rule(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
        return k * numel(args[0]), sympy.Integer(0)

    return rule


def _norm(k_full: int, k_elue: int) -> CostFn:
    def rule(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
        n = numel(args[0])
        return k_full * n, k_elue * n

    return rule


def _scatter_src(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    src = [t for t in _tensors(list(args[1:])) if t.is_floating_point() or t.is_complex()]
    return (numel(src[-1]) if src else out_numel(out)), sympy.Integer(0)


def _sort(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    x = args[0]
    sizes = shape(x)
    if not sizes:
        return sympy.Integer(0), sympy.Integer(0)
    dim = int(args[1]) if len(args) > 1 and isinstance(args[1], int) else -1
    n = sizes[dim]
    return numel(x) * sympy.ceiling(sympy.log(sympy.Max(n, 2), 2)), sympy.Integer(0)


def _pool(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    kernel = args[1] if len(args) > 1 else [1]
    k: Expr = sympy.Integer(1)
    for s in kernel if isinstance(kernel, list | tuple) else [kernel]:
        k *= size(s)
    first = _tensors(out)[0]
    return numel(first) * k, sympy.Integer(0)


def _adaptive_pool(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    return numel(args[0]), sympy.Integer(0)


def _zero(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[Expr, Expr]:
    return sympy.Integer(0), sympy.Integer(0)


@dataclass(frozen=True)
class Rule:
    kind: str  # product | elementwise | reduction | normalisation | activation | fft | zero
    formula: str  # documentation: the cost in words
    cost: CostFn


def _rows() -> dict[str, Rule]:
    rows: dict[str, Rule] = {}

    def add(names: str, kind: str, formula: str, cost: CostFn) -> None:
        for name in names.split():
            rows[name] = Rule(kind, formula, cost)

    product = "2 x multiply-accumulates (complex: x4)"
    add("mm", "product", product, _mm)
    add("addmm", "product", product + "; + 1 per output element (bias)", _addmm)
    add(
        "_addmm_activation",
        "product",
        product + "; + bias; + the activation (gelu 8, relu 1 per output element)",
        _addmm_activation,
    )
    add("bmm", "product", product, _bmm)
    add("baddbmm", "product", product + "; + 1 per output element", _baddbmm)
    add("convolution", "product", product + "; + 1 per output element (bias)", _convolution)
    add("mkldnn_convolution", "product", product + "; + bias", _mkldnn_convolution)
    add("conv_tbc", "product", product + "; + bias", _conv_tbc)
    add("bilinear", "product", product + " (x1^T W_k x2 per output); + bias", _bilinear)
    add("_cdist_forward", "product", "3 per pair per feature (ELUE: 2)", _cdist)
    add(
        "_embedding_bag embedding_bag _embedding_bag_forward_only",
        "product",
        "weighted: 2 per looked-up element (a product); plain: 1 per looked-up element",
        _embedding_bag,
    )
    rnn = "2 x MACs of every gate's input and hidden products per step; + 5 per gate row per step"
    add("lstm", "product", rnn, _rnn_rule(4))
    add("gru", "product", rnn, _rnn_rule(3))
    add("rnn_tanh rnn_relu", "product", rnn, _rnn_rule(1))
    add("_fft_r2c _fft_c2r", "fft", "2.5 N log2 N per real transform of length N", _fft(True))
    add("_fft_c2c", "fft", "5 N log2 N per complex transform of length N", _fft(False))

    add(
        "add sub rsub",
        "elementwise",
        "1 per output element (complex: 2)",
        _per_output(1, 2),
    )
    add("mul div", "elementwise", "1 per output element (complex: 6)", _per_output(1, 6))
    add(
        "neg abs sign reciprocal remainder fmod floor ceil round trunc clamp clamp_min "
        "clamp_max maximum minimum where eq ne lt le gt ge logical_and logical_or logical_not "
        "logical_xor bitwise_and bitwise_or bitwise_xor bitwise_not isinf isnan masked_fill "
        "fill_ relu hardtanh leaky_relu elu threshold lerp addcmul addcdiv",
        "elementwise",
        "1 per output element",
        _per_output(1),
    )
    add(
        "exp exp2 expm1 log log2 log10 log1p sqrt rsqrt pow sin cos tan asin acos atan atan2 "
        "sinh cosh tanh asinh acosh atanh erf erfinv",
        "elementwise",
        "1 per output element (one operation, as ELECTRA's and ELUE's conventions)",
        _per_output(1),
    )
    add("sigmoid", "activation", "4 per output element (neg, exp, add, divide)", _per_output(4))
    add("gelu", "activation", "8 per output element (tanh form, as ELECTRA)", _per_output(8))
    add(
        "silu mish hardswish hardsigmoid softplus",
        "activation",
        "4 per output element",
        _per_output(4),
    )
    add(
        "_softmax _log_softmax",
        "activation",
        "5 per element (max, subtract, exp, sum, divide)",
        _per_input(5),
    )
    add(
        "native_layer_norm native_group_norm",
        "normalisation",
        "10 per element (fvcore's 5 x 2), ELUE too",
        _norm(10, 10),
    )
    add(
        "_native_batch_norm_legit_no_training _native_batch_norm_legit native_batch_norm",
        "normalisation",
        "8 per element (fvcore's 4 x 2), ELUE too",
        _norm(8, 8),
    )
    add(
        "sum mean amax amin max min prod any all argmax argmin cumsum cumprod logsumexp "
        "var std var_mean norm linalg_vector_norm",
        "reduction",
        "1 per input element",
        _per_input(1),
    )
    add(
        # scatter too: its reduce= forms add or multiply (a plain scatter is a copy, counted
        # the same, on the safe side)
        "scatter scatter_add scatter_reduce index_add index_put index_put_ masked_scatter",
        "elementwise",
        "1 per source element",
        _scatter_src,
    )
    add("sort topk argsort", "reduction", "n ceil(log2 n) per sorted dimension", _sort)
    add(
        "max_pool2d_with_indices max_pool3d_with_indices avg_pool2d avg_pool3d max_pool1d "
        "avg_pool1d",
        "reduction",
        "kernel elements per output element",
        _pool,
    )
    add(
        "adaptive_avg_pool1d _adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_max_pool2d",
        "reduction",
        "1 per input element",
        _adaptive_pool,
    )
    add(
        "upsample_bilinear2d upsample_nearest2d grid_sampler_2d col2im",
        "elementwise",
        "4 per output element",
        _per_output(4),
    )
    add(
        # views and shapes
        "view _unsafe_view reshape alias as_strided permute transpose t expand squeeze "
        "unsqueeze select slice diagonal split split_with_sizes unbind chunk narrow flatten "
        "unflatten view_as_real view_as_complex _reshape_alias detach lift_fresh_copy "
        # copies, constructors, padding (memory, not arithmetic)
        "clone _to_copy copy copy_ contiguous cat stack flip roll repeat constant_pad_nd "
        "reflection_pad1d reflection_pad2d reflection_pad3d replication_pad2d "
        "replication_pad3d arange full full_like empty empty_like empty_strided "
        "empty_permuted zeros zeros_like ones ones_like scalar_tensor fill new_zeros new_ones "
        "new_empty new_full rand randn randperm randint rand_like randn_like native_dropout "
        "bernoulli tril triu "
        # indexing and gathers (a table lookup is no arithmetic)
        "embedding index index_select gather select_scatter slice_scatter nonzero "
        "masked_select take "
        # symbolic sizes and bookkeeping
        "sym_size sym_numel sym_stride sym_storage_offset sym_is_contiguous size stride numel "
        "dim resize_ "
        "_local_scalar_dense "
        "_assert_tensor_metadata _assert_async _assert_scalar _functional_assert_async "
        "scalar_tensor lift dropout _to_dense complex",
        "zero",
        "0 (views, copies, indexing, constructors and shapes)",
        _zero,
    )
    return rows


RULES: dict[str, Rule] = _rows()
# Non-aten operators (prims, Python operators on sizes) that cost nothing, by qualified name.
ZERO_QUALIFIED = frozenset({"prims.device", "prim.device", "prim.layout", "prim.dtype"})


def rule_for(namespace: str, name: str) -> Rule | None:
    if namespace == "aten":
        return RULES.get(name)
    if f"{namespace}.{name}" in ZERO_QUALIFIED:
        return Rule("zero", "0", _zero)
    return None


def table() -> list[dict[str, str]]:
    """The rule table as rows (the method page and the hash)."""
    return [
        {"operator": f"aten.{name}", "kind": rule.kind, "formula": rule.formula}
        for name, rule in sorted(RULES.items())
    ]


def rule_table_hash() -> str:
    """sha256 of the table's names, kinds and formulas, and of this file's rules version."""
    text = json.dumps({"version": RULES_VERSION, "rows": table()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def evaluate(expr: Expr, length: int) -> float:
    """An expression at one length (symbol-free expressions too)."""
    value = sympy.sympify(expr)
    free = value.free_symbols
    if free:
        value = value.subs(dict.fromkeys(free, length))
    return float(value)


__all__ = ["RULES", "RULES_VERSION", "Rule", "evaluate", "rule_for", "rule_table_hash", "table"]
