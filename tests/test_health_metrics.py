"""/healthz, /readyz and /metrics tell the truth when the database or the broker is down.

The broker is a real redis-server started (and stopped) by the test; a database that is down is
one whose server does not answer; a hung one is a socket that accepts and never replies.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.settings import BrokerSettings, DatabaseSettings, Mode, Settings, StorageSettings
from server import probes
from tests.processes import free_port
from web.app import create_app
from worker.celery_app import COST_TASK, configure

pytest_plugins = ["tests.api_helpers"]


class RedisServer:
    """A throwaway redis-server on its own port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found (scripts/ensure-redis.sh installs it)")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pb-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def broker() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _client(database_url: str, broker_url: str, data: Path) -> TestClient:
    settings = Settings(
        mode=Mode.TEST,
        db=DatabaseSettings(url=SecretStr(database_url)),
        broker=BrokerSettings(
            url=SecretStr(f"{broker_url}/0"), result_backend=SecretStr(f"{broker_url}/1")
        ),
        storage=StorageSettings(data_dir=data),
    )
    return TestClient(create_app(settings))


def _samples(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line.rpartition(" ")
            out[labels.removeprefix(name)] = float(value)
    return out


DEAD_PG = "postgresql+psycopg://nobody@127.0.0.1:{port}/none?connect_timeout=2"


def test_all_up(api_db: str, broker: RedisServer, tmp_path: Path) -> None:
    client = _client(api_db, broker.url, tmp_path)
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
    text = client.get("/metrics").text
    assert _samples(text, "paretoboard_dependency_up") == {
        '{dependency="database"}': 1.0,
        '{dependency="broker"}': 1.0,
    }
    assert _samples(text, "paretoboard_queue_depth") == {
        '{queue="score"}': 0.0,
        '{queue="cost"}': 0.0,
        '{queue="cost-cpu"}': 0.0,
    }


def test_queue_depth_counts_waiting_jobs(api_db: str, broker: RedisServer, tmp_path: Path) -> None:
    client = _client(api_db, broker.url, tmp_path)
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    celery = configure(Celery("test-sender"), settings)
    for i in range(3):  # what a score worker sends; no cost worker is running
        celery.send_task(COST_TASK, args=[i + 1, "job", {}], queue="cost", ignore_result=True)
    celery.send_task(COST_TASK, args=[9, "job", {}], queue="cost", priority=6, ignore_result=True)
    depths = _samples(client.get("/metrics").text, "paretoboard_queue_depth")
    assert depths['{queue="cost"}'] == 4.0
    assert depths['{queue="score"}'] == 0.0


def test_broker_down_then_back(api_db: str, broker: RedisServer, tmp_path: Path) -> None:
    client = _client(api_db, broker.url, tmp_path)
    broker.stop()
    assert client.get("/healthz").status_code == 200  # liveness: the process is fine
    ready = client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] == "down: ConnectionError"
    text = client.get("/metrics").text
    assert _samples(text, "paretoboard_dependency_up") == {
        '{dependency="database"}': 1.0,
        '{dependency="broker"}': 0.0,
    }
    assert "paretoboard_queue_depth{" not in text  # unknown: absent, not a false zero
    broker.start()
    assert client.get("/readyz").status_code == 200


def test_database_down(broker: RedisServer, tmp_path: Path) -> None:
    client = _client(DEAD_PG.format(port=free_port()), broker.url, tmp_path)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["broker"] == "ok"
    assert checks["database"] == "down: OperationalError"
    assert "nobody" not in ready.text  # connection details go to the log, not the answer
    text = client.get("/metrics").text
    assert _samples(text, "paretoboard_dependency_up") == {
        '{dependency="database"}': 0.0,
        '{dependency="broker"}': 1.0,
    }
    assert "paretoboard_submissions{" not in text
    assert '{queue="cost"}' in text  # the broker still answers


def test_both_down(tmp_path: Path) -> None:
    client = _client(DEAD_PG.format(port=free_port()), f"redis://127.0.0.1:{free_port()}", tmp_path)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {
        "database": "down: OperationalError",
        "broker": "down: ConnectionError",
    }
    assert client.get("/healthz").status_code == 200


def test_a_hung_broker_is_down_within_the_timeout(
    api_db: str, silent_port: int, tmp_path: Path
) -> None:
    client = _client(api_db, f"redis://127.0.0.1:{silent_port}", tmp_path)
    started = time.monotonic()
    ready = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"].startswith("down")
    assert elapsed < probes.TIMEOUT_SECONDS + 3
    started = time.monotonic()
    text = client.get("/metrics").text
    assert '{dependency="broker"} 0.0' in text
    assert time.monotonic() - started < 2 * probes.TIMEOUT_SECONDS + 3


def test_request_latency_by_route_template(
    api_db: str, broker: RedisServer, tmp_path: Path
) -> None:
    client = _client(api_db, broker.url, tmp_path)
    name = "paretoboard_http_request_duration_seconds_count"
    before = _samples(client.get("/metrics").text, name)
    for sid in (101, 102, 103):
        assert client.get(f"/api/v1/submissions/{sid}").status_code in (401, 404)
    assert client.get("/no/such/page").status_code == 404
    after = _samples(client.get("/metrics").text, name)

    def grew(labels: str) -> float:
        return after.get(labels, 0.0) - before.get(labels, 0.0)

    templated = [k for k in after if 'route="/api/v1/submissions/{submission_id}"' in k]
    assert sum(grew(k) for k in templated) == 3.0
    assert not any("/api/v1/submissions/101" in k for k in after)  # never the raw path
    assert grew('{method="GET",route="<unmatched>",status="404"}') == 1.0
