"""Worker log lines (JSON, with the submission id) and what a worker says about its device."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.logging_setup import JsonFormatter, SubmissionFilter, TextFormatter, submission_context

PB = Path(sys.executable).with_name("paretoboard")
REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _record(msg: str, args: object = None, name: str = "worker.pipeline") -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]
    SubmissionFilter().filter(record)
    return record


def test_json_lines_carry_the_submission_of_the_task() -> None:
    with submission_context(42, "abc123"):
        line = json.loads(JsonFormatter().format(_record("scored %s files", (3,))))
    assert line["message"] == "scored 3 files"
    assert line["submission_id"] == 42
    assert line["job_id"] == "abc123"
    assert line["level"] == "INFO"
    assert line["logger"] == "worker.pipeline"
    outside = json.loads(JsonFormatter().format(_record("idle")))
    assert outside["submission_id"] is None


def test_celery_received_lines_get_the_id_from_the_task_arguments() -> None:
    context = {"id": "t1", "name": "paretoboard.cost", "args": "(7, 'job', <cost job>)"}
    record = _record("Task %(name)s[%(id)s] received", context, "celery.worker.strategy")
    assert json.loads(JsonFormatter().format(record))["submission_id"] == 7


def test_text_lines_name_the_submission() -> None:
    with submission_context(5):
        text = TextFormatter().format(_record("counting"))
    assert "[submission 5]" in text
    assert text.endswith("counting")


def _worker(env_extra: dict[str, str], *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_BROKER__URL=f"{REDIS_URL}/9",
        PARETOBOARD_BROKER__RESULT_BACKEND=f"{REDIS_URL}/9",
        PARETOBOARD_LOG_FORMAT="json",
        **env_extra,
    )
    return subprocess.Popen(
        [str(PB), "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _first_lines(proc: subprocess.Popen[str], until: str, timeout: float = 120) -> list[str]:
    """Lines of output until one contains `until` (then stop the worker)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line)
            if until in line or time.monotonic() > deadline:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    return lines


@pytest.mark.slow  # 10-30 s; the default run keeps the suite under 15 min
def test_worker_without_cuda_says_so() -> None:
    lines = _first_lines(_worker({}, "--queues", "cost"), "ready")
    messages = [json.loads(x)["message"] for x in lines if x.startswith("{")]
    assert any(m.startswith("no CUDA device on this host") and "--cpu-only" in m for m in messages)


@pytest.mark.gpu
def test_gpu_worker_refuses_two_jobs_per_gpu() -> None:
    done = _worker(
        {"PARETOBOARD_LIMITS__COST_DEVICE": "cuda"}, "--queues", "cost", "--concurrency", "2"
    )
    out, _ = done.communicate(timeout=120)
    assert done.returncode == 1
    assert "one cost job per GPU" in out


def test_worker_asked_for_cuda_without_it_refuses_to_start() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    done = _worker({"PARETOBOARD_LIMITS__COST_DEVICE": "cuda"}, "--queues", "cost")
    out, _ = done.communicate(timeout=120)
    assert done.returncode == 1
    assert "has no CUDA device" in out


@pytest.mark.slow  # 10-30 s; the default run keeps the suite under 15 min
def test_cpu_only_worker_takes_the_cpu_queue() -> None:
    lines = _first_lines(_worker({}, "--queues", "cost", "--cpu-only"), "ready")
    text = "".join(lines)
    assert "cost jobs are counted on the CPU on this worker" in text
    assert "no CUDA device" not in text
