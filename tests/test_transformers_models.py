"""Model files written with `transformers`, as ELUE's guide writes them, count exactly.

The files are this repository's own (tests/models/hf), so they are captured in this process;
`from_pretrained` is tried in the real sandbox (no network: it must fail at once, saying why).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from worker.capture import capture
from worker.counting_stage import CostJob, run_cost_job
from worker.graphcount.count import count_capture
from worker.graphcount.fvcheck import cross_check
from worker.graphcount.graph import Capture

HF = Path(__file__).parent / "models" / "hf"
LENGTHS = [10, 128]


def _count(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = capture({"model": str(HF / name), "lengths": LENGTHS})
    cap = Capture.model_validate(json.loads(json.dumps(raw)))
    report = count_capture(
        cap,
        [{"key": "s", "kind": "static", "lengths": LENGTHS}],
        cross_check=lambda g: cross_check(g, cap.graphs),
    )
    return report, report["entries"]["s"]


def _bert_elue(length: int, layers: int = 12) -> int:
    """ELUE's closed form (products) + 2 LayerNorms per layer and the embeddings' (10/element)."""
    products = 2 * (layers * (7_077_888 * length + 1_536 * length**2) + 768**2 + 768 * 2)
    return products + (2 * layers + 1) * length * 768 * 10


@pytest.mark.parametrize("name", ["bert_sdpa.py", "bert_eager.py"])
def test_bert_from_config_counts_the_closed_form(name: str) -> None:
    report, entry = _count(name)
    assert entry["per_sample_flops_elue"] == [_bert_elue(n) for n in LENGTHS]
    assert entry["incomplete"] == []
    assert entry["all_agree"], entry["cross_check"]
    # every tensor the graph reads: the weights, and transformers' position/type-id buffers
    assert report["params"] == 109_483_778 + 2 * 512


def test_distilbert_six_layers() -> None:
    report, entry = _count("distilbert.py")
    # 6 layers, no token types, no pooler: pre_classifier 768x768 and classifier 768x2
    products = [2 * (6 * (7_077_888 * n + 1_536 * n**2) + 768 * 768 + 768 * 2) for n in LENGTHS]
    norms = [(2 * 6 + 1) * n * 768 * 10 for n in LENGTHS]
    assert entry["per_sample_flops_elue"] == [p + m for p, m in zip(products, norms, strict=True)]
    assert entry["incomplete"] == []
    assert report["params"] == 66_955_010 + 512


def test_albert_counts_the_shared_layer_once_in_params_and_twelve_times_in_flops() -> None:
    report, entry = _count("albert.py")
    assert entry["incomplete"] == []
    assert report["params"] < 12_000_000  # one shared layer (ALBERT-base: 12M)
    # 12 calls of a BERT-base-sized layer, so about BERT-base's cost
    assert entry["per_sample_flops_elue"][1] > 0.99 * _bert_elue(128) - 2 * 128 * 768 * 128 * 2


def test_fnet_fourier_mixing() -> None:
    _report, entry = _count("fnet.py")
    assert entry["incomplete"] == []
    assert (
        entry["per_operator"].get("aten._fft_c2c", 0) > 0
        or entry["per_operator"].get("aten._fft_r2c", 0) > 0
    )
    assert entry["all_agree"], entry["cross_check"]


@pytest.mark.slow
def test_mobilebert_bottlenecks_and_nonorm() -> None:
    report, entry = _count("mobilebert.py")
    assert entry["incomplete"] == []
    assert 24_000_000 < report["params"] < 26_000_000  # MobileBERT: 25M


def test_from_pretrained_fails_at_once_with_a_way_out(sandbox_jobs_dir: Path) -> None:
    from core.settings import StorageSettings

    settings = Settings(storage=StorageSettings(jobs_dir=sandbox_jobs_dir))
    run = run_cost_job(
        (HF / "from_pretrained.py").read_bytes(),
        CostJob(entries=[{"key": "s", "kind": "static", "lengths": [10]}], sizes={"s": 1}),
        settings,
        device="cpu",
    )
    assert run.failure is not None
    assert "build the model from a config" in run.failure
    assert run.output is not None
    assert run.output.ok is False
