"""Verified entries (issue 11): the trusted runner in the real sandbox, the weights check, and
the comparison with the submitted predictions.

Each test captures a model file in the sandbox (`run_cost_job`, as a cost worker does), then
runs the captured graph with a safetensors file (`run_verification`: the weights check, then
`python -m worker.verify` in the sandbox) and compares the outputs with predictions made here
by running our own test model files eagerly.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file, save_model

from core.settings import Settings
from core.storage import LocalBlobStore
from core.tasks.manifest import LabelKind, Metric, TaskManifest
from worker.counting_stage import CostJob, run_cost_job
from worker.verification import (
    NOT_REPRODUCED,
    VERIFIED,
    VerifyJobEntry,
    VerifyRequest,
    VerifyTask,
    compare,
    run_verification,
)

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "models"

pytestmark = pytest.mark.skipif(
    not any(Path(p, "bwrap").exists() for p in ("/usr/bin", "/bin", "/usr/local/bin")),
    reason="the sandbox needs bubblewrap",
)

LENGTHS = [3, 5, 5, 8, 8, 8, 13, 21, 21, 34]


def manifest(labels: int) -> TaskManifest:
    # only what the comparison reads
    return TaskManifest.model_construct(
        name="T",
        metric=Metric.ACCURACY,
        label_kind=LabelKind.CLASSIFICATION,
        labels=tuple(str(i) for i in range(labels)),
    )


def inputs(seed: int = 0) -> tuple[list[list[int]], list[int]]:
    gen = torch.Generator().manual_seed(seed)
    ids = [torch.randint(1, 200, (n,), generator=gen).tolist() for n in LENGTHS]
    firsts = [max(1, n // 2) for n in LENGTHS]
    return ids, firsts


def eager_outputs(model: torch.nn.Module, ids: list[list[int]], firsts: list[int]) -> np.ndarray:
    rows = []
    with torch.no_grad():
        for x, first in zip(ids, firsts, strict=True):
            t = torch.tensor([x])
            types = torch.zeros_like(t)
            types[0, first:] = 1
            names = model.forward.__code__.co_varnames
            kwargs = {"token_type_ids": types} if "token_type_ids" in names else {}
            rows.append(model(t, **kwargs).reshape(-1).numpy())
    return np.stack(rows)


def capture_of(model_file: Path) -> dict[str, Any]:
    entries = [{"key": "static:T", "kind": "static", "lengths": LENGTHS}]
    job = CostJob(entries=entries, sizes={"static:T": len(LENGTHS)})
    run = run_cost_job(model_file.read_bytes(), job, Settings(), device="cpu")
    assert run.failure is None, run.failure
    assert run.capture is not None
    return run.capture


@pytest.fixture(scope="module")
def small_capture() -> dict[str, Any]:
    return capture_of(MODELS / "verify" / "small_classifier.py")


def verify(capture: dict[str, Any], weights: Path, tmp_path: Path, width: int = 3) -> Any:
    store = LocalBlobStore(tmp_path / "blobs")
    sha, _size = store.put_file(weights)
    ids, firsts = inputs()
    request = VerifyRequest(
        weights={"T": sha},
        inputs={"T": VerifyTask(token_ids=ids, first_segments=firsts)},
        entries=[VerifyJobEntry(key="static:T", task="T", width=width)],
    )
    return run_verification(capture, request, Settings(), device="cpu", store=store)


def test_honest_model_with_its_weights_is_verified(
    tmp_path: Path, small_capture: dict[str, Any]
) -> None:
    ns = runpy.run_path(str(MODELS / "verify" / "small_classifier.py"))
    model = ns["entire_model"]
    torch.manual_seed(1)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    save_model(model, str(tmp_path / "w.safetensors"))
    # The file's own weights are random at import: the capture's tensors are not these.
    run = verify(
        capture_of(MODELS / "verify" / "small_classifier.py"), tmp_path / "w.safetensors", tmp_path
    )
    out = run.output
    assert out.ok, (out.error, out.problems)
    entry = out.entries["static:T"]
    assert entry.error is None, entry.error
    ids, firsts = inputs()
    expected = eager_outputs(model, ids, firsts)
    got = np.asarray(entry.outputs)
    assert np.allclose(got, expected, atol=1e-5), np.abs(got - expected).max()
    agreement = compare(entry.outputs or [], manifest(3), expected.argmax(axis=1))
    assert agreement.status == VERIFIED
    assert agreement.agree == len(LENGTHS)
    # measured time: batch-1 latency on a few samples, the hardware, the peak memory
    assert entry.latency
    assert all(p.median_ms > 0 for p in entry.latency)
    assert out.hardware is not None
    assert out.hardware.kind == "cpu"
    assert out.hardware.name
    assert out.peak_memory_bytes
    assert out.peak_memory_bytes > 0

    # Another model's predictions with the same weights: not reproduced, with the count.
    other = np.roll(expected.argmax(axis=1), 1)
    other[0] = (expected[0].argmax() + 1) % 3
    differ = int((other != expected.argmax(axis=1)).sum())
    wrong = compare(entry.outputs or [], manifest(3), other)
    assert wrong.status == NOT_REPRODUCED
    assert wrong.n - wrong.agree == differ
    assert wrong.first_diffs[0] == 0


@pytest.mark.slow
def test_model_that_detects_tracing_is_not_reproduced(tmp_path: Path) -> None:
    path = MODELS / "verify" / "detects_tracing.py"
    ns = runpy.run_path(str(path))
    model = ns["entire_model"]
    torch.manual_seed(2)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    save_model(model, str(tmp_path / "w.safetensors"))
    ids, firsts = inputs()
    predictions = eager_outputs(model, ids, firsts).argmax(axis=1)  # the expensive program's
    run = verify(capture_of(path), tmp_path / "w.safetensors", tmp_path, width=2)
    assert run.output.ok, run.output.problems  # the names match: the cheap graph runs
    entry = run.output.entries["static:T"]
    assert entry.outputs is not None
    agreement = compare(entry.outputs, manifest(2), predictions)
    assert agreement.status == NOT_REPRODUCED, agreement
    assert agreement.agree < len(LENGTHS)


def test_weights_with_wrong_names_and_shapes_list_every_mismatch(
    tmp_path: Path, small_capture: dict[str, Any]
) -> None:
    ns = runpy.run_path(str(MODELS / "verify" / "small_classifier.py"))
    state = {k: v.clone().contiguous() for k, v in ns["entire_model"].state_dict().items()}
    state["head.weightt"] = state.pop("head.weight")  # misspelt
    state["embed.weight"] = torch.zeros(201, 32)  # wrong shape
    state["scale"] = state["scale"].double()  # wrong dtype
    state["extra"] = torch.zeros(3)  # unexpected
    del state["types.weight"]  # missing
    save_file(state, str(tmp_path / "w.safetensors"))
    run = verify(
        capture_of(MODELS / "verify" / "small_classifier.py"), tmp_path / "w.safetensors", tmp_path
    )
    problems = "\n".join(run.output.problems)
    assert not run.output.ok
    assert "unexpected tensor 'head.weightt'" in problems
    assert "unexpected tensor 'extra'" in problems
    assert "'embed.weight' has shape [201, 32], the graph expects [200, 32]" in problems
    assert "'scale' is float64, the graph expects float32" in problems
    assert "missing tensor 'head.weight'" in problems
    assert "missing tensor 'types.weight'" in problems
    assert len(run.output.problems) == 6, problems
    assert run.output.entries == {}  # nothing ran


@pytest.mark.slow
def test_exit_paths_run_only_to_the_declared_exit(tmp_path: Path) -> None:
    path = MODELS / "cost" / "elastic_small.py"
    ns = runpy.run_path(str(path))
    model, modules = ns["entire_model"], ns["module_list"]
    save_model(model, str(tmp_path / "w.safetensors"))
    ids, _firsts = inputs()
    exits = [1 + i % 4 for i in range(len(ids))]
    expected = []
    with torch.no_grad():
        for x, k in zip(ids, exits, strict=True):
            h = modules["emb"](torch.tensor([x]))
            for i in range(1, k + 1):
                h = modules[f"layer_{i}"](h)
            expected.append(modules[f"exit_{k}"](h[:, 0]).reshape(-1).numpy())
    store = LocalBlobStore(tmp_path / "blobs")
    sha, _ = store.put_file(tmp_path / "w.safetensors")
    request = VerifyRequest(
        weights={"T": sha},
        inputs={"T": VerifyTask(token_ids=ids, first_segments=None)},
        entries=[
            VerifyJobEntry(key="exit:1", task="T", width=2, targets=[f"exit_{k}" for k in exits])
        ],
    )
    run = run_verification(capture_of(path), request, Settings(), device="cpu", store=store)
    entry = run.output.entries["exit:1"]
    assert entry.error is None, entry.error
    assert np.allclose(np.asarray(entry.outputs), np.stack(expected), atol=1e-5)
    # the full pass's last exit would give other values for samples that exit early
    assert (
        compare(entry.outputs or [], manifest(2), np.stack(expected).argmax(1)).status == VERIFIED
    )


@pytest.mark.slow
def test_preflight_lists_weights_mismatches_before_anything_is_queued(tmp_path: Path) -> None:
    """The pre-flight capture (short limit) and the weights check, as the web's check uses it."""
    import base64

    from worker.preflight import PreflightRequest, run_preflight

    path = MODELS / "verify" / "small_classifier.py"
    ns = runpy.run_path(str(path))
    good = {
        k: (list(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in ns["entire_model"].state_dict().items()
    }
    bad = dict(good)
    bad["head.weight"] = ([4, 32], "float32")
    del bad["embed.weight"]
    request = PreflightRequest(
        model_b64=base64.b64encode(path.read_bytes()).decode(),
        weights={"good.safetensors": good, "bad.safetensors": bad},
    )
    result = run_preflight(request, Settings(), device="cpu")
    assert result.captured
    assert not result.ok
    assert result.problems == [
        "bad.safetensors: 'head.weight' has shape [4, 32], the graph expects [3, 32]",
        "bad.safetensors: missing tensor 'embed.weight', shape [200, 32], float32",
    ]
    broken = PreflightRequest(
        model_b64=base64.b64encode(b"import torch\nraise SystemExit(3)\n").decode(), weights={}
    )
    failed = run_preflight(broken, Settings(), device="cpu")
    assert not failed.captured
    assert failed.error


@pytest.mark.slow
def test_preflight_runs_real_samples_and_matches_every_module_path() -> None:
    """The check's run of the model on real samples (a crash on one is listed with its task and
    row) and its match of the files' module paths and exit layers against the captured graph,
    with the file's line of each wrong path."""
    import base64

    from worker.preflight import PreflightPaths, PreflightRequest, PreflightSample, run_preflight

    path = MODELS / "cost" / "elastic_small.py"  # vocab 1,000, no vocab_size declared
    n, hidden = 12, 64
    good = [("emb", [n]), ("layer_1", [n, hidden]), ("exit_1", [hidden])]
    request = PreflightRequest(
        model_b64=base64.b64encode(path.read_bytes()).decode(),
        weights={},
        samples=[
            PreflightSample(task="SST-2", index=0, ids=[101, 7, 8, 102]),
            PreflightSample(task="SST-2", index=9, ids=list(range(1, 40))),
            PreflightSample(task="SST-2", index=5, ids=[101, 5000, 102]),  # past its vocabulary
        ],
        paths=[
            PreflightPaths(
                file="SST-2.tsv",
                task="SST-2",
                modules=[
                    good,
                    [("emb", [n]), ("layer_2", [n, hidden]), ("exit_2", [hidden])],
                    [("emb", [n]), ("layer_9", [n, hidden]), ("exit_9", [hidden])],
                    [("emb", [n]), ("layer_1", [1, hidden]), ("exit_1", [hidden])],
                ],
                rows=[0, 3, 17, 40],
            ),
            PreflightPaths(
                file="SST-2.exit.tsv", task="SST-2", exit_layers=[1, 4, 7], rows=[0, 1, 2]
            ),
        ],
    )
    result = run_preflight(request, Settings(), device="cpu")
    assert result.captured
    assert not result.ok
    assert result.samples_run == {"SST-2": 2}
    [crash] = result.sample_problems
    assert crash.startswith("SST-2 test row 5 (3 tokens): IndexError")
    by_line: dict[tuple[str, int], str] = {}
    for p in result.path_problems:  # a path may have several problems: one text per line
        key = (p["file"], p["line"])
        by_line[key] = by_line.get(key, "") + p["problem"] + "; "
    assert sorted(by_line) == [
        ("SST-2.exit.tsv", 4),  # exit layer 7 of a 4-layer model (row 2)
        ("SST-2.tsv", 5),  # row 3: skips layer_1
        ("SST-2.tsv", 19),  # row 17: no layer_9
        ("SST-2.tsv", 42),  # row 40: a one-token shape
    ]
    assert "skips layer_1" in by_line[("SST-2.tsv", 5)]
    assert "unknown module 'layer_9'" in by_line[("SST-2.tsv", 19)]
    assert "unknown module 'exit_9'" in by_line[("SST-2.tsv", 19)]
    assert "exit_7" in by_line[("SST-2.exit.tsv", 4)]
    assert "(1, 64)" in by_line[("SST-2.tsv", 42)]
    assert result.paths_checked == 7

    honest = PreflightRequest(
        model_b64=request.model_b64,
        weights={},
        samples=request.samples[:2],
        paths=[PreflightPaths(file="SST-2.tsv", task="SST-2", modules=[good], rows=[0])],
    )
    passed = run_preflight(honest, Settings(), device="cpu")
    assert (passed.ok, passed.sample_problems, passed.path_problems) == (True, [], [])
    assert passed.paths_checked == 1


@pytest.mark.slow
def test_preflight_stops_a_hanging_import_at_its_own_short_limit() -> None:
    """A model file whose import never returns is stopped by `limits.preflight_seconds`, not by
    the cost job's limit, and the answer says it was the pre-flight limit."""
    import base64

    from core.settings import LimitsSettings
    from worker.preflight import PreflightRequest, PreflightSample, run_preflight

    settings = Settings(limits=LimitsSettings(preflight_seconds=6))
    assert settings.limits.preflight_seconds < settings.limits.sandbox_wall_seconds
    request = PreflightRequest(
        model_b64=base64.b64encode((MODELS / "attack_sleep_forever.py").read_bytes()).decode(),
        weights={},
        samples=[PreflightSample(task="SST-2", index=0, ids=[1, 2, 3])],
    )
    result = run_preflight(request, settings, device="cpu")
    assert (result.captured, result.stopped, result.ok) == (False, True, False)
    assert result.error is not None
    assert result.error.startswith("The pre-flight check was stopped")


@pytest.mark.slow
def test_exit_policy_in_the_graph_is_derived_and_compared(tmp_path: Path) -> None:
    """A model that returns its own exit decision: the runner derives each sample's exit, and a
    file that declares cheaper exits than the policy takes is caught even though its
    predictions are those of the declared exits."""
    from worker.verification import exit_agreement

    path = MODELS / "verify" / "elastic_policy.py"
    ns = runpy.run_path(str(path))
    model = ns["entire_model"]
    torch.manual_seed(3)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.4)
    save_model(model, str(tmp_path / "w.safetensors"))
    ids, _ = inputs()
    with torch.no_grad():
        policy = [int(model(torch.tensor([x]))[-1]) for x in ids]
    assert len(set(policy)) > 1, policy  # the samples exit at different layers
    store = LocalBlobStore(tmp_path / "blobs")
    sha, _ = store.put_file(tmp_path / "w.safetensors")
    cheap = [1] * len(ids)  # a lie: every sample at the first exit
    request = VerifyRequest(
        weights={"T": sha},
        inputs={"T": VerifyTask(token_ids=ids)},
        entries=[
            VerifyJobEntry(key="honest", task="T", width=2, targets=[f"exit_{k}" for k in policy]),
            VerifyJobEntry(key="cheap", task="T", width=2, targets=[f"exit_{k}" for k in cheap]),
        ],
    )
    run = run_verification(capture_of(path), request, Settings(), device="cpu", store=store)
    honest, lie = run.output.entries["honest"], run.output.entries["cheap"]
    assert honest.error is None, honest.error
    assert honest.derived_exits == policy
    assert exit_agreement(policy, honest.derived_exits).status == VERIFIED
    assert lie.derived_exits == policy
    caught = exit_agreement(cheap, lie.derived_exits or [])
    assert caught.status == NOT_REPRODUCED
    assert caught.n - caught.agree == sum(k != 1 for k in policy)


def test_nan_outputs_reproduce_nothing() -> None:
    outputs = [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    predicted = np.asarray([1, 0, 0])
    assert compare(outputs, manifest(2), predicted).agree == 3
    got = compare(outputs, manifest(2), predicted, nonfinite=[2])
    assert got.agree == 2
    assert got.first_diffs == [2]
