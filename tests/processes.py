"""Running the service's own commands as local subprocesses (tests and benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Signal a process started with start_new_session=True (its whole group), then reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def uvicorn_command(port: int, *extra: str) -> list[str]:
    """The web app under uvicorn on 127.0.0.1:`port` (extra uvicorn options appended)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "web.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


def wait_until_up(
    base: str,
    procs: Sequence[subprocess.Popen[bytes]],
    log: Path,
    *,
    timeout: float = 60,
    ready: Callable[[], bool] | None = None,
) -> None:
    """Until `base`/healthz answers 200 (and `ready()` holds); fails the test with the log's
    tail if a process exits or time runs out."""
    import httpx
    import pytest

    deadline = time.monotonic() + timeout
    while True:
        try:
            up = httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            up = False
        if up and (ready is None or ready()):
            return
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            pytest.fail(f"the server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
