"""The example model files in examples/ follow the contract and count as documented."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from worker.counting import count_module, count_parameters, count_static, load_model_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("name", "params", "modules"),
    [
        ("bert_base_eager.py", 109_483_778, set()),
        ("bert_base_sdpa.py", 109_483_778, set()),
        (
            "elasticbert_base.py",
            115_997_208,
            {"emb"} | {f"{kind}_{i}" for kind in ("layer", "exit") for i in range(1, 13)},
        ),
        ("dan.py", 9_337_802, set()),
        ("fnet.py", 10_118_402, {"emb", "head"} | {f"layer_{i}" for i in range(1, 5)}),
    ],
)
def test_example_loads_and_counts(name: str, params: int, modules: set[str]) -> None:
    loaded = load_model_file(EXAMPLES / name)
    assert count_parameters(loaded.entire_model) == params
    assert set(loaded.module_list) == modules
    assert loaded.notes == []
    count = count_module(loaded, None, (16,))
    assert count.flops > 0
    assert count.agrees, (count.compared_flops, count.cross_check_flops)


def test_dan_cost_does_not_depend_on_length() -> None:
    loaded = load_model_file(EXAMPLES / "dan.py")
    result = count_static(loaded, [3, 40, 3, 17])
    assert result.per_sample_flops == [361_200] * 4
    assert not result.content_dependent
    count = result.counts[0]
    assert count.uncounted["aten::embedding_bag"] == 300  # the averaging is listed, not costed
    assert count.uncounted["aten::relu"] == 600


def test_fnet_fourier_mixing_is_costed() -> None:
    loaded = load_model_file(EXAMPLES / "fnet.py")
    length = 16
    count = count_module(loaded, None, (length,))
    points = length * 256
    fft_macs = 2.5 * points * math.log2(points)  # 5 N log2 N FLOPs per complex 2-D FFT
    assert count.by_operator["fft_fft2"] == 4 * 2 * round(fft_macs)
    assert count.cross_check_by_operator["aten._fft_c2c"] == count.by_operator["fft_fft2"]
    linear = 4 * 2 * length * 256 * 1024 + 256 * 256 + 256 * 2
    assert count.by_operator["linear"] == 2 * linear
    assert count.norm_flops == 2 * 9 * length * 256 * 5  # 1 + 2 x 4 LayerNorms
    assert count.agrees
    layer = count_module(loaded, "layer_1", (length, 256))
    assert layer.by_operator["fft_fft2"] == 2 * round(fft_macs)
