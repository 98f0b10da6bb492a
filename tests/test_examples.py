"""The example model files in examples/ follow the contract and count as documented.

The examples are this repository's own files, so they are captured in this process (the
service captures submitted files only in the sandbox) and counted by the trusted counter.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from worker.capture import capture
from worker.counting import load_model_file
from worker.graphcount.count import count_capture
from worker.graphcount.fvcheck import cross_check
from worker.graphcount.graph import Capture

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _count(name: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    lengths = sorted({n for e in entries for n in e.get("lengths", [])})
    raw = capture({"model": str(EXAMPLES / name), "lengths": lengths})
    cap = Capture.model_validate(json.loads(json.dumps(raw)))
    return count_capture(cap, entries, cross_check=lambda g: cross_check(g, cap.graphs))


def _static(name: str, lengths: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    report = _count(name, [{"key": "s", "kind": "static", "lengths": lengths}])
    return report, report["entries"]["s"]


@pytest.mark.parametrize(
    ("name", "params", "modules"),
    [
        ("bert_base_eager.py", 109_483_778, set()),
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
    assert set(loaded.module_list) == modules
    assert loaded.notes == []
    report, entry = _static(name, [16])
    assert report["params"] == params
    assert entry["per_sample_flops"][0] > 0
    assert entry["incomplete"] == []
    assert entry["all_agree"], entry["cross_check"]


def _bert_elue(length: int) -> int:
    """ELUE's closed form for BERT-base (products) + 25 LayerNorms at 10 per element."""
    products = 2 * (12 * (7_077_888 * length + 1_536 * length**2) + 768**2 + 768 * 2)
    return products + 25 * length * 768 * 10


@pytest.mark.parametrize("name", ["bert_base_eager.py", "bert_base_sdpa.py"])
def test_bert_base_counts_the_closed_form_at_every_length(name: str) -> None:
    lengths = [2, 7, 128, 300, 512]
    report, entry = _static(name, lengths)
    assert report["params"] == 109_483_778
    assert entry["per_sample_flops_elue"] == [_bert_elue(n) for n in lengths]
    assert entry["per_sample_flops_elue"][2] == 22_373_010_432
    # Everything computed: the products, biases, softmax, GELU, residuals, LayerNorm, the mask.
    assert all(
        f > e
        for f, e in zip(entry["per_sample_flops"], entry["per_sample_flops_elue"], strict=True)
    )
    assert entry["per_operator"]["aten.bmm"] > 0  # the attention products, for SDPA too
    assert entry["incomplete"] == []


def test_dan_cost_does_not_depend_on_length() -> None:
    report, entry = _static("dan.py", [3, 40, 3, 17])
    # ELUE convention: the three Linears, 2 x (2 x 300 x 300 + 300 x 2).
    assert entry["per_sample_flops_elue"] == [361_200] * 4
    # FLOPs: + the averaging (300 adds per token), the biases (602) and the ReLUs (600).
    # + the STS-B score output (softmax of the 2 logits, 2 elementwise ops): 12 more
    assert entry["per_sample_flops"] == [300 * n + 362_414 for n in (3, 40, 3, 17)]
    assert entry["per_operator"]["aten.relu"] == 600
    assert report["params"] == 9_337_802


def test_fnet_fourier_mixing_is_costed() -> None:
    length = 16
    _report, entry = _static("fnet.py", [length])
    points = length * 256
    fft = 5 * points * math.log2(points)  # per complex 2-D transform of N points
    assert entry["per_operator"]["aten._fft_c2c"] == pytest.approx(4 * fft)
    assert entry["incomplete"] == []


def test_elasticbert_exit_paths_cost_emb_layers_and_heads() -> None:
    lengths = [10, 33]
    report = _count(
        "elasticbert_base.py",
        [
            {"key": "static", "kind": "static", "lengths": lengths},
            {"key": "exit", "kind": "exit_layer", "exit_layers": [1, 12], "lengths": lengths},
        ],
    )
    static, exits = report["entries"]["static"], report["entries"]["exit"]
    # Exiting after layer 12 is the full pass; after layer 1 at 10 tokens (ELUE convention):
    # layer 2 x (7,077,888 x 10 + 1,536 x 100) + its 2 LayerNorms, emb's LayerNorm, one head.
    assert exits["per_sample_flops"][1] == static["per_sample_flops"][1]
    layer = 2 * (7_077_888 * 10 + 1_536 * 100) + 2 * 10 * 768 * 10
    head = 2 * (768 * 768 + 768 * 2)
    assert exits["per_sample_flops_elue"][0] == layer + 10 * 768 * 10 + head
