"""End to end through a real Redis and a real Celery worker process, on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
from celery import Celery
from sklearn.metrics import accuracy_score
from sqlalchemy import Engine, func, select

from core.db import migrate
from core.db.session import make_engine, transaction
from core.models import Result, ResultCost, Submission, SubmissionState
from core.settings import REPO_ROOT, BrokerSettings, LimitsSettings, Settings, StorageSettings
from core.storage import LocalBlobStore
from core.submissions.service import SubmissionDraft, UploadedFile, create_submission
from core.tasks import service as task_service
from core.tokenizers import registered_tokenizers
from tests.helpers import noisy_predictions, raw_gold, write_predictions
from tests.processes import stop
from worker.celery_app import SCORE_TASK, configure
from worker.pipeline import queue_submission

REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
MODELS = Path(__file__).parent / "models"
PB = Path(sys.executable).with_name("paretoboard")


@dataclass
class Stack:
    settings: Settings
    engine: Engine
    env: dict[str, str]
    celery: Celery
    tmp: Path
    log: Path

    def start_worker(self) -> subprocess.Popen[bytes]:
        out = self.log.open("ab")
        return subprocess.Popen(
            [str(PB), "worker", "--queues", "score,cost", "--loglevel", "INFO"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def submit(self, model: Path, predictions: Path, name: str) -> int:
        with transaction(self.engine) as session:
            sub = create_submission(
                session,
                LocalBlobStore(self.settings.storage.uploads_dir),
                owner_id=None,
                draft=SubmissionDraft(name=name),
                model=UploadedFile(model.name, model),
                predictions=[UploadedFile("SST-2.tsv", predictions)],
                limits=self.settings.limits,
                tokenizers=registered_tokenizers(self.settings.storage.tokenizers_dir),
            )
            job_id = queue_submission(sub)
            sid = sub.id
        self.celery.send_task(SCORE_TASK, args=[sid, job_id])
        return sid

    def wait(
        self, sid: int, states: set[SubmissionState], timeout: float, message: str = ""
    ) -> Submission:
        deadline = time.monotonic() + timeout
        while True:
            with transaction(self.engine) as session:
                sub = session.get(Submission, sid)
                assert sub is not None
                if sub.state in states and message in sub.state_message:
                    return sub
            if time.monotonic() > deadline:
                pytest.fail(
                    f"submission {sid} stuck in {sub.state}: {sub.state_message}\n{self.log.read_text()[-4000:]}"
                )
            time.sleep(0.5)


@pytest.fixture
def stack(
    tmp_path: Path, pg_databases: object, sandbox_jobs_dir: Path, elue_dir: Path
) -> Iterator[Stack]:
    url = pg_databases.create()  # type: ignore[attr-defined]
    migrate.upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        for data in task_service.read_task_folders(elue_dir / "SST-2"):
            task_service.import_task(session, data)
    broker = f"{REDIS_URL}/13"
    redis.Redis.from_url(broker).flushdb()
    data = tmp_path / "var"
    data.mkdir()
    settings = Settings(
        db={"url": url},  # type: ignore[arg-type]
        broker=BrokerSettings(url=broker, result_backend=f"{REDIS_URL}/14"),  # type: ignore[arg-type]
        storage=StorageSettings(data_dir=data, jobs_dir=sandbox_jobs_dir),
        limits=LimitsSettings(sandbox_wall_seconds=300),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_DB__URL=url,
        PARETOBOARD_BROKER__URL=broker,
        PARETOBOARD_BROKER__RESULT_BACKEND=f"{REDIS_URL}/14",
        PARETOBOARD_STORAGE__DATA_DIR=str(data),
        PARETOBOARD_STORAGE__JOBS_DIR=str(sandbox_jobs_dir),
    )
    celery = configure(Celery("paretoboard-test"), settings)
    yield Stack(settings, engine, env, celery, tmp_path, tmp_path / "worker.log")
    engine.dispose()


def _closed_form(lengths: np.ndarray) -> np.ndarray:
    """BERT-base FLOPs per sample (elue-protocol.md), LayerNorm excluded, C = 2 labels."""
    return 2 * (12 * (7_077_888 * lengths + 1_536 * lengths**2) + 768**2 + 768 * 2)


def test_bert_base_on_sst2_through_celery(stack: Stack, elue_dir: Path) -> None:
    gold = raw_gold(elue_dir, "SST-2")
    preds = noisy_predictions(gold, "SST-2", seed=11)
    path = write_predictions(stack.tmp / "SST-2.tsv", preds)
    worker = stack.start_worker()
    try:
        sid = stack.submit(REPO_ROOT / "examples" / "bert_base_eager.py", path, "bert-base")
        sub = stack.wait(sid, {SubmissionState.DONE, SubmissionState.FAILED}, timeout=600)
        assert sub.state is SubmissionState.DONE, (sub.state_message, sub.error_detail)
    finally:
        stop(worker)
    from tests.test_pipeline import _tokenized

    lengths = np.array([len(ids) for ids in _tokenized(elue_dir, "SST-2")], dtype=np.int64)
    with transaction(stack.engine) as session:
        result = session.scalars(select(Result).where(Result.submission_id == sid)).one()
        cost = session.get(ResultCost, result.id)
        assert cost is not None
        assert result.performance == pytest.approx(accuracy_score(gold, preds) * 100)
        expected = _closed_form(lengths)
        # ELUE convention: the products' closed form + 25 LayerNorms x L x 768 x 10.
        assert result.flops_elue_mean == pytest.approx(
            (expected + 192_000 * lengths).mean(), rel=1e-12
        )
        # FLOPs: everything (biases, softmax, GELU, residuals, the mask), as a polynomial in L.
        everything = 37_872 * lengths**2 + 170_459_138 * lengths + 1_184_258
        assert result.flops_mean == pytest.approx(everything.mean(), rel=1e-12)
        assert not result.cost_incomplete
        assert result.params == 109_483_778
        assert cost.details["cross_check_agrees"] is True


@pytest.mark.slow  # about 30 s; the default run keeps the suite under 15 min
def test_killed_worker_mid_count_finishes_once(stack: Stack, elue_dir: Path) -> None:
    gold = raw_gold(elue_dir, "SST-2")
    path = write_predictions(stack.tmp / "SST-2.tsv", noisy_predictions(gold, "SST-2", seed=5))
    worker = stack.start_worker()
    sid = stack.submit(MODELS / "slow_static.py", path, "slow")
    stack.wait(sid, {SubmissionState.COUNTING}, timeout=120, message="sandbox")
    time.sleep(3)
    stop(worker, signal.SIGKILL)  # the whole worker, sandbox included, dies mid-count
    with transaction(stack.engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert sub.state is SubmissionState.COUNTING

    worker = stack.start_worker()
    try:
        reconciled = subprocess.run(
            [str(PB), "reconcile", "--older-than", "1"],
            env=stack.env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"submission {sid} (counting): re-enqueued" in reconciled.stdout
        sub = stack.wait(sid, {SubmissionState.DONE, SubmissionState.FAILED}, timeout=300)
        assert sub.state is SubmissionState.DONE, (sub.state_message, sub.error_detail)
    finally:
        stop(worker)
    assert [e["state"] for e in sub.timeline].count("done") == 1
    with transaction(stack.engine) as session:
        assert session.scalar(select(func.count()).where(Result.submission_id == sid)) == 1
        assert session.scalar(select(func.count()).select_from(ResultCost)) == 1
