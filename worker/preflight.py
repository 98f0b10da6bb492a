"""Pre-flight check of a submission's model file and weights, before anything is queued.

Runs on a cost worker (queue `preflight`), answered while the web request waits: the model file
is captured in the sandbox exactly as the cost job will capture it (`capture_in_sandbox`), with
a short time limit, and the weights files' tensor lists (read from their safetensors headers by
the web process at upload) are matched against the captured graph's parameters and buffers
(`worker.verification.weights_problems`). Nothing is stored and no quota is used.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.settings import Settings
from worker.counting_stage import capture_in_sandbox
from worker.graphcount.graph import Capture
from worker.sandbox import SandboxLimits
from worker.verification import weights_problems

PREFLIGHT_LENGTHS = [8, 16]
ALIVE_KEY = "paretoboard:preflight-worker:{}"
ALIVE_SECONDS = 30


def announce(settings: Settings) -> None:
    """Keep a key alive in the broker's Redis while this process runs (a daemon thread)."""
    import os
    import socket
    import threading

    import redis

    key = ALIVE_KEY.format(f"{socket.gethostname()}:{os.getpid()}")
    client = redis.Redis.from_url(
        settings.broker.url.get_secret_value(), socket_timeout=5, socket_connect_timeout=5
    )

    def beat() -> None:
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                client.set(key, str(time.time()), ex=ALIVE_SECONDS)
            time.sleep(ALIVE_SECONDS / 3)

    threading.Thread(target=beat, name="preflight-alive", daemon=True).start()


class PreflightSample(BaseModel):
    """One real test input of a task the submission names, tokenized by the web process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(max_length=64)
    index: int  # its row in the task's test split
    ids: list[int] = Field(max_length=100_000)
    first: int | None = None  # tokens of the first segment (pairs)


class PreflightPaths(BaseModel):
    """The distinct module paths (or exit layers) one prediction file names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(max_length=600)
    task: str = Field(max_length=64)
    # per path: (module name, input shape without the batch dimension) steps
    modules: list[list[tuple[str, list[int]]]] = Field(default_factory=list, max_length=256)
    exit_layers: list[int] = Field(default_factory=list, max_length=256)
    rows: list[int] = Field(default_factory=list, max_length=256)  # a test row of each path


class PreflightRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_b64: str = Field(max_length=64 * 1024 * 1024 * 4 // 3 + 4)
    # file label -> tensor name -> (shape, dtype)
    weights: dict[str, dict[str, tuple[list[int], str]]] = Field(max_length=100)
    samples: list[PreflightSample] = Field(default_factory=list, max_length=64)
    paths: list[PreflightPaths] = Field(default_factory=list, max_length=200)


class PreflightResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool  # the model was captured and every weights file matches
    captured: bool
    error: str | None = Field(None, max_length=8000)  # why the capture failed
    stopped: bool = False  # stopped by the pre-flight limit (not a verdict on the model)
    problems: list[str] = Field(default_factory=list, max_length=1000)  # weights mismatches
    seconds: float = 0.0
    # the model's run on real test samples: "SST-2 row 17 (52 tokens): IndexError: ..."
    sample_problems: list[str] = Field(default_factory=list, max_length=64)
    samples_run: dict[str, int] = Field(default_factory=dict)  # task -> samples that ran
    # module paths / exit layers that do not match the captured graph (file, line, problem)
    path_problems: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    paths_checked: int = 0  # distinct paths checked against the graph


def run_preflight(request: PreflightRequest, settings: Settings, *, device: str) -> PreflightResult:
    import base64

    start = time.monotonic()
    lim = settings.limits
    limits = SandboxLimits.for_("preflight", settings)
    spec: dict[str, Any] = {
        "model": "/job/model.py",
        "threads": lim.sandbox_threads,
        "max_length": lim.max_tokens,
        # the real samples run eagerly after the capture (capture.py); exporting at their
        # lengths too would cost one export per length for a model that branches on it
        "lengths": PREFLIGHT_LENGTHS,
        "seconds": max(1.0, lim.preflight_seconds - 5.0),
        "samples": [s.model_dump() for s in request.samples],
    }
    run = capture_in_sandbox(
        base64.b64decode(request.model_b64, validate=True),
        spec,
        settings,
        device=device,
        limits=limits,
    )
    if run.capture is None:
        failure = run.failure or "the model could not be captured"
        stopped = failure.startswith("The cost job was stopped")
        if stopped:
            failure = failure.replace(
                "The cost job was stopped", "The pre-flight check was stopped"
            )
        return PreflightResult(
            ok=False,
            captured=False,
            error=failure[:8000],
            stopped=stopped,
            seconds=time.monotonic() - start,
        )
    capture = Capture.model_validate(run.capture)
    problems: list[str] = []
    for label, tensors in sorted(request.weights.items()):
        manifest = {name: (tuple(shape), dtype) for name, (shape, dtype) in tensors.items()}
        problems += weights_problems(capture, manifest, file_label=label)
    sample_problems: list[str] = []
    samples_run: dict[str, int] = {}
    for sample_run in (run.capture.get("sample_runs") or [])[:64]:
        where = (
            f"{sample_run.get('task')} test row {sample_run.get('index')} "
            f"({sample_run.get('tokens')} tokens)"
        )
        if sample_run.get("error"):
            sample_problems.append(f"{where}: {str(sample_run['error'])[:600]}")
        else:
            task = str(sample_run.get("task"))
            samples_run[task] = samples_run.get(task, 0) + 1
    path_problems, checked = _path_problems(capture, request)
    return PreflightResult(
        ok=not problems and not sample_problems and not path_problems,
        captured=True,
        problems=problems[:1000],
        seconds=time.monotonic() - start,
        sample_problems=sample_problems,
        samples_run=samples_run,
        path_problems=path_problems[:1000],
        paths_checked=checked,
    )


def _declared_length(steps: list[tuple[str, list[int]]]) -> int | None:
    """The token count a path declares: its embedding's input length (as the cost job reads
    it, `worker.counting_stage._declared_length`)."""
    from worker.counting_stage import TOKEN_MODULES

    for name, shape in steps:
        if (name in TOKEN_MODULES or name.endswith("emb")) and shape:
            return int(shape[0])
    return None


def _declared_lengths(request: PreflightRequest) -> set[int]:
    return {
        n
        for p in request.paths
        for steps in p.modules
        if (n := _declared_length(steps)) is not None
    }


def _path_problems(capture: Capture, request: PreflightRequest) -> tuple[list[dict[str, Any]], int]:
    """Every module path (and exit layer) the files name, checked against the captured graph
    by the trusted counter's own check (`check_paths`), at each path's declared length (else
    the real samples' lengths): the names exist, in the model's order, with nothing skipped,
    at the shapes the graph gives."""
    if not request.paths:
        return [], 0
    import numpy as np

    from worker.graphcount.count import PathError, check_paths, exit_layer_names, walk_capture

    fallback = {s.task: len(s.ids) for s in request.samples}
    lengths_needed = _declared_lengths(request) | set(fallback.values()) | {PREFLIGHT_LENGTHS[-1]}
    try:
        graphs = walk_capture(capture, sorted(lengths_needed))
    except Exception as exc:  # a capture the counter cannot read: the cost job says the same
        return [{"problem": f"the captured graph could not be read: {exc}"[:2000]}], 0
    if graphs.symbolic is None:
        return [
            {
                "problem": "module paths need one graph for every length, and this model's "
                "length does not export as a symbolic dimension",
                "file": request.paths[0].file,
            }
        ], 0
    problems: list[dict[str, Any]] = []
    checked = 0
    for entry in request.paths:
        default = fallback.get(entry.task, PREFLIGHT_LENGTHS[-1])
        if entry.modules:
            names = [[name for name, _ in steps] for steps in entry.modules]
            declared: list[Any] | None = [[shape for _, shape in steps] for steps in entry.modules]
            lengths = [_declared_length(steps) or default for steps in entry.modules]
        else:
            names = [exit_layer_names(int(k)) for k in entry.exit_layers]
            declared = None
            lengths = [default] * len(names)
        checked += len(names)
        try:
            check_paths(
                capture,
                graphs.symbolic,
                names,
                declared,
                np.asarray(lengths, dtype=np.int64),
                file_label=entry.file,
            )
        except PathError as exc:
            for p in exc.problems:
                # check_paths numbers the distinct paths; the file's line is that of the row
                i = int(p.get("line") or 2) - 2
                line = entry.rows[i] + 2 if 0 <= i < len(entry.rows) else None
                problems.append({**p, "line": line})
    return problems, checked
