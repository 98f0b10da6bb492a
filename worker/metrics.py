"""Worker metrics: evaluations by outcome, their durations, stage times, sandbox failures.

Celery's prefork pool runs tasks in child processes: the worker command points
PROMETHEUS_MULTIPROC_DIR at a folder of its own before anything imports prometheus_client, and
serves the merged values of all its processes on `--metrics-port` (each worker, on any machine,
is scraped on its own port). Without that variable the values stay in the process (tests,
`paretoboard evaluate`), which costs nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client import multiprocess as prom_multiprocess

from core.models import Submission, SubmissionState
from core.submissions.states import Fault

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400)

EVALUATIONS = Counter(
    "paretoboard_evaluations",
    "Evaluations that reached a final state, by outcome (done, failed_user, failed_service)",
    ["outcome"],
)
EVALUATION_SECONDS = Histogram(
    "paretoboard_evaluation_duration_seconds",
    "Seconds from the start of validation to the final state, by outcome",
    ["outcome"],
    buckets=_DURATION_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "paretoboard_stage_duration_seconds",
    "Seconds spent in one pipeline stage (scoring, cost_prepare, cost_job, cost_store)",
    ["stage"],
    buckets=_DURATION_BUCKETS,
)
SANDBOX_FAILURES = Counter(
    "paretoboard_sandbox_failures",
    "Cost jobs that ended without a valid report, by reason",
    ["reason"],
)
COST_JOBS = Counter(
    "paretoboard_cost_jobs",
    "Cost jobs this worker ran in its sandbox, by device",
    ["device"],
)


def outcome_of(submission: Submission) -> str | None:
    """ "done", "failed_user" or "failed_service" for a final submission, else None."""
    if submission.state is SubmissionState.DONE:
        return "done"
    if submission.state is SubmissionState.FAILED:
        return "failed_service" if submission.fault == Fault.SERVICE else "failed_user"
    return None


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def evaluation_seconds(submission: Submission) -> float | None:
    start = submission.started_at or submission.created_at
    end = submission.finished_at
    if start is None or end is None:
        return None
    return max(0.0, (_naive_utc(end) - _naive_utc(start)).total_seconds())


def record_final(outcome: str, seconds: float | None) -> None:
    """Count one evaluation that reached its final state (call after the commit)."""
    EVALUATIONS.labels(outcome=outcome).inc()
    if seconds is not None:
        EVALUATION_SECONDS.labels(outcome=outcome).observe(seconds)


def record_stage(stage: str, seconds: float) -> None:
    STAGE_SECONDS.labels(stage=stage).observe(seconds)


def record_cost_job(device: str, failure_reason: str | None) -> None:
    COST_JOBS.labels(device=device).inc()
    if failure_reason is not None:
        SANDBOX_FAILURES.labels(reason=failure_reason).inc()


def prepare_multiprocess_dir(path: Path) -> Path:
    """Empty `path` for a fresh process tree (stale files from a previous run would be summed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    return path


def serve_multiprocess(port: int, addr: str = "0.0.0.0") -> None:
    """Serve every process's values (from PROMETHEUS_MULTIPROC_DIR) on `addr:port`."""
    if not os.environ.get(MULTIPROC_ENV):
        raise RuntimeError(f"{MULTIPROC_ENV} must be set before prometheus_client is imported")
    registry = CollectorRegistry()
    prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=addr, registry=registry)


def mark_process_dead(pid: int) -> None:
    """Forget a dead pool process's live values (counters and histograms are kept)."""
    if os.environ.get(MULTIPROC_ENV):
        prom_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
