"""Bounded admission for uploads: a full web process answers 503 with `Retry-After` at once.

Each web process takes at most `limits.uploads_in_flight` uploads at a time (the body streaming
in, the checks, the write). One past that is refused before its body is read, with
`Retry-After: limits.upload_retry_after_seconds`, instead of queueing for a database connection
until the pool times out; the light client and `bench/bench_load.py` wait and send it again.
An admitted upload runs its blocking work on a thread limiter of its own (`run_upload_work`), so
uploads never take the worker threads that board and page reads need.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import FastAPI, Request

from core.errors import ParetoboardError
from core.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


class ServiceBusyError(ParetoboardError):
    """Every upload slot of this web process is taken: try again after `retry_after` s."""

    status_code = 503
    code = "busy"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "The service is busy with other uploads; nothing was read or stored. "
            f"Send the upload again in {retry_after} s."
        )
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries."""
        return {"Retry-After": str(self.retry_after)}


class UploadGate:
    """At most `slots` uploads at once in this process; `try_enter` never waits."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.active = 0
        self.refused = 0
        self._lock = threading.Lock()
        self.limiter = CapacityLimiter(slots)  # the admitted uploads' blocking work

    def try_enter(self) -> bool:
        with self._lock:
            if self.active >= self.slots:
                self.refused += 1
                return False
            self.active += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.active -= 1


def upload_gate(app: FastAPI) -> UploadGate:
    """The app's gate, made on first use (one per process: each has its own app)."""
    state = app.state
    gate: UploadGate | None = getattr(state, "upload_gate", None)
    if gate is None:
        settings: Settings = state.settings
        gate = state.upload_gate = UploadGate(settings.limits.uploads_in_flight)
    return gate


@asynccontextmanager
async def upload_slot(request: Request, settings: Settings) -> AsyncIterator[UploadGate]:
    """Hold one of this process's upload slots, or raise ServiceBusyError (503) at once."""
    gate = upload_gate(request.app)
    if not gate.try_enter():
        raise ServiceBusyError(settings.limits.upload_retry_after_seconds)
    try:
        yield gate
    finally:
        gate.leave()


async def run_upload_work(
    gate: UploadGate, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`func(*args, **kwargs)` in a worker thread of the uploads' own limiter."""
    return await anyio.to_thread.run_sync(partial(func, *args, **kwargs), limiter=gate.limiter)
