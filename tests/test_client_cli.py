"""The submitter's client (`paretoboard submit / status / results`) as a subprocess, against a
real server (uvicorn on a free loopback port) with a real Redis and Celery worker behind it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from core.db.session import make_engine, transaction
from core.users import service as user_service
from tests.processes import free_port, stop, uvicorn_command
from tests.submission_helpers import TINY_MODEL, predictions_text, with_bad_line

PB = Path(sys.executable).with_name("paretoboard")
REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BROKER_DB = 9  # other end-to-end tests use 11-14


@dataclass
class Server:
    url: str
    token: str
    env: dict[str, str]  # for client commands: no server-side settings, no token
    service_env: dict[str, str] = field(default_factory=dict)  # the server's and worker's


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_seeded_template: Path, sandbox_jobs_dir: Path
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("client")
    data = tmp / "var"
    data.mkdir()
    shutil.copyfile(sqlite_seeded_template, data / "paretoboard.db")
    engine = make_engine(f"sqlite:///{data / 'paretoboard.db'}")
    with transaction(engine) as session:
        user = user_service.create_user(
            session, email="cli@example.org", display_name="CLI", password="x" * 12
        )
        _, token = user_service.create_token(session, user=user, name="cli")
    engine.dispose()
    broker, backend = f"{REDIS_URL}/{BROKER_DB}", f"{REDIS_URL}/{BROKER_DB + 1}"
    redis.Redis.from_url(broker).flushdb()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    service_env = {
        **base,
        "PARETOBOARD_STORAGE__DATA_DIR": str(data),
        "PARETOBOARD_STORAGE__JOBS_DIR": str(sandbox_jobs_dir),
        "PARETOBOARD_BROKER__URL": broker,
        "PARETOBOARD_BROKER__RESULT_BACKEND": backend,
    }
    port = free_port()
    log = (tmp / "server.log").open("ab")
    web = subprocess.Popen(
        uvicorn_command(port),
        env=service_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [str(PB), "worker", "--queues", "score,cost", "--loglevel", "INFO"],
        env=service_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                pytest.fail("the server did not start:\n" + (tmp / "server.log").read_text())
            time.sleep(0.2)
        client_env = {**base, "XDG_CONFIG_HOME": str(tmp / "config"), "PARETOBOARD_SERVER": url}
        yield Server(url, token, client_env, service_env)
    finally:
        stop(worker)
        stop(web)


def _run(server: Server, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PB), *args],
        env={**server.env, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_check_shows_line_level_problems(server: Server, tmp_path: Path) -> None:
    bad = tmp_path / "SST-2.tsv"
    bad.write_bytes(with_bad_line(predictions_text("SST-2"), 9, "positive"))
    unknown = tmp_path / "QNLI.tsv"
    unknown.write_text("index\tprediction\n0\t1\n")
    done = _run(
        server,
        "submit",
        "--check",
        "--model",
        str(TINY_MODEL),
        str(bad),
        str(unknown),
        PARETOBOARD_TOKEN=server.token,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'SST-2.tsv:9 [prediction]: label "positive" is not one of 0, 1' in done.stderr
    assert "QNLI.tsv: Unknown task 'QNLI'" in done.stderr

    good = tmp_path / "good" / "SST-2.tsv"
    good.parent.mkdir()
    good.write_text(predictions_text("SST-2", seed=5))
    ok = _run(
        server,
        "submit",
        "--check",
        "--model",
        str(TINY_MODEL),
        str(good),
        PARETOBOARD_TOKEN=server.token,
    )
    assert ok.returncode == 0, ok.stderr
    assert "SST-2.tsv: SST-2, 2,210 rows (simple)" in ok.stdout
    assert "quota SST-2: " in ok.stdout
    assert " left in 24 hours (0 used)" in ok.stdout
    assert "(a check stores nothing and uses no quota)" in ok.stdout


@pytest.mark.slow  # 10-30 s; the default run keeps the suite under 15 min
def test_submit_wait_status_results(server: Server, tmp_path: Path) -> None:
    predictions = tmp_path / "SST-2.tsv"
    predictions.write_text(predictions_text("SST-2", seed=6))
    config = Path(server.env["XDG_CONFIG_HOME"]) / "paretoboard" / "client.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'token = "{server.token}"\n')  # the server comes from PARETOBOARD_SERVER

    submitted = _run(
        server,
        "submit",
        "--model",
        str(TINY_MODEL),
        "--name",
        "tiny from the cli",
        "--wait",
        "--interval",
        "0.5",
        str(predictions),
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    first = submitted.stdout.splitlines()[0]
    assert first.startswith("submission ")
    sid = int(first.split()[1].rstrip(":"))
    assert first.endswith(f"{server.url}/submissions/{sid}")
    assert "queued" in submitted.stdout  # the progress lines
    assert "[5/5] done: Evaluated" in submitted.stdout
    table = submitted.stdout.split("Evaluated")[-1]
    assert "SST-2" in table
    assert "counted" in table

    status = _run(server, "status", str(sid))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"submission {sid} (tiny from the cli): [5/5] done: Evaluated")

    results = _run(server, "results", str(sid), "--json")
    assert results.returncode == 0, results.stderr
    body = json.loads(results.stdout)
    assert body["state"] == "done"
    [task] = body["results"]
    assert task["task"] == "SST-2"
    assert task["points"][0]["cost_status"] == "counted"
    assert task["points"][0]["performance"] > 50

    config.unlink()
    anonymous = _run(server, "submit", "--model", str(TINY_MODEL), str(predictions))
    assert anonymous.returncode == 2
    assert "no API token" in anonymous.stderr
    missing = _run(server, "status", "999999")
    assert missing.returncode == 1
    assert "No submission 999999 (HTTP 404)" in missing.stderr
