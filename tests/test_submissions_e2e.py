"""From registration to results over HTTP, with a real Redis and a real Celery worker process,
on PostgreSQL: the web app enqueues to the same broker the worker consumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from sklearn.metrics import accuracy_score

from core.db import migrate
from core.db.session import make_engine, transaction
from core.settings import BrokerSettings, LimitsSettings, StorageSettings
from core.tasks import service as task_service
from tests.conftest import s3_env
from tests.helpers import noisy_predictions, raw_gold
from tests.submission_helpers import TINY_MODEL

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]

REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
PB = Path(sys.executable).with_name("paretoboard")
BROKER_DB = 11  # test_worker_e2e.py uses 13 and 14


# The S3 run is the same flow again (about a minute): slow, beside the blob store's own tests.
@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_databases: Any,
    sandbox_jobs_dir: Path,
    elue_dir: Path,
) -> Iterator[tuple[Api, subprocess.Popen[bytes], Path]]:
    """The web app and a worker process; blobs on the local disk or in an S3 bucket (moto)."""
    from tests.api_helpers import Api

    s3: dict[str, str] = request.getfixturevalue("s3_storage") if request.param == "s3" else {}

    url = pg_databases.create()
    migrate.upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        for data in task_service.read_task_folders(elue_dir / "SST-2"):
            task_service.import_task(session, data)
    engine.dispose()
    broker, backend = f"{REDIS_URL}/{BROKER_DB}", f"{REDIS_URL}/{BROKER_DB + 1}"
    redis.Redis.from_url(broker).flushdb()
    data = tmp_path / "var"
    api = Api.start(
        url,
        data,
        broker=BrokerSettings(url=broker, result_backend=backend),  # type: ignore[arg-type]
        storage=StorageSettings.model_validate(
            {"data_dir": data, "jobs_dir": sandbox_jobs_dir, **s3}
        ),
        limits=LimitsSettings(sandbox_wall_seconds=300),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_DB__URL=url,
        PARETOBOARD_BROKER__URL=broker,
        PARETOBOARD_BROKER__RESULT_BACKEND=backend,
        PARETOBOARD_STORAGE__DATA_DIR=str(data),
        PARETOBOARD_STORAGE__JOBS_DIR=str(sandbox_jobs_dir),
        **s3_env(s3),
    )
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [str(PB), "worker", "--queues", "score,cost", "--loglevel", "INFO"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield api, worker, log
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        api.close()


def test_register_submit_and_follow_to_done(
    stack: tuple[Api, subprocess.Popen[bytes], Path], elue_dir: Path, tmp_path: Path
) -> None:
    api, _worker, log = stack
    alice = api.register()  # POST /users, POST /tokens
    gold = raw_gold(elue_dir, "SST-2")
    preds = noisy_predictions(gold, "SST-2", seed=21)
    tsv = "index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(preds))
    created = api.client.post(
        "/api/v1/submissions",
        headers=alice.headers,
        data={"name": "tiny static"},
        files=[
            ("model", ("tiny_static.py", TINY_MODEL.read_bytes())),
            ("predictions", ("SST-2.tsv", tsv.encode())),
        ],
    )
    assert created.status_code == 202, created.text
    assert created.json()["queued"] is True
    url = created.json()["api_url"]

    seen: list[str] = []
    deadline = time.monotonic() + 300
    while True:
        sub = api.client.get(url, headers=alice.headers).json()
        if not seen or seen[-1] != sub["state"]:
            seen.append(sub["state"])
        if sub["state"] in ("done", "failed"):
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"stuck in {sub['state']}: {sub['state_message']}\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.5)
    assert sub["state"] == "done", (sub["state_message"], sub["error_detail"], sub["sandbox_log"])
    assert seen[0] == "queued"
    assert sub["stage"] == {"name": "done", "index": 5, "total": 5}
    assert sub["queue_position"] is None
    timings = sub["timings"]
    assert timings["started_at"] is not None
    assert timings["finished_at"] is not None
    assert timings["elapsed_seconds"] > 0
    assert sub["error"] is None
    assert [e["state"] for e in sub["timeline"]][-1] == "done"

    [task] = sub["results"]
    [point] = task["points"]
    assert task["task"] == "SST-2"
    assert point["performance"] == pytest.approx(accuracy_score(gold, preds) * 100)
    assert point["cost_status"] == "counted"
    assert point["params"] == sub["params"] == 30522 * 16 + 16 * 16 + 16 + 16 * 2 + 2
    assert point["flops"]["mean"] > 0
    assert point["flops"]["p10"] <= point["flops"]["median"] <= point["flops"]["p90"]

    costs = api.client.get(point["costs_url"]).json()
    assert costs["n"] == len(gold) == len(costs["flops"])
    assert sum(costs["flops"]) / costs["n"] == pytest.approx(point["flops"]["mean"])
    assert costs["per_operator"]
    assert costs["details"]["cross_check_agrees"] is True

    board = api.client.get("/api/v1/tasks/SST-2/leaderboard")
    assert board.status_code == 200, board.text
    [listed] = [p for p in board.json()["points"] if p["submission_id"] == created.json()["id"]]
    assert listed["performance"] == pytest.approx(point["performance"])
    assert listed["flops_mean"] == pytest.approx(point["flops"]["mean"])

    # Where the files went: the configured store, and nothing on the local disk with S3.
    from core.storage import blob_store

    stored = {b.name for b in blob_store(api.settings).list_blobs()}
    assert len(stored) == 2  # the model file and the prediction file
    if api.settings.storage.backend == "s3":
        assert not api.settings.storage.uploads_dir.exists()
