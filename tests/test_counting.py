"""Cost counting (worker/counting): closed forms, the three under-counting traps, caches, errors."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from worker.counting import (
    LoadedModel,
    ModelFileError,
    ShapeCount,
    count_dynamic,
    count_module,
    count_parameters,
    count_static,
    exit_layer_paths,
    infer_hidden_size,
    load_model_file,
)
from worker.counting import plans as plans_module
from worker.counting.count import count_call
from worker.counting.loading import model_call, module_call

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BERT_PARAMS = 109_483_778

# The first counter (per distinct shape, in the sandbox) no longer counts submissions
# (worker/capture.py + worker/graphcount do); it stays for bench/bench_counting.py's
# side-by-side comparison, so its tests run with the slow ones.
pytestmark = pytest.mark.slow


def bert_closed_form(length: int, labels: int = 2) -> int:
    """ELUE closed form for BERT-base, FLOPs = 2 x MACs, LayerNorm excluded."""
    return 2 * (12 * (7_077_888 * length + 1_536 * length**2) + 768**2 + 768 * labels)


def bert_layer_norm(length: int) -> int:
    """What LayerNorm adds as fvcore costs it: 25 LayerNorms (embeddings + 2 per layer),
    5 MACs per element of an (L, 768) input, 2 FLOPs per MAC."""
    return 2 * 25 * length * 768 * 5


def write_model(tmp_path: Path, source: str, name: str = "model.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture(scope="module")
def bert_eager() -> LoadedModel:
    return load_model_file(EXAMPLES / "bert_base_eager.py")


@pytest.fixture(scope="module")
def bert_sdpa() -> LoadedModel:
    return load_model_file(EXAMPLES / "bert_base_sdpa.py")


@pytest.fixture(scope="module")
def eager_count(bert_eager: LoadedModel) -> Callable[[int], ShapeCount]:
    cache: dict[int, ShapeCount] = {}

    def get(length: int) -> ShapeCount:
        if length not in cache:
            cache[length] = count_module(bert_eager, None, (length,))
        return cache[length]

    return get


# --------------------------------------------------------------------------------------------
# BERT-base: closed form, LayerNorm, parameters, trap 1 (SDPA)


@pytest.mark.parametrize("length", [8, 37, 128])
def test_bert_eager_matches_closed_form(
    eager_count: Callable[[int], ShapeCount], length: int
) -> None:
    count = eager_count(length)
    assert count.flops - count.norm_flops == bert_closed_form(length)
    assert count.flops_without_norm == bert_closed_form(length)
    assert count.flops == 2 * count.macs
    # LayerNorm is the only normalisation, and it adds exactly 25 x L x 768 x 5 MACs
    assert count.norm_flops == bert_layer_norm(length)
    assert count.by_operator["layer_norm"] == count.norm_flops
    # the cross-check (FlopCounterMode, no LayerNorm) agrees exactly, like with like
    assert count.cross_check_flops == bert_closed_form(length)
    assert count.compared_flops == bert_closed_form(length)
    assert count.agrees
    assert count.disagreement == 0.0


def test_bert_eager_at_128_exact_numbers(eager_count: Callable[[int], ShapeCount]) -> None:
    count = eager_count(128)
    assert count.flops_without_norm == 22_348_434_432
    assert count.norm_flops == 24_576_000  # LayerNorm: +0.11%
    assert count.flops == 22_373_010_432
    assert count.by_operator == {
        "layer_norm": 24_576_000,
        "linear": 21_744_454_656,
        "matmul": 603_979_776,  # Q.K^T and attn.V: 12 layers x 2 x 768 x 128^2 MACs x 2
    }
    # elementwise work is listed with its size, not silently dropped
    assert count.uncounted["aten::softmax"] == 12 * 12 * 128 * 128
    assert count.uncounted["aten::gelu"] == 12 * 128 * 3072
    assert count.uncounted["aten::embedding"] == 3 * 128 * 768
    assert count.uncounted["aten::dropout"] > 0  # ignored by fvcore by default; listed here
    assert "aten::view" not in count.uncounted  # zero cost by design
    # per-module breakdown: top-level children and their children
    assert count.by_module[""] == count.flops
    assert count.by_module["classifier"] == 2 * 768 * 2
    assert count.by_module["bert.pooler"] == 2 * 768 * 768
    assert count.by_module["bert.embeddings"] == 2 * 128 * 768 * 5  # its LayerNorm only
    assert count.fvcore_seconds > 0
    assert count.cross_check_seconds > 0
    assert "attention_mask" in count.input
    assert "token_type_ids" in count.input
    json.dumps(asdict(count))  # plain JSON


def test_sdpa_variant_counts_like_eager(
    bert_sdpa: LoadedModel, eager_count: Callable[[int], ShapeCount]
) -> None:
    """Trap 1: SDPA's attention products are counted by both counters."""
    eager = eager_count(128)
    sdpa = count_module(bert_sdpa, None, (128,))
    assert sdpa.flops == eager.flops
    assert sdpa.cross_check_flops == eager.cross_check_flops == bert_closed_form(128)
    assert sdpa.by_operator["scaled_dot_product_attention"] == eager.by_operator["matmul"]
    assert (
        sdpa.cross_check_by_operator["aten._scaled_dot_product_flash_attention_for_cpu"]
        == (eager.cross_check_by_operator["aten.bmm"])
    )
    assert sdpa.agrees
    # the softmax inside SDPA is reported like the eager softmax
    assert (
        sdpa.uncounted["aten::scaled_dot_product_attention(softmax)"]
        == (eager.uncounted["aten::softmax"])
    )


def test_bert_parameters(bert_eager: LoadedModel) -> None:
    assert count_parameters(bert_eager.entire_model) == BERT_PARAMS


def test_shared_parameters_counted_once() -> None:
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.out = torch.nn.Linear(4, 10, bias=False)
            self.out.weight = self.emb.weight  # tied: the same Parameter
            base = torch.nn.Parameter(torch.zeros(6))
            self.a = base
            self.b = torch.nn.Parameter(base.data)  # another Parameter on the same storage
            self.c = torch.nn.Parameter(base.data[2:5])  # a view inside it
            self.d = torch.nn.Parameter(torch.zeros(3, 3).t())  # non-contiguous, own storage

    assert count_parameters(Tied()) == 40 + 6 + 9


# --------------------------------------------------------------------------------------------
# Trap 2: nn.TransformerEncoder fast path; trap 3: products written elementwise


ENCODER = """
import torch
from torch import nn

class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 64)
        layer = nn.TransformerEncoderLayer(64, 4, 256, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)

    def forward(self, input_ids, attention_mask=None):
        return self.encoder(self.emb(input_ids))

entire_model = Enc().eval()
module_list = {"encoder": entire_model.encoder}
"""


def encoder_closed_form(length: int, hidden: int = 64, ffn: int = 256, layers: int = 3) -> int:
    per_layer = 4 * length * hidden**2 + 2 * length * hidden * ffn + 2 * hidden * length**2
    return 2 * layers * per_layer


def test_transformer_encoder_fast_path_is_counted(tmp_path: Path) -> None:
    """Trap 2: in eval + no_grad the fused fast path would hide everything (FlopCounterMode
    counted ~3,072 FLOPs for a BERT-sized encoder); counting disables it, and the fused ops
    are costed too in case they still run."""
    loaded = load_model_file(write_model(tmp_path, ENCODER))
    length = 16
    expected = encoder_closed_form(length)
    normal = count_module(loaded, "encoder", (length, 64))
    assert normal.cross_check_flops == expected
    assert normal.compared_flops == expected
    assert normal.norm_flops == 2 * 3 * 2 * length * 64 * 5
    assert normal.agrees

    # the fused path itself, if it runs anyway (fast path left on): same numbers
    call = module_call(loaded, "encoder", (length, 64))
    module = loaded.module("encoder")
    fused = count_call(loaded, module, "encoder", (length, 64), call, disable_fastpath=False)
    assert "aten._transformer_encoder_layer_fwd" in fused.cross_check_by_operator
    assert fused.cross_check_flops == expected
    assert fused.flops == normal.flops
    assert fused.agrees

    # whole model through entire_model: same encoder cost, fast path state restored
    before = torch.backends.mha.get_fastpath_enabled()
    whole = count_module(loaded, None, (length,))
    assert torch.backends.mha.get_fastpath_enabled() == before
    assert whole.cross_check_flops == expected


def test_elementwise_product_counts_zero_but_is_listed(tmp_path: Path) -> None:
    """Trap 3: (x[:, None] * W[None]).sum(-1) is a matrix product that neither counter costs:
    it counts 0, and the mul and sum show in `uncounted` with their element counts."""
    path = write_model(
        tmp_path,
        """
        import torch
        from torch import nn

        class Sneaky(nn.Module):
            def __init__(self):
                super().__init__()
                self.W = nn.Parameter(torch.randn(32, 16))

            def forward(self, x):
                return (x[:, :, None, :] * self.W[None, None]).sum(-1)

        entire_model = Sneaky()
        module_list = {"proj": entire_model}
        """,
    )
    count = count_module(load_model_file(path), "proj", (5, 16))
    assert count.flops == 0
    assert count.cross_check_flops == 0
    assert count.uncounted == {"aten::mul": 5 * 32 * 16, "aten::sum": 5 * 32}


def test_ops_fvcore_ignores_are_listed(tmp_path: Path) -> None:
    path = write_model(
        tmp_path,
        """
        import torch
        from torch import nn

        entire_model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.1))
        module_list = {"mlp": entire_model}
        """,
    )
    count = count_module(load_model_file(path), "mlp", (3, 8))
    assert count.flops == 2 * 3 * 8 * 8
    assert count.uncounted == {"aten::relu": 24, "aten::dropout": 24}


# --------------------------------------------------------------------------------------------
# Early exit (ElasticBERT): path sums and the (module, shape) cache


def layer_flops(length: int) -> int:
    return 2 * (7_077_888 * length + 1_536 * length**2) + 2 * 2 * length * 768 * 5


EXIT_FLOPS = 2 * (768**2 + 768 * 2)


@pytest.fixture(scope="module")
def elasticbert() -> LoadedModel:
    return load_model_file(EXAMPLES / "elasticbert_base.py")


def test_elasticbert_exit_paths(elasticbert: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    assert count_parameters(elasticbert.entire_model) == 115_997_208
    assert elasticbert.notes == []
    hidden = infer_hidden_size(elasticbert)
    assert hidden == 768
    lengths = [10, 10, 12, 10, 12]
    exits = [1, 3, 2, 3, 1]
    paths = exit_layer_paths(exits, lengths, hidden)
    assert paths[0] == [("emb", (10,)), ("layer_1", (10, 768)), ("exit_1", (768,))]

    calls: list[tuple[str, tuple[int, ...]]] = []
    real = plans_module.count_module

    def spy(loaded: LoadedModel, name: str | None, shape: tuple[int, ...], **kw: object) -> object:
        assert name is not None
        calls.append((name, shape))
        return real(loaded, name, shape, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(plans_module, "count_module", spy)
    cache: plans_module.CountCache = {}
    result = count_dynamic(elasticbert, paths, cache=cache)
    distinct = {(name, shape) for path in paths for name, shape in path}
    assert len(calls) == len(distinct) == result.n_counts == len(result.counts) == 10
    assert len(set(calls)) == len(calls)

    emb = {n: c.flops for (name, (n, *_)), c in cache.items() if name == "emb"}
    assert emb == {10: 2 * 10 * 768 * 5, 12: 2 * 12 * 768 * 5}  # its LayerNorm only
    for (name, shape), count in cache.items():
        if name.startswith("layer_"):
            assert count.flops == layer_flops(shape[0])
        if name.startswith("exit_"):
            assert count.flops == EXIT_FLOPS
        assert count.agrees
    for k, n, flops in zip(exits, lengths, result.per_sample_flops, strict=True):
        assert flops == emb[n] + k * (layer_flops(n) + EXIT_FLOPS)
        # same thing summed from the cache, as the path lists it
        assert flops == sum(cache[step].flops for step in exit_layer_paths([k], [n], hidden)[0])
    assert result.mean_flops == sum(result.per_sample_flops) / 5
    json.dumps(result.as_dict())

    # a second prediction file of the same model: everything comes from the cache
    again = count_dynamic(elasticbert, exit_layer_paths([2], [12], hidden), cache=cache)
    assert again.n_counts == 0
    assert len(calls) == 10

    # the whole model (every layer and exit) costs what the full path costs
    whole = count_module(elasticbert, None, (10,))
    assert whole.flops == emb[10] + 12 * (layer_flops(10) + EXIT_FLOPS)


def test_exit_head_takes_cls_or_sequence(elasticbert: LoadedModel) -> None:
    cls = count_module(elasticbert, "exit_1", (768,))
    seq = count_module(elasticbert, "exit_1", (7, 768))
    assert cls.flops == seq.flops == EXIT_FLOPS
    paths = exit_layer_paths([1], [7], 768, exit_input="sequence")
    assert paths[0][-1] == ("exit_1", (7, 768))


def test_unknown_module_in_path(elasticbert: LoadedModel) -> None:
    with pytest.raises(ModelFileError, match="module_list") as info:
        count_dynamic(elasticbert, [[("emb", (5,)), ("layer_13", (5, 768))]])
    assert any("layer_13" in p.problem for p in info.value.problems)


# --------------------------------------------------------------------------------------------
# Static models: once per distinct length, content dependence


DENSE = """
import torch
from torch import nn

class Dense(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.lin = nn.Linear(16, 16)

    def forward(self, input_ids, attention_mask, token_type_ids):
        x = self.emb(input_ids) + token_type_ids[..., None]
        scores = torch.matmul(x, x.transpose(-1, -2))
        return self.lin(torch.matmul(scores.softmax(-1), x))

entire_model = Dense()
"""

DEPENDENT = """
import torch
from torch import nn

class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.lin = nn.Linear(16, 16)

    def forward(self, input_ids):
        x = self.emb(input_ids)
        for _ in range(1 + int(input_ids.sum()) % 3):  # data-dependent depth
            x = self.lin(x)
        return x

entire_model = Toy()
"""


def dense_flops(length: int) -> int:
    return 2 * (2 * length * length * 16 + length * 16 * 16)


def test_static_counts_once_per_length(tmp_path: Path) -> None:
    loaded = load_model_file(write_model(tmp_path, DENSE))
    lengths = [5, 5, 7, 5, 7, 9]
    result = count_static(loaded, lengths, first_segments=[2, None, 3, 1, 0, 4])
    assert result.n_traces == 3
    assert [c.shape for c in result.counts] == [(5,), (7,), (9,)]
    per_length = {c.shape[0]: c.flops for c in result.counts}
    assert per_length == {n: dense_flops(n) for n in (5, 7, 9)}
    assert result.per_sample_flops == [per_length[n] for n in lengths]
    assert result.per_sample_flops_without_norm == result.per_sample_flops
    assert not result.content_dependent
    assert not result.per_sample_counted
    assert [c.length for c in result.content_checks] == [5, 9, 7]
    assert result.n_check_traces == 6
    assert all(c.consistent and len(c.flops) == 3 for c in result.content_checks)
    assert result.all_agree
    assert result.uncounted_mean["aten::softmax"] == pytest.approx(
        sum(n * n for n in lengths) / len(lengths)
    )
    json.dumps(result.as_dict())

    cache: plans_module.CountCache = {}
    count_static(loaded, [5, 9], cache=cache, check_lengths=0)
    again = count_static(loaded, [9, 5, 5], cache=cache, check_lengths=0)
    assert again.n_traces == 2  # the counts behind the array...
    assert again.n_check_traces == 0
    assert again.per_sample_flops == [dense_flops(9), dense_flops(5), dense_flops(5)]


def test_static_detects_content_dependence(tmp_path: Path) -> None:
    loaded = load_model_file(write_model(tmp_path, DEPENDENT))
    lengths = [5, 5, 7, 5, 7, 9]
    result = count_static(loaded, lengths)
    assert result.content_dependent
    assert result.per_sample_counted
    assert result.n_traces == len(lengths)
    assert not all(c.consistent for c in result.content_checks)
    unit = 2 * 16 * 16  # one pass of `lin` per token
    for flops, n in zip(result.per_sample_flops, lengths, strict=True):
        assert flops % (unit * n) == 0
        assert 1 <= flops // (unit * n) <= 3
    # each sample is counted on its own ids: with the real token ids, the depth follows them
    ids = [[1] * 5, [2] * 5, [0] * 7]  # sums 5, 10, 0 -> 3, 2, 1 passes
    real = count_static(loaded, [5, 5, 7], token_ids=ids, check_samples=1)
    assert real.content_dependent
    assert real.per_sample_flops == [3 * unit * 5, 2 * unit * 5, 1 * unit * 7]


# --------------------------------------------------------------------------------------------
# Inputs built from shapes


def test_inputs_follow_the_contract(tmp_path: Path) -> None:
    path = write_model(
        tmp_path,
        """
        import torch
        from torch import nn

        class Ids(nn.Module):
            def forward(self, tokens):
                assert tokens.dtype == torch.long and tokens.max() < 7
                return tokens.float()

        class Pair(nn.Module):
            def forward(self, a, b):
                return a @ b

        class Kw(nn.Module):
            def forward(self, **kwargs):
                self.seen = sorted(kwargs)
                return kwargs["input_ids"]

        entire_model = Kw()
        module_list = {"word_emb": Ids(), "pair": Pair(), "plain": nn.Linear(4, 4)}
        vocab_size = 7

        def make_input(name, shape):
            if name == "pair":
                return torch.randn(1, *shape), torch.randn(1, shape[-1], 3)
            return None
        """,
    )
    loaded = load_model_file(path)
    ids = module_call(loaded, "word_emb", (6,))
    assert ids.args[0].dtype == torch.long
    assert ids.args[0].shape == (1, 6)
    assert int(ids.args[0].max()) < 7
    plain = module_call(loaded, "plain", (4,))
    assert plain.args[0].dtype == torch.float32
    assert plain.args[0].shape == (1, 4)
    assert count_module(loaded, "pair", (5, 4)).flops == 2 * 5 * 4 * 3

    call = model_call(loaded, 6, first_segment=4)
    assert sorted(call.kwargs) == ["attention_mask", "input_ids", "token_type_ids"]
    assert call.kwargs["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1]]
    assert call.kwargs["attention_mask"].tolist() == [[1] * 6]
    count_module(loaded, None, (6,))
    assert loaded.entire_model.seen == ["attention_mask", "input_ids", "token_type_ids"]


def test_entire_model_without_named_input_ids_gets_them_positionally(tmp_path: Path) -> None:
    loaded = load_model_file(EXAMPLES / "dan.py")
    call = model_call(loaded, 9)
    assert len(call.args) == 1
    assert call.kwargs == {}


# --------------------------------------------------------------------------------------------
# Model file errors


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "defines no `entire_model`"),
        ("entire_model = 3\n", "`entire_model` must be a torch.nn.Module, got int"),
        (
            "from torch import nn\nentire_model = nn.Linear(2, 2)\nmodule_list = [1]\n",
            "`module_list` must be a dict",
        ),
        (
            "from torch import nn\nentire_model = nn.Linear(2, 2)\nmodule_list = {'a': 1}\n",
            "`module_list['a']` must be an nn.Module, got int",
        ),
        (
            "from torch import nn\nentire_model = nn.Linear(2, 2)\nmake_input = 5\n",
            "`make_input` must be a function",
        ),
        (
            "from torch import nn\nentire_model = nn.Linear(2, 2)\nvocab_size = 0\n",
            "`vocab_size` must be a positive int",
        ),
    ],
)
def test_contract_violations(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ModelFileError) as info:
        load_model_file(write_model(tmp_path, source))
    assert info.value.code == "invalid_model_file"
    assert info.value.status_code == 422
    assert any(message in p.problem for p in info.value.problems), info.value.problems


def test_file_that_fails_to_run(tmp_path: Path) -> None:
    path = write_model(tmp_path, "import torch\n\nraise RuntimeError('boom')\n")
    with pytest.raises(ModelFileError, match="RuntimeError: boom") as info:
        load_model_file(path)
    assert info.value.problems[0].line == 3
    with pytest.raises(ModelFileError, match="SyntaxError"):
        load_model_file(write_model(tmp_path, "def (:\n", "bad.py"))
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model_file(tmp_path / "missing.py")


def test_module_failing_at_a_shape(tmp_path: Path) -> None:
    path = write_model(
        tmp_path,
        "from torch import nn\nentire_model = nn.Linear(4, 4)\nmodule_list = {'lin': entire_model}\n",
    )
    loaded = load_model_file(path)
    with pytest.raises(ModelFileError, match=r"lin at input shape \(3, 5\)"):
        count_module(loaded, "lin", (3, 5))
    with pytest.raises(ModelFileError, match="not in the model file's module_list"):
        count_module(loaded, "nope", (3, 4))


# --------------------------------------------------------------------------------------------
# Device


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_count_equals_cpu(bert_sdpa: LoadedModel) -> None:
    cpu = count_module(bert_sdpa, None, (32,))
    try:
        cuda = count_module(bert_sdpa, None, (32,), device="cuda")
    finally:
        bert_sdpa.entire_model.to("cpu")
    assert cuda.flops == cpu.flops
    assert cuda.cross_check_flops == cpu.cross_check_flops == bert_closed_form(32)
    assert cuda.agrees
