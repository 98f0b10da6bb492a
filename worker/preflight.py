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


class PreflightRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_b64: str = Field(max_length=64 * 1024 * 1024 * 4 // 3 + 4)
    # file label -> tensor name -> (shape, dtype)
    weights: dict[str, dict[str, tuple[list[int], str]]] = Field(max_length=100)


class PreflightResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool  # the model was captured and every weights file matches
    captured: bool
    error: str | None = Field(None, max_length=8000)  # why the capture failed
    stopped: bool = False  # stopped by the pre-flight limit (not a verdict on the model)
    problems: list[str] = Field(default_factory=list, max_length=1000)  # weights mismatches
    seconds: float = 0.0


def run_preflight(request: PreflightRequest, settings: Settings, *, device: str) -> PreflightResult:
    import base64

    start = time.monotonic()
    lim = settings.limits
    limits = SandboxLimits.for_("preflight", settings)
    spec: dict[str, Any] = {
        "model": "/job/model.py",
        "threads": lim.sandbox_threads,
        "max_length": lim.max_tokens,
        "lengths": PREFLIGHT_LENGTHS,
        "seconds": max(1.0, lim.preflight_seconds - 5.0),
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
    return PreflightResult(
        ok=not problems,
        captured=True,
        problems=problems[:1000],
        seconds=time.monotonic() - start,
    )
