"""The embedded run's Redis keeps queued jobs across a restart (append-only file), as compose."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from pathlib import Path

import redis

from core.settings import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_persistent_redis_survives_a_restart(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "REDIS_PORT": str(port),
        "PARETOBOARD_REDIS_PERSIST": "1",
        "PARETOBOARD_REDIS_DIR": str(tmp_path),
    }
    script = [str(REPO_ROOT / "scripts" / "ensure-redis.sh")]

    def start() -> redis.Redis:
        url = subprocess.run(script, env=env, check=True, capture_output=True, text=True)
        assert url.stdout.strip() == f"redis://127.0.0.1:{port}"
        return redis.Redis(port=port)

    client = start()
    client.lpush("queue", "job-1")
    with contextlib.suppress(redis.ConnectionError):  # the server closes the connection
        client.shutdown(nosave=True)  # a crash-like stop: no snapshot, only the append-only file
    client = start()
    try:
        assert client.lrange("queue", 0, -1) == [b"job-1"]
        assert (tmp_path / "appendonlydir").is_dir()
    finally:
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(nosave=True)
