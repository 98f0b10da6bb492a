"""The fair cost queue through a real Redis, a score worker and a cost worker, on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine

from core.db import migrate
from core.db.session import make_engine, transaction
from core.models import Submission, SubmissionState
from core.settings import BrokerSettings, Settings, StorageSettings
from core.storage import LocalBlobStore
from core.submissions.service import SubmissionDraft, UploadedFile, create_submission
from core.tasks import service as task_service
from core.tokenizers import registered_tokenizers
from core.users import service as user_service
from tests.helpers import noisy_predictions, raw_gold, write_predictions
from tests.processes import stop
from tests.submission_helpers import TINY_MODEL
from worker.celery_app import SCORE_TASK, configure
from worker.pipeline import queue_submission

REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
PB = Path(sys.executable).with_name("paretoboard")
BROKER_DB, BACKEND_DB = 11, 12


@pytest.fixture
def stack(
    tmp_path: Path, pg_databases: object, sandbox_jobs_dir: Path, elue_dir: Path
) -> Iterator[tuple[Settings, Engine, dict[str, str]]]:
    url = pg_databases.create()  # type: ignore[attr-defined]
    migrate.upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        for data in task_service.read_task_folders(elue_dir / "SST-2"):
            task_service.import_task(session, data)
    broker, backend = f"{REDIS_URL}/{BROKER_DB}", f"{REDIS_URL}/{BACKEND_DB}"
    redis.Redis.from_url(broker).flushdb()
    data = tmp_path / "var"
    data.mkdir()
    settings = Settings(
        db={"url": url},  # type: ignore[arg-type]
        broker=BrokerSettings(url=broker, result_backend=backend),  # type: ignore[arg-type]
        storage=StorageSettings(data_dir=data, jobs_dir=sandbox_jobs_dir),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_DB__URL=url,
        PARETOBOARD_BROKER__URL=broker,
        PARETOBOARD_BROKER__RESULT_BACKEND=backend,
        PARETOBOARD_STORAGE__DATA_DIR=str(data),
        PARETOBOARD_STORAGE__JOBS_DIR=str(sandbox_jobs_dir),
        PARETOBOARD_LIMITS__COST_JOBS_PER_USER="2",
    )
    yield settings, engine, env
    engine.dispose()


@pytest.mark.slow
def test_one_users_burst_does_not_hold_back_another_user(
    stack: tuple[Settings, Engine, dict[str, str]], tmp_path: Path, elue_dir: Path
) -> None:
    settings, engine, env = stack
    celery = configure(Celery("paretoboard-fair-test"), settings)
    preds = write_predictions(
        tmp_path / "SST-2.tsv", noisy_predictions(raw_gold(elue_dir, "SST-2"), "SST-2", seed=5)
    )
    with transaction(engine) as session:
        owners = [
            user_service.create_user(
                session, email=f"{n}@example.org", display_name=n, password="pw-0123456789"
            ).id
            for n in ("alice", "bob")
        ]

    def submit(owner: int, name: str) -> int:
        with transaction(engine) as session:
            sub = create_submission(
                session,
                LocalBlobStore(settings.storage.uploads_dir),
                owner_id=owner,
                draft=SubmissionDraft(name=name),
                model=UploadedFile(TINY_MODEL.name, TINY_MODEL),
                predictions=[UploadedFile("SST-2.tsv", preds)],
                limits=settings.limits,
                tokenizers=registered_tokenizers(settings.storage.tokenizers_dir),
            )
            job_id = queue_submission(sub)
            sid = sub.id
        celery.send_task(SCORE_TASK, args=[sid, job_id])
        return sid

    log = tmp_path / "workers.log"
    out = log.open("ab")
    workers = [
        subprocess.Popen(
            [str(PB), "worker", "--queues", queue, "--loglevel", "INFO"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for queue in ("score", "cost")
    ]
    try:
        alice = [submit(owners[0], f"a{i}") for i in range(5)]
        bob = submit(owners[1], "b")
        deadline = time.monotonic() + 900
        while True:
            with transaction(engine) as session:
                rows = {sid: session.get(Submission, sid) for sid in [*alice, bob]}
                if all(r is not None and r.state.is_final for r in rows.values()):
                    break
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
    finally:
        for worker in workers:
            stop(worker)
    subs = {sid: r for sid, r in rows.items() if r is not None}
    for sub in subs.values():
        assert sub.state is SubmissionState.DONE, (sub.name, sub.state_message, sub.error_detail)
    # Alice's burst: two sent at once, the other three waited for her own jobs to finish.
    waited = [
        sid
        for sid in alice
        if any("Waiting for a place in the cost queue" in e["message"] for e in subs[sid].timeline)
    ]
    assert len(waited) >= 3, [subs[sid].timeline for sid in alice]
    assert not any("Waiting for a place" in e["message"] for e in subs[bob].timeline), subs[
        bob
    ].timeline
    # Bob, sent last, is counted before Alice's last jobs (first come, first served would
    # have put him behind all five).
    finished = sorted(subs.values(), key=lambda s: s.finished_at or 0)
    order = [s.name for s in finished]
    assert order.index("b") <= 3, order
    assert all(s.cost_seconds is not None and s.cost_seconds > 0 for s in subs.values())
