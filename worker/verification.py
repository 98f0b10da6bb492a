"""Verified entries: run the counted program with the submitted weights; compare predictions.

Three steps, none of which runs submitted Python:

1. `weights_problems` (cost worker, trusted): the weights file's tensor names, shapes and dtypes
   against the captured graph's parameters and buffers, every mismatch listed.
2. `run_verification` (cost worker): `python -m worker.verify` in the sandbox (no network, no
   gold, no predictions) runs the captured graph, the one the cost was counted from, with the
   weights on every test input of every task; it returns each sample's output vector.
3. `compare` (score worker, trusted): the fraction of samples whose platform output gives the
   submitted prediction. At or above `THRESHOLD` the point is verified.

Conventions (docs/verification.md): classification: the prediction is the argmax of the output
(width = the task's number of labels), or, for a two-label task whose output is one value, label
1 where it is > 0. Regression: the output (width 1) is within `REGRESSION_ABS_TOL` +
`REGRESSION_REL_TOL` x |prediction| of the prediction (prediction files print a few decimals).
Ties of the argmax count as agreeing when the predicted label is among the tied maxima.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.settings import REPO_ROOT, Settings
from core.storage import BlobStore
from core.tasks.manifest import LabelKind, TaskManifest
from worker.graphcount.graph import Capture

THRESHOLD = 0.995  # the fraction of agreeing samples that makes a point verified
REGRESSION_ABS_TOL = 1e-3
REGRESSION_REL_TOL = 1e-3
ARGMAX_TIE_TOL = 1e-6
MAX_DIFFS_SHOWN = 20
MAX_WIDTH = 64

VERIFIED = "verified"
NOT_REPRODUCED = "not_reproduced"
NOT_VERIFIED = "not_verified"  # the run could not be made (weights mismatch, error, timeout)


# --- the report from the cost worker --------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencyPoint(_Model):
    index: int = Field(ge=0)
    length: int = Field(ge=0)
    median_ms: float = Field(ge=0, allow_inf_nan=False)
    min_ms: float = Field(ge=0, allow_inf_nan=False)
    max_ms: float = Field(ge=0, allow_inf_nan=False)
    repeats: int = Field(ge=1, le=1000)


class VerifyEntry(_Model):
    outputs: list[list[float]] | None = Field(None, max_length=2_000_000)
    error: str | None = Field(None, max_length=4000)
    latency: list[LatencyPoint] = Field(default_factory=list, max_length=20)
    nonfinite: list[int] = Field(default_factory=list, max_length=2_000_000)  # NaN/inf outputs
    # early exit: each sample's exit as the model's graph decides it (an integer output)
    derived_exits: list[int] | None = Field(None, max_length=2_000_000)


class Hardware(_Model):
    kind: str = Field(max_length=10)
    name: str = Field(max_length=200)
    threads: int | None = Field(None, ge=1, le=4096)


class VerifyOutput(_Model):
    """What a verification run gave (or why there is none)."""

    ok: bool
    problems: list[str] = Field(default_factory=list, max_length=500)  # weights mismatches
    error: str | None = Field(None, max_length=8000)
    entries: dict[str, VerifyEntry] = Field(default_factory=dict, max_length=1000)
    hardware: Hardware | None = None
    peak_memory_bytes: int | None = Field(None, ge=0)
    seconds: float | None = Field(None, ge=0, allow_inf_nan=False)
    weights_sha256: str | None = Field(None, max_length=64)


class VerifyTask(_Model):
    """One task's inputs as the platform tokenised them (no labels)."""

    token_ids: list[list[int]] = Field(max_length=2_000_000)
    first_segments: list[int] | None = None


class VerifyJobEntry(_Model):
    key: str = Field(max_length=200)
    task: str = Field(max_length=100)
    width: int = Field(ge=1, le=MAX_WIDTH)
    targets: list[str] | None = None  # per sample: the module whose output is read (paths)


class VerifyRequest(_Model):
    """What the cost worker needs to verify, besides the capture it makes itself."""

    weights: dict[str, str] = Field(max_length=100)  # task name -> weights sha256
    inputs: dict[str, VerifyTask] = Field(max_length=100)
    entries: list[VerifyJobEntry] = Field(max_length=1000)


# --- step 1: weights vs graph ------------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) of a safetensors file (header only; no tensor is loaded)."""
    from safetensors import safe_open

    out: dict[str, tuple[tuple[int, ...], str]] = {}
    with safe_open(str(path), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
            piece = f.get_slice(name)
            out[name] = (tuple(int(s) for s in piece.get_shape()), _dtype_name(piece.get_dtype()))
    return out


_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


def _dtype_name(name: str) -> str:
    return _SAFETENSORS_DTYPES.get(name, name.lower())


def weights_problems(
    capture: Capture, manifest: dict[str, tuple[tuple[int, ...], str]], *, file_label: str
) -> list[str]:
    """Every mismatch between a weights file and the graph's parameters and buffers.

    Required: each parameter and persistent buffer the graph reads (state_dict names; of names
    that share one tensor, such as tied embeddings, one is enough), and each non-persistent
    buffer or constant whose value the capture could not carry. Any other name in the file is
    unexpected. A given name must have the graph's shape and dtype.
    """
    wanted: dict[str, tuple[tuple[int, ...], str, bool, int | None]] = {}
    for graph in capture.graphs.values():
        for item in graph.inputs:
            if item.kind == "input" or item.target in wanted:
                continue
            required = item.persistent is not False or item.value is None
            shape = tuple(int(s) for s in item.shape)
            wanted[item.target] = (shape, item.dtype, required, item.storage)
    problems: list[str] = []
    for name in sorted(manifest):
        if name not in wanted:
            problems.append(
                f"{file_label}: unexpected tensor {name!r}: entire_model's graph has no "
                "parameter or buffer of that name"
            )
            continue
        shape, dtype, _required, _storage = wanted[name]
        got_shape, got_dtype = manifest[name]
        if got_shape != shape:
            problems.append(
                f"{file_label}: {name!r} has shape {list(got_shape)}, the graph expects "
                f"{list(shape)}"
            )
        if got_dtype != dtype:
            problems.append(f"{file_label}: {name!r} is {got_dtype}, the graph expects {dtype}")
    groups: dict[Any, list[str]] = defaultdict(list)
    for name, (_shape, _dtype, required, storage) in wanted.items():
        if required:
            groups[("storage", storage) if storage is not None else ("name", name)].append(name)
    for names in groups.values():
        if not any(n in manifest for n in names):
            shape, dtype, _r, _s = wanted[names[0]]
            alias = (
                f" (or {', '.join(repr(n) for n in names[1:4])}: the same tensor)"
                if len(names) > 1
                else ""
            )
            problems.append(
                f"{file_label}: missing tensor {names[0]!r}{alias}, shape {list(shape)}, {dtype}"
            )
    return problems


# --- step 2: the sandboxed run -----------------------------------------------------------------


@dataclass(frozen=True)
class VerifyRun:
    output: VerifyOutput
    log: str


def run_verification(
    capture: dict[str, Any],
    request: VerifyRequest,
    settings: Settings,
    *,
    device: str,
    store: BlobStore,
) -> VerifyRun:
    """Check the weights against the graph, then run `worker.verify` in the sandbox per file
    (the weights are read from `store`, local or an object store)."""
    from core.storage import BlobNotFoundError
    from worker.counting_stage import JOB_TARGET, _sandbox_env, _stop_reason
    from worker.sandbox import Bind, SandboxLimits, make_job_dir, run_sandboxed, sandbox_python
    from worker.verify import VERIFY_MARKER

    parsed = Capture.model_validate(capture)
    by_sha: dict[str, list[str]] = defaultdict(list)
    for task, sha in sorted(request.weights.items()):
        by_sha[sha].append(task)
    problems: list[str] = []
    for sha, tasks in by_sha.items():
        label = f"weights for {', '.join(tasks)}"
        try:
            path = store.local_path(sha)
        except BlobNotFoundError:
            return VerifyRun(
                VerifyOutput(ok=False, error=f"the {label} are not on this worker ({sha[:12]})"),
                "",
            )
        try:
            manifest = read_manifest(path)
        except Exception as exc:  # the upload check passed it; say what the library says
            problems.append(f"{label}: not a readable safetensors file: {exc}"[:500])
            continue
        problems += weights_problems(parsed, manifest, file_label=label)
    if problems:
        return VerifyRun(VerifyOutput(ok=False, problems=problems[:500]), "")

    lim = settings.limits
    limits = SandboxLimits.for_("verify", settings)
    base = settings.storage.sandbox_jobs_dir
    base.mkdir(parents=True, exist_ok=True)
    entries: dict[str, VerifyEntry] = {}
    log_parts: list[str] = []
    first: dict[str, Any] | None = None
    for sha, tasks in by_sha.items():
        job_entries = [e for e in request.entries if e.task in tasks]
        if not job_entries:
            continue
        job_dir = make_job_dir(base)
        try:
            (job_dir / "capture.json").write_text(json.dumps(capture))
            spec = {
                "capture": f"{JOB_TARGET}/capture.json",
                "weights": f"{JOB_TARGET}/weights.safetensors",
                "device": "cuda" if device != "cpu" else "cpu",
                "threads": lim.sandbox_threads,
                "seconds": max(1.0, lim.verify_wall_seconds - 15.0),
                "entries": [e.model_dump() for e in job_entries],
                "inputs": {t: request.inputs[t].model_dump() for t in tasks if t in request.inputs},
            }
            (job_dir / "job.json").write_text(json.dumps(spec))
            # the weights go in by a hard link (a copy across file systems): the job folder is
            # reachable by the sandbox's uid, the blob store need not be
            store.link_or_copy_to(sha, job_dir / "weights.safetensors")
            for name in ("capture.json", "job.json", "weights.safetensors"):
                (job_dir / name).chmod(0o644)
            result = run_sandboxed(
                [sandbox_python(), "-m", "worker.verify", f"{JOB_TARGET}/job.json"],
                binds=[
                    Bind(job_dir, JOB_TARGET),
                    Bind(REPO_ROOT / "core", "/opt/paretoboard/core"),
                    Bind(REPO_ROOT / "worker", "/opt/paretoboard/worker"),
                ],
                limits=limits,
                gpu=device != "cpu",
                env=_sandbox_env(device),
            )
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)
        log_parts.append(result.stderr.decode("utf-8", "replace")[-20_000:])
        _before, marker, body = result.stdout.rpartition(VERIFY_MARKER)
        payload: dict[str, Any] | None = None
        if marker:
            try:
                loaded = json.loads(body)
                payload = loaded if isinstance(loaded, dict) else None
            except ValueError:
                payload = None
        if payload is None or not payload.get("ok"):
            why = (
                str((payload or {}).get("error", {}).get("message", ""))[:2000]
                if payload
                else (
                    f"the run was stopped after {lim.verify_wall_seconds:g} s"
                    if result.timed_out
                    else f"the run was stopped: {stopped}"
                    if (stopped := _stop_reason(result, limits))
                    else f"the runner exited with code {result.returncode} and no result"
                )
            )
            for e in job_entries:
                entries[e.key] = VerifyEntry(error=f"the graph could not be run: {why}")
            continue
        first = first or payload
        for e in job_entries:
            got = payload.get("entries", {}).get(e.key)
            entries[e.key] = (
                VerifyEntry.model_validate(got)
                if isinstance(got, dict)
                else VerifyEntry(error="the runner returned nothing for this entry")
            )
    hardware = (first or {}).get("hardware")
    return VerifyRun(
        VerifyOutput(
            ok=True,
            entries=entries,
            hardware=Hardware.model_validate(hardware) if isinstance(hardware, dict) else None,
            peak_memory_bytes=(first or {}).get("peak_memory_bytes"),
            seconds=(first or {}).get("seconds"),
        ),
        "\n".join(log_parts)[-40_000:],
    )


# --- step 3: the comparison (trusted, with the predictions) ----------------------------------


@dataclass(frozen=True)
class Agreement:
    status: str
    n: int
    agree: int
    fraction: float
    first_diffs: list[int]
    message: str | None = None


def exit_agreement(declared: list[int], derived: list[int]) -> Agreement:
    """Declared exits (the prediction file's paths) against the model's own in-graph policy."""
    n = len(declared)
    if len(derived) != n:
        return Agreement(NOT_VERIFIED, n, 0, 0.0, [], "the policy's run did not cover every sample")
    same = np.asarray(declared) == np.asarray(derived)
    agree = int(same.sum())
    fraction = agree / n if n else 0.0
    diffs = [int(i) for i in np.flatnonzero(~same)[:MAX_DIFFS_SHOWN]]
    return Agreement(
        VERIFIED if n and fraction >= THRESHOLD else NOT_REPRODUCED, n, agree, fraction, diffs
    )


def compare(
    outputs: list[list[float]],
    manifest: TaskManifest,
    predicted: np.ndarray,
    nonfinite: list[int] | None = None,
) -> Agreement:
    """How many samples' platform outputs give the submitted prediction (a sample whose output
    was NaN or infinite, `nonfinite`, gives none)."""
    values = np.asarray(outputs, dtype=np.float64)
    n = int(predicted.shape[0])
    if values.ndim != 2 or values.shape[0] != n:
        return Agreement(NOT_VERIFIED, n, 0, 0.0, [], "the run did not cover every sample")
    if manifest.label_kind is LabelKind.REGRESSION:
        if values.shape[1] != 1:
            return Agreement(
                NOT_VERIFIED, n, 0, 0.0, [], "a regression task needs one output value per sample"
            )
        pred = predicted.astype(np.float64)
        ok = np.abs(values[:, 0] - pred) <= REGRESSION_ABS_TOL + REGRESSION_REL_TOL * np.abs(pred)
    else:
        labels = len(manifest.labels)
        codes = predicted.astype(np.int64)
        if values.shape[1] == labels:
            top = values.max(axis=1)
            chosen = values[np.arange(n), np.clip(codes, 0, labels - 1)]
            ok = (codes >= 0) & (codes < labels) & (chosen >= top - ARGMAX_TIE_TOL * np.abs(top))
        elif values.shape[1] == 1 and labels == 2:
            ok = (values[:, 0] > 0).astype(np.int64) == codes
        else:
            return Agreement(
                NOT_VERIFIED,
                n,
                0,
                0.0,
                [],
                f"the output has {values.shape[1]} values per sample; the task has {labels} labels",
            )
    ok &= np.isfinite(values).all(axis=1)
    if nonfinite:
        ok[np.asarray([i for i in nonfinite if 0 <= i < n], dtype=np.int64)] = False
    agree = int(ok.sum())
    fraction = agree / n if n else 0.0
    diffs = [int(i) for i in np.flatnonzero(~ok)[:MAX_DIFFS_SHOWN]]
    status = VERIFIED if n and fraction >= THRESHOLD else NOT_REPRODUCED
    return Agreement(status, n, agree, fraction, diffs)
