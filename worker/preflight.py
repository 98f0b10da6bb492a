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

from core.settings import Settings
from jobs import records
from jobs.messages import PreflightRequest, PreflightResult
from jobs.send import PREFLIGHT_ALIVE_KEY
from worker.counting_stage import capture_in_sandbox
from worker.graphcount.graph import Capture
from worker.sandbox import SandboxLimits
from worker.verification import weights_problems

PREFLIGHT_LENGTHS = [8, 16]
ALIVE_SECONDS = 30


def announce(settings: Settings) -> None:
    """Keep a key alive in the broker's Redis while this process runs (a daemon thread)."""
    import os
    import socket
    import threading

    import redis

    key = PREFLIGHT_ALIVE_KEY.format(f"{socket.gethostname()}:{os.getpid()}")
    client = records.client(settings)

    def beat() -> None:
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                client.set(key, str(time.time()), ex=ALIVE_SECONDS)
            time.sleep(ALIVE_SECONDS / 3)

    threading.Thread(target=beat, name="preflight-alive", daemon=True).start()


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
