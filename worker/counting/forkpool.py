"""A pool of forked worker processes talking over pipes: no semaphores, no shared memory.

The sandbox mounts /dev read-only, so /dev/shm cannot hold the POSIX semaphores that
`multiprocessing` queues and pools need. This pool needs only `os.fork` and `os.pipe`: each
worker is forked from the process that built the pool (so it inherits whatever was loaded
before, e.g. a model), reads pickled items from its own pipe, applies the pool's function and
writes back the pickled result. Results come back in input order, whatever order the workers
finished in, so a map gives the same list as a loop over the items.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import struct
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_HEADER = struct.Struct("<Q")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; cpu_count where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class WorkerDiedError(RuntimeError):
    """A worker process ended while it held an item (killed, crashed, or exited)."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class RemoteTracebackError(Exception):
    """The formatted traceback of an exception raised in a worker (set as its __cause__)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, n: int) -> bytes | None:
    """n bytes, or None on end of file before the first byte; EOFError if cut short."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            if got == 0:
                return None
            raise EOFError("pipe closed in the middle of a message")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _send(fd: int, obj: object) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    _write_all(fd, _HEADER.pack(len(payload)) + payload)


def _recv(fd: int) -> Any:
    """The next message, or raises EOFError when the other end is closed."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        raise EOFError("pipe closed")
    (size,) = _HEADER.unpack(header)
    payload = _read_exactly(fd, size) if size else b""
    if payload is None:
        raise EOFError("pipe closed")
    return pickle.loads(payload)


def _portable_error(exc: BaseException) -> tuple[bytes | None, str, str]:
    """(pickled exception if it survives a round trip, type name, message)."""
    data: bytes | None
    try:
        data = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)
    except Exception:
        data = None
    return data, type(exc).__name__, str(exc)


@dataclass
class _Worker:
    pid: int
    tasks: int  # parent writes items here
    results: int  # parent reads results here
    index: int | None = None  # the item it holds
    alive: bool = True


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        hint = " (out of memory, or a resource limit)" if sig == signal.SIGKILL else ""
        return f"killed by signal {name}{hint}"
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    return f"ended with status {status}"


class ForkPool(Generic[T, R]):
    """`workers` processes forked on the first `map` that has work for more than one of them
    (after `before_fork()`, called here once: e.g. to warm up what every worker would otherwise
    initialise on its own); each calls `init()` once (e.g. to set its thread count), then
    `fn(item)` per item.

    With workers <= 1 everything runs in this process, in order. `map` dispatches the items in
    the order given by `order` (default: input order; put the longest first to finish early)
    and returns results in input order. If `fn` raises, only the items before the failed one
    (in input order) are still dispatched, then the exception of the first failed item is
    raised here, as a loop over the items would (its worker traceback as `__cause__`). A worker
    that dies raises WorkerDiedError and the pool is closed. Use as a context manager, or call
    `close()`.
    """

    def __init__(
        self,
        fn: Callable[[T], R],
        workers: int | None = None,
        *,
        init: Callable[[], None] | None = None,
        before_fork: Callable[[], None] | None = None,
    ) -> None:
        self.fn = fn
        self.workers = available_cpus() if workers is None else max(1, int(workers))
        self.init = init
        self.before_fork = before_fork
        self._procs: list[_Worker] = []
        self._owner = os.getpid()
        self._closed = False

    def __enter__(self) -> ForkPool[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------- lifecycle

    def _start(self) -> None:
        if self.before_fork is not None:
            self.before_fork()
        for stream in (sys.stdout, sys.stderr):  # or the workers would print it again
            with contextlib.suppress(Exception):
                stream.flush()
        for _ in range(self.workers):
            task_r, task_w = os.pipe()
            result_r, result_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                code = 0
                try:
                    os.close(task_w)
                    os.close(result_r)
                    for other in self._procs:
                        os.close(other.tasks)
                        os.close(other.results)
                    self._serve(task_r, result_w)
                except BaseException:
                    code = 70
                finally:
                    for stream in (sys.stdout, sys.stderr):
                        with contextlib.suppress(Exception):
                            stream.flush()
                    os._exit(code)
            os.close(task_r)
            os.close(result_w)
            self._procs.append(_Worker(pid=pid, tasks=task_w, results=result_r))

    def _serve(self, tasks: int, results: int) -> None:
        if self.init is not None:
            self.init()
        while True:
            try:
                message = _recv(tasks)
            except EOFError:
                return
            if message is None:
                return
            index, item = message
            try:
                reply: tuple[Any, ...] = ("ok", index, self.fn(item))
            except BaseException as exc:  # reported to the parent, which decides
                data, name, text = _portable_error(exc)
                reply = ("error", index, data, name, text, traceback.format_exc())
            try:
                _send(results, reply)
            except BrokenPipeError:
                return
            except Exception as exc:  # the result does not pickle
                data, name, text = _portable_error(exc)
                _send(results, ("error", index, data, name, text, traceback.format_exc()))

    def close(self, *, kill: bool = False) -> None:
        """Stop the workers (after their current item, or at once with kill) and reap them."""
        if self._closed or os.getpid() != self._owner:
            return
        self._closed = True
        for w in self._procs:
            if kill and w.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)
            for fd in (w.tasks, w.results):
                with contextlib.suppress(OSError):
                    os.close(fd)
        for w in self._procs:
            if w.alive:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(w.pid, 0)
                w.alive = False

    # ---------------------------------------------------------------------------- mapping

    def map(
        self,
        items: Sequence[T],
        *,
        order: Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[R]:
        if self._closed:
            raise RuntimeError("the pool is closed")
        n = len(items)
        order = list(range(n)) if order is None else list(order)
        if sorted(order) != list(range(n)):
            raise ValueError("order must be a permutation of the item indices")
        if self.workers <= 1 or (n <= 1 and not self._procs):
            out: list[R] = []
            for done, item in enumerate(items, start=1):
                out.append(self.fn(item))
                if progress is not None:
                    progress(done, n)
            return out
        if not self._procs:
            self._start()
        return self._map_parallel(items, order, progress)

    def _map_parallel(
        self,
        items: Sequence[T],
        order: list[int],
        progress: Callable[[int, int], None] | None,
    ) -> list[R]:
        n = len(items)
        results: list[Any] = [None] * n
        errors: dict[int, tuple[Any, ...]] = {}
        pending = list(reversed(order))  # pop() from the end: dispatch in `order`
        done = 0
        with selectors.DefaultSelector() as sel:

            def dispatch(w: _Worker) -> None:
                if errors:  # only what comes before the first failure still matters
                    first = min(errors)
                    pending[:] = [i for i in pending if i < first]
                if not pending:
                    return
                index = pending.pop()
                w.index = index
                with contextlib.suppress(BrokenPipeError):  # its result pipe tells the death
                    _send(w.tasks, (index, items[index]))
                sel.register(w.results, selectors.EVENT_READ, w)

            for w in self._procs:
                dispatch(w)
            while sel.get_map():
                for key, _ in sel.select():
                    w = key.data
                    sel.unregister(w.results)
                    assert w.index is not None
                    index, w.index = w.index, None
                    try:
                        reply = _recv(w.results)
                    except EOFError:
                        _, status = os.waitpid(w.pid, 0)
                        w.alive = False
                        self.close(kill=True)
                        raise WorkerDiedError(
                            f"a counting process {_describe_status(status)} while it held "
                            f"item {index}",
                            index,
                        ) from None
                    if reply[0] == "ok":
                        results[index] = reply[2]
                    else:
                        errors[index] = reply
                    done += 1
                    if progress is not None:
                        progress(done, n)
                    dispatch(w)
        if errors:
            _, _, data, name, text, tb = errors[min(errors)]
            exc: BaseException | None = None
            if data is not None:
                with contextlib.suppress(Exception):
                    exc = pickle.loads(data)
            if not isinstance(exc, Exception):  # SystemExit & co. stop no one here
                exc = RuntimeError(f"{name}: {text}")
            raise exc from RemoteTracebackError(tb)
        return results
