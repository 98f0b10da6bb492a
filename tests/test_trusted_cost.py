"""Trusted cost counting (issue 10): adversarial model files and the real families.

Convention of every expected number here: the ranking FLOPs ("FLOPs") of the rule table
(`worker.graphcount.rules`): products at 2 x multiply-accumulates (a complex one is 4 real
ones), elementwise arithmetic at 1 per output element, reductions at 1 per input element,
softmax 5 and LayerNorm 10 per element, GELU 8, sigmoid 4; views, copies and lookups 0.
Where a number is the ELUE convention (products + LayerNorm only) the test says so.

Every attack is either counted within 1% of its true cost or refused / marked incomplete,
never silently low. Attacks run through `run_cost_job` (the real sandbox, then the trusted
counter in its own process); the honest families are captured in this process (they are our
own files) and counted with the same trusted functions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import sympy
import torch

from core.settings import Settings
from worker.capture import capture
from worker.counting_stage import CostJob, SandboxRun, run_cost_job
from worker.graphcount import rules
from worker.graphcount.count import PathError, count_capture
from worker.graphcount.fvcheck import cross_check
from worker.graphcount.graph import Capture, Graph, walk_graph

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "models" / "cost"
EXAMPLES = REPO / "examples"
LENGTHS = [10, 37]

pytestmark = pytest.mark.skipif(
    not any(Path(p, "bwrap").exists() for p in ("/usr/bin", "/bin", "/usr/local/bin")),
    reason="the sandbox needs bubblewrap",
)


# --- helpers ---------------------------------------------------------------------------------


def sandbox(name: str, entries: list[dict[str, Any]]) -> SandboxRun:
    """The whole cost job for a model file: sandboxed capture, then the trusted counter."""
    sizes = {e["key"]: len(e["lengths"]) for e in entries}
    job = CostJob(entries=entries, sizes=sizes)
    return run_cost_job((MODELS / name).read_bytes(), job, Settings(), device="cpu")


def static(lengths: list[int] = LENGTHS) -> list[dict[str, Any]]:
    return [{"key": "s", "kind": "static", "lengths": lengths}]


def local(path: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Our own (honest) model files: captured here, counted by the trusted functions."""
    lengths = sorted({n for e in entries for n in e["lengths"]})
    raw = capture({"model": str(path), "lengths": lengths})
    cap = Capture.model_validate(json.loads(json.dumps(raw)))
    return count_capture(cap, entries, cross_check=lambda g: cross_check(g, cap.graphs))


def flops(report: dict[str, Any], key: str = "s") -> list[int]:
    entry = report["entries"][key]
    assert entry["incomplete"] == [], entry["incomplete"]
    return list(entry["per_sample_flops"])


def close(ours: float, truth: float, tol: float = 0.01) -> bool:
    return abs(ours - truth) <= tol * truth


def assert_counted(run: SandboxRun, truth: list[float], tol: float = 0.01) -> list[int]:
    assert run.failure is None, run.failure
    assert run.output is not None
    assert run.output.ok
    entry = run.output.entries["s"]
    assert entry.incomplete == [], entry.incomplete
    ours = list(entry.per_sample_flops)
    for got, want in zip(ours, truth, strict=True):
        assert close(got, want, tol), f"counted {got:,} for a true cost of {want:,.0f}"
    return ours


def bert_layer(n: int, h: int, heads: int, ffn: int) -> int:
    """One post-LN BERT layer (eager attention, GELU FFN) at n tokens, ranking FLOPs:
    4 Linears h->h (+bias), QK^T and AV (2 n^2 h each), scale 1 and softmax 5 per score,
    two FFN Linears (+bias) and GELU 8, two residual adds, two LayerNorms at 10."""
    return (
        8 * n * h * h
        + 4 * n * n * h
        + 6 * heads * n * n
        + 27 * n * h
        + 4 * n * h * ffn
        + 9 * n * ffn
    )


# --- 1. every Linear rewrite, RNNs, complex products, int8 -----------------------------------

D = 768
LINEAR_REWRITES: dict[str, Any] = {
    # file: true ranking FLOPs at n tokens
    "linear_tensordot.py": lambda n: 2 * n * D * D,
    "linear_multidot.py": lambda n: 2 * 2 * n * D * D,
    "linear_vecdot.py": lambda n: 2 * n * D * D,
    "linear_mulsum.py": lambda n: 2 * n * D * D,  # n D^2 multiplies + n D^2 adds
    "linear_bilinear.py": lambda n: 2 * n * 64 * D * D,
    "linear_cdist.py": lambda n: 3 * n * D * D,  # difference, square, sum per pair/feature
    "linear_conv_tbc.py": lambda n: 2 * n * D * D + n * D,
    "linear_embedding_bag.py": lambda n: 2 * n * D * D,
    "linear_addmm_activation.py": lambda n: 2 * n * D * D + 9 * n * D,  # bias + GELU
    # complex: 4 real multiply-accumulates per complex one
    "complex_matmul.py": lambda n: 8 * n * 256 * 256,
}


# The default run keeps one rewrite of each kind (contraction, bilinear form, distance, bag);
# the rest run with `pytest -m slow` (each is a sandbox run of about 10 s).
_DEFAULT_REWRITES = {
    "linear_tensordot.py",
    "linear_bilinear.py",
    "linear_cdist.py",
    "linear_embedding_bag.py",
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=() if n in _DEFAULT_REWRITES else pytest.mark.slow)
        for n in sorted(LINEAR_REWRITES)
    ],
)
def test_linear_rewrite_counted_in_sandbox(name: str) -> None:
    truth = [LINEAR_REWRITES[name](n) for n in LENGTHS]
    assert_counted(sandbox(name, static()), truth)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("linear_mkldnn.py", "could not capture"),
        ("linear_numpy.py", "could not capture"),
        ("linear_sparse.py", "sparse"),
        ("quantized_dynamic.py", "int8"),
        ("content_dependent.py", "depends on the input values"),
        ("cond_exit.py", "torch.cond"),
    ],
)
def test_uncountable_model_refused_with_a_message(name: str, says: str) -> None:
    run = sandbox(name, static())
    assert run.failure is not None
    assert says in run.failure, run.failure
    assert run.output is None or not run.output.ok  # nothing counted, nothing to store


def test_bilstm_counted_per_step() -> None:
    """LSTM 128 -> 256 both ways: 4 gates x 256 x (128 + 256) MACs per step and direction;
    the gate arithmetic (5 per gate row per step) on top, so within [products, +2%]."""
    products = [2 * 2 * n * 4 * 256 * (128 + 256) + 2 * 512 * 2 for n in LENGTHS]
    run = sandbox("bilstm.py", static())
    ours = assert_counted(run, products, tol=0.02)
    assert all(o >= p for o, p in zip(ours, products, strict=True))
    assert run.output is not None
    elue = run.output.entries["s"].per_sample_flops_elue
    assert list(elue) == products  # ELUE convention: the products exactly


def test_length_branch_counted_at_every_length() -> None:
    """`if L > 16` in forward: lengths on both sides of the branch, each costed as it runs."""

    def truth(n: int) -> int:
        small = 2 * n * 256 * 2 + 2 * n
        return small + (2 * n * 256 * 256 + 256 * n if n > 16 else 0)

    lengths = [7, 10, 40, 100]
    run = sandbox("length_branch.py", static(lengths))
    assert_counted(run, [truth(n) for n in lengths])


# --- 2. forged reports, patched counters, hidden parameters ---------------------------------


@pytest.fixture(scope="module")
def reference() -> SandboxRun:
    run = sandbox("reference_linear.py", static())
    assert run.failure is None
    assert run.output is not None
    return run


def test_reference_linear(reference: SandboxRun) -> None:
    assert reference.output is not None
    assert reference.output.params == 1000 * 512 + 512 * 512 + 512
    truth = [2 * n * 512 * 512 + n * 512 for n in LENGTHS]
    assert list(reference.output.entries["s"].per_sample_flops) == truth


def _same_numbers(run: SandboxRun, reference: SandboxRun) -> None:
    assert run.failure is None, run.failure
    assert run.output is not None
    assert reference.output is not None
    assert run.output.params == reference.output.params
    mine, ref = run.output.entries["s"], reference.output.entries["s"]
    assert mine.per_sample_flops == ref.per_sample_flops
    assert mine.per_sample_flops_elue == ref.per_sample_flops_elue
    assert mine.incomplete == []
    assert mine.all_agree == ref.all_agree


def test_patched_counters_change_nothing(reference: SandboxRun) -> None:
    _same_numbers(sandbox("patch_counters.py", static()), reference)


def test_forged_report_changes_nothing(reference: SandboxRun) -> None:
    """fd 1 and sys.stdout are the log; what the forgery writes on the other descriptors comes
    before the capture's marker and is ignored: the numbers are the honest reference's."""
    run = sandbox("forge_report.py", static())
    assert run.failure is None, run.failure
    _same_numbers(run, reference)


def test_forge_and_exit_stores_nothing() -> None:
    run = sandbox("forge_and_exit.py", static())
    assert run.output is None
    assert run.failure is not None
    assert run.reason == "no_report"


def test_hidden_parameters_counted_from_the_graph() -> None:
    """A buffer, a plain tensor attribute and a closure, with named_parameters() overridden."""
    run = sandbox("hidden_parameters.py", static())
    assert_counted(run, [3 * 2 * n * 256 * 256 for n in LENGTHS])
    assert run.output is not None
    assert run.output.params == 3 * 256 * 256 + 1000 * 256


# --- 3. module paths: lies refused by line, the truth costs emb + layers + exits --------------

H, HEADS, FFN = 64, 4, 256


def _elastic_emb(n: int) -> int:
    return 12 * n * H  # two embedding adds + LayerNorm


def _elastic_exit() -> int:
    return (2 * H * H + H) + H + (2 * H * 2 + 2)  # pooler, tanh, classifier


def _elastic_path(n: int, k: int) -> int:
    return _elastic_emb(n) + k * (bert_layer(n, H, HEADS, FFN) + _elastic_exit())


def _path(n: int, k: int) -> list[list[Any]]:
    steps: list[list[Any]] = [["emb", [n]]]
    for i in range(1, k + 1):
        steps += [[f"layer_{i}", [n, H]], [f"exit_{i}", [H]]]
    return steps


def test_correct_paths_cost_emb_layers_exits_and_exit_layer_agrees() -> None:
    lengths, exits = [10, 20, 7, 33], [1, 4, 2, 3]
    report = local(
        MODELS / "elastic_small.py",
        [
            {"key": "s", "kind": "static", "lengths": lengths},
            {"key": "x", "kind": "exit_layer", "exit_layers": exits, "lengths": lengths},
            {
                "key": "m",
                "kind": "modules",
                "paths": [_path(n, k) for n, k in zip(lengths, exits, strict=True)],
                "lengths": lengths,
            },
        ],
    )
    truth = [_elastic_path(n, k) for n, k in zip(lengths, exits, strict=True)]
    assert flops(report, "m") == truth
    assert flops(report, "x") == truth
    assert (
        report["entries"]["x"]["per_sample_flops_elue"]
        == (report["entries"]["m"]["per_sample_flops_elue"])
    )
    assert flops(report, "s") == [_elastic_path(n, 4) for n in lengths]  # the full pass


def test_lying_paths_refused_line_by_line() -> None:
    n = 12
    lies = [
        [["emb", [n]], ["layer_2", [n, H]], ["exit_2", [H]]],  # skips layer_1
        [["emb", [n]], ["layer_1", [1, H]], ["exit_1", [H]]],  # one-token layer shape
        [["emb", [n]], ["stand_in", [n, H]], ["exit_1", [H]]],  # not entire_model's
        [["emb", [n]], ["layer_1", [n, H]], ["unused", [H]], ["exit_1", [H]]],  # never called
        [["emb", [n]], ["exit_1", [H]], ["layer_1", [n, H]]],  # wrong order
        _path(n, 1),  # the truth
    ]
    entry = {"key": "s", "kind": "modules", "paths": lies, "lengths": [n] * len(lies)}
    entry["file"] = "paths.tsv"
    run = sandbox("elastic_small.py", [entry])
    assert run.failure is not None
    assert run.output is not None
    assert run.output.error is not None
    problems = run.output.error.problems
    by_line = {p["line"]: p["problem"] for p in problems}
    assert sorted(by_line) == [2, 3, 4, 5, 6]  # header is line 1; the true path (7) passes
    assert "skips layer_1" in by_line[2]
    assert "(1, 64)" in by_line[3]
    assert "(12, 64)" in by_line[3]
    assert "not a submodule" in by_line[4]
    assert "never called" in by_line[5]
    assert "order" in by_line[6]
    assert all(p["file"] == "paths.tsv" for p in problems)


def test_lying_paths_raise_path_error_in_the_counter() -> None:
    entry = {
        "key": "s",
        "kind": "modules",
        "paths": [[["emb", [8]], ["layer_3", [8, H]], ["exit_3", [H]]]],
        "lengths": [8],
    }
    with pytest.raises(PathError) as err:
        local(MODELS / "elastic_small.py", [entry])
    assert "skips layer_1, layer_2" in err.value.problems[0]["problem"]


# --- 4. real families, small configs ---------------------------------------------------------


def test_distilbert_tinybert_style() -> None:
    lengths = [5, 31, 64]
    report = local(MODELS / "family_bert_small.py", static(lengths))
    head = (2 * H * H + H) + H + (2 * H * 2 + 2)
    truth = [12 * n * H + 2 * bert_layer(n, H, HEADS, FFN) + head for n in lengths]
    assert flops(report) == truth
    layer_params = 4 * (H * H + H) + 2 * 2 * H + (H * FFN + FFN) + (FFN * H + H)
    emb_params = 1000 * H + 512 * H + 2 * H + 2 * H
    assert report["params"] == emb_params + 2 * layer_params + (H * H + H) + (H * 2 + 2)


def test_albert_shared_layer_params_once_flops_per_call() -> None:
    lengths = [9, 40]
    report = local(MODELS / "family_albert.py", static(lengths))
    truth = [3 * bert_layer(n, H, HEADS, FFN) + 2 * n * 32 * H + n * H for n in lengths]
    assert flops(report) == truth
    layer_params = 4 * (H * H + H) + 2 * 2 * H + (H * FFN + FFN) + (FFN * H + H)
    assert report["params"] == 1000 * 32 + (32 * H + H) + layer_params  # shared: once


def test_mobilebert_bottleneck_nonorm() -> None:
    def block(n: int) -> int:
        outer, inner, heads, ffn = 128, 32, 2, 64
        attention = 4 * (2 * n * inner * inner + n * inner) + 4 * n * n * inner + 6 * heads * n * n
        ffns = 2 * (2 * n * inner * ffn + n * ffn + n * ffn + 2 * n * ffn * inner + n * inner)
        down_up = (2 * n * outer * inner + n * inner) + (2 * n * inner * outer + n * outer)
        residuals = n * inner + 2 * n * inner + n * outer  # adds before each NoNorm
        nonorms = 2 * (n * inner + 2 * n * inner + n * outer)  # x * gamma + beta
        return attention + ffns + down_up + residuals + nonorms

    lengths = [6, 50]
    report = local(MODELS / "family_mobilebert.py", static(lengths))
    assert flops(report) == [2 * block(n) for n in lengths]
    entry = report["entries"]["s"]
    # ELUE: products only (NoNorm is no LayerNorm)
    assert entry["per_sample_flops_elue"] == [
        2 * (4 * 2 * n * 32 * 32 + 4 * n * n * 32 + 4 * 2 * n * 32 * 64 + 2 * 2 * n * 128 * 32)
        for n in lengths
    ]


def test_fnet_real_fft_path() -> None:
    """examples/fnet.py: FFT2 over (L, 256) at 2.5 N log2 N (real input), 4 layers."""
    lengths = [8, 30]
    report = local(EXAMPLES / "fnet.py", static(lengths))
    assert report["params"] == 10_118_402
    entry = report["entries"]["s"]
    assert entry["incomplete"] == []
    for n, full, elue in zip(
        lengths, entry["per_sample_flops"], entry["per_sample_flops_elue"], strict=True
    ):
        fft = 4 * 2.5 * n * 256 * math.log2(n * 256)
        assert full >= elue + fft  # products + norms, the FFTs, and the elementwise rest
        products = 4 * (2 * n * 256 * 1024 * 2 + 2 * 10 * n * 256) + 10 * n * 256
        assert elue >= products


def test_fnet_dft_complex_path() -> None:
    lengths = [5, 16, 23]
    report = local(MODELS / "family_fnet_dft.py", static(lengths))
    truth = [8 * n * n * 64 + 8 * n * 64 * 64 for n in lengths]
    entry = report["entries"]["s"]
    assert entry["per_sample_flops_elue"] == truth  # the complex products, exactly
    for got, want in zip(flops(report), truth, strict=True):
        assert want <= got <= want * 1.01 + 10 * 5 * 23 * 23  # + building F_L elementwise


def test_kronecker_kron_and_einsum_forms() -> None:
    lengths = [4, 64]
    report = local(MODELS / "family_kron.py", static(lengths))
    truth = [2 * n * 256 * 256 + 256 * 256 + 2 * 2 * n * 16**3 + n * 256 for n in lengths]
    assert flops(report) == truth


def test_linformer_length_projection() -> None:
    """E (16, 128) sliced to the length: stays a function of the length, never fixed."""
    lengths = [3, 64, 128]
    report = local(MODELS / "family_linformer.py", static(lengths))
    k = 16

    def truth(n: int) -> int:
        qkv = 3 * (2 * n * H * H + n * H)
        projections = 2 * (2 * k * n * H)
        attention = 2 * n * H * k + n * k + 5 * n * k + 2 * n * k * H
        return qkv + projections + attention

    assert flops(report) == [truth(n) for n in lengths]


def test_lora_and_adapter() -> None:
    lengths = [7, 70]
    report = local(MODELS / "family_lora.py", static(lengths))

    def truth(n: int) -> int:
        base = 2 * n * 128 * 128 + n * 128
        lora = 2 * n * 128 * 8 + 2 * n * 8 * 128 + n * 128 + n * 128  # scale, add
        adapter = (2 * n * 128 * 16 + n * 16) + n * 16 + (2 * n * 16 * 128 + n * 128) + n * 128
        return base + lora + adapter

    assert flops(report) == [truth(n) for n in lengths]


def test_magnitude_pruned_counts_dense() -> None:
    report = local(MODELS / "family_pruned.py", static([12, 90]))
    assert flops(report) == [2 * n * 256 * 256 + n * 256 for n in (12, 90)]
    assert report["params"] == 1000 * 256 + 256 * 256 + 256


def test_int8_plain_tensors_counted() -> None:
    """int8 weights as plain tensors dequantised in forward: the product and the dequantise."""
    report = local(MODELS / "family_int8.py", static([12, 90]))
    assert flops(report) == [2 * n * 256 * 256 + 256 * 256 for n in (12, 90)]
    assert report["params"] == 1000 * 256 + 256 * 256 + 1
    assert report["param_kinds"] == {"parameter": 1000 * 256, "buffer": 256 * 256 + 1}


def test_bigru() -> None:
    lengths = [6, 45]
    report = local(MODELS / "family_bigru.py", static(lengths))
    products = [2 * 2 * n * 3 * 128 * (64 + 128) + 2 * 256 * 2 for n in lengths]
    assert report["entries"]["s"]["per_sample_flops_elue"] == products
    for got, want in zip(flops(report), products, strict=True):
        assert want <= got <= want * 1.03


# --- 5. the rule table: closed over core ATen, default deny ----------------------------------

# Core ATen operators the counter refuses (no rule: the count is incomplete and names them).
# Backward operators never occur in an inference graph; `_pdist_forward` (torch.pdist) has no
# rule yet.
REFUSED_CORE = frozenset(
    {
        "_adaptive_avg_pool2d_backward",
        "avg_pool2d_backward",
        "convolution_backward",
        "embedding_dense_backward",
        "max_pool2d_with_indices_backward",
        "native_group_norm_backward",
        "native_layer_norm_backward",
        "_pdist_forward",
    }
)


def _core_aten_ops() -> set[str]:
    names: set[str] = set()
    for name in dir(torch.ops.aten):
        try:
            packet = getattr(torch.ops.aten, name)
        except (AttributeError, RuntimeError):
            continue
        if not hasattr(packet, "overloads"):
            continue
        for overload in packet.overloads():
            if torch.Tag.core in getattr(packet, overload).tags:
                names.add(name)
    return names


def test_every_core_aten_op_has_a_rule_or_is_refused() -> None:
    core = _core_aten_ops()
    assert len(core) > 100
    missing = sorted(n for n in core if n not in rules.RULES and n not in REFUSED_CORE)
    assert missing == [], f"core ATen operators with no rule and not listed: {missing}"
    assert not (REFUSED_CORE & set(rules.RULES)), "a refused operator has a rule now: unlist it"


def _graph(nodes: list[dict[str, Any]], outputs: list[Any]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "kind": "input", "target": "x", "shape": ["L", 8], "dtype": "float32"},
            {
                "name": "w",
                "kind": "parameter",
                "target": "w",
                "shape": [8, 8],
                "dtype": "float32",
                "storage": 0,
                "storage_elements": 64,
            },
        ],
        "nodes": [{"kw": {}, "stack": [], **n} for n in nodes],
        "outputs": outputs,
    }


@pytest.mark.parametrize(
    ("node", "op"),
    [
        (
            {"name": "u", "target": "aten._pdist_forward.default", "args": [{"n": "y"}, 2.0]},
            "aten._pdist_forward",
        ),
        (
            {"name": "u", "target": "aten.linalg_eigh.default", "args": [{"n": "w"}]},
            "aten._linalg_eigh",
        ),
    ],
)
def test_operator_without_rule_makes_the_count_incomplete(node: dict[str, Any], op: str) -> None:
    mm = {"name": "y", "target": "aten.mm.default", "args": [{"n": "x"}, {"n": "w"}]}
    graph = _graph([mm, node], [{"n": "u"}])
    cap = Capture.model_validate({"ok": True, "graphs": {"symbolic": graph}})
    report = count_capture(cap, static([10, 20]))
    entry = report["entries"]["s"]
    assert any(name.endswith(op.split(".")[1]) for name in entry["incomplete"]), entry
    assert entry["uncounted"]
    assert all(v > 0 for v in entry["uncounted"].values())
    # what is counted is the mm only: a lower bound, flagged, never presented as complete
    assert entry["per_sample_flops"] == [2 * n * 8 * 8 for n in (10, 20)]


# --- 6. the symbolic count equals the count at each concrete length --------------------------


def _walk_totals(graph: Graph, n: int) -> tuple[int, int]:
    walk = walk_graph(graph, symbolic=False, hint=n)
    assert walk.unknown == {}
    full = sum((c.full for c in walk.costs.values()), sympy.Integer(0))
    elue = sum((c.elue for c in walk.costs.values()), sympy.Integer(0))
    return int(full), int(elue)


def test_bert_base_symbolic_equals_fixed_lengths() -> None:
    lengths = [3, 64, 128, 301]
    raw = capture({"model": str(EXAMPLES / "bert_base_eager.py"), "lengths": lengths})
    cap = Capture.model_validate(json.loads(json.dumps(raw)))
    assert list(cap.graphs) == ["symbolic"]
    report = count_capture(cap, static(lengths))
    assert report["params"] == 109_483_778
    entry = report["entries"]["s"]
    assert entry["incomplete"] == []
    for i, n in enumerate(lengths):
        full, elue = _walk_totals(cap.graphs["symbolic"], n)
        assert entry["per_sample_flops"][i] == full
        assert entry["per_sample_flops_elue"][i] == elue
    # the ELUE convention at 128 tokens: products + 25 LayerNorms at 10 per element
    assert entry["per_sample_flops_elue"][2] == 22_348_434_432 + 25 * 128 * 768 * 10


def test_length_specialising_model_per_sample_truth() -> None:
    """The DFT path fixes the length inside the walk: walked per length, same numbers."""
    lengths = [5, 9, 16]
    raw = capture({"model": str(MODELS / "family_fnet_dft.py"), "lengths": lengths})
    cap = Capture.model_validate(json.loads(json.dumps(raw)))
    report = count_capture(cap, static(lengths))
    graph = cap.graphs.get("symbolic") or cap.graphs[str(lengths[0])]
    for i, n in enumerate(lengths):
        full, elue = _walk_totals(cap.graphs.get(str(n), graph), n)
        assert report["entries"]["s"]["per_sample_flops"][i] == full
        assert (
            report["entries"]["s"]["per_sample_flops_elue"][i]
            == elue
            == (8 * n * n * 64 + 8 * n * 64 * 64)
        )


def test_length_branch_graphs_per_length() -> None:
    """A Python branch on the length: captured per length when the job spans the branch."""
    raw = capture({"model": str(MODELS / "length_branch.py"), "lengths": [10, 40]})
    assert sorted(raw["graphs"]) == ["10", "40"]
    raw = capture({"model": str(MODELS / "length_branch.py"), "lengths": [5, 12]})
    assert list(raw["graphs"]) == ["symbolic"]  # every job length takes the same branch
