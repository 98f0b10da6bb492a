"""Workers run at a lower CPU priority than the web (`worker.nice`), and what they start
(the Celery pool, the sandboxes) inherits it."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_worker_logging import _worker


def _nice_of(pid: int) -> int:
    """The niceness of `pid` from /proc (field 19 of its stat line)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def _started_worker(nice: str, report: Any) -> None:
    """In a child process: `paretoboard worker` up to the point Celery would take over, then
    report its niceness and that of a process it starts (as the pool and the sandbox are)."""
    import celery

    from cli.worker_commands import worker
    from core.settings import get_settings

    os.environ["PARETOBOARD_WORKER__NICE"] = nice
    get_settings.cache_clear()

    def instead_of_celery(_app: object, _argv: list[str]) -> None:
        child = subprocess.run(
            ["sh", "-c", "cat /proc/self/stat"], capture_output=True, text=True, check=True
        )
        report.put(
            (os.getpriority(os.PRIO_PROCESS, 0), int(child.stdout.rsplit(")", 1)[1].split()[16]))
        )

    celery.Celery.worker_main = instead_of_celery  # type: ignore[method-assign]
    worker(
        queues="score",
        concurrency=1,
        beat=False,
        loglevel="WARNING",
        cpu_only=False,
        metrics_port=None,
    )


@pytest.mark.parametrize("nice", ["7", "0"])
def test_a_started_worker_lowers_its_priority_and_what_it_starts_inherits_it(nice: str) -> None:
    start = os.getpriority(os.PRIO_PROCESS, 0)
    context = multiprocessing.get_context("fork")
    report = context.Queue()
    child = context.Process(target=_started_worker, args=(nice, report))
    child.start()
    try:
        own, started = report.get(timeout=60)
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    assert own == started == max(int(nice), start)
    assert os.getpriority(os.PRIO_PROCESS, 0) == start  # this process is left as it was


@pytest.mark.slow  # a real worker: 10-30 s on a loaded host
def test_a_real_worker_and_its_pool_run_at_the_configured_niceness() -> None:
    proc = _worker({"PARETOBOARD_WORKER__NICE": "9"}, "--queues", "score")
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if "ready" in line or time.monotonic() > deadline:
                break
        children = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        assert children, "no pool process"
        assert _nice_of(proc.pid) == 9
        assert all(_nice_of(c) == 9 for c in children)
    finally:
        from tests.processes import stop

        proc.stdout and proc.stdout.close()
        stop(proc)  # type: ignore[arg-type]
