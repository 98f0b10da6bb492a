"""Verified entries end to end (issue 11): the app under uvicorn on PostgreSQL, Redis, a score +
cost worker and a pre-flight worker as real processes, submissions through the HTTP API.

- an honest model with its weights: the point made by it is verified, and a second point whose
  predictions came from another model (same weights file) is not reproduced, with the count;
- a model that detects tracing and hands the platform a cheap graph: not reproduced;
- weights with wrong names and shapes: refused before the queue (the pre-flight worker captures
  the model), every mismatch listed, nothing stored.
"""

from __future__ import annotations

import io
import os
import runpy
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import torch
from safetensors.torch import save, save_model
from sqlalchemy import func, select

from core.db.session import make_engine, transaction
from core.models import Submission, SubmissionFile
from core.settings import REPO_ROOT
from core.tasks.files import read_task_folder
from core.tokenizers import cached_tokenizer, encode
from core.users import service as user_service
from tests.api_helpers import clone_pg
from tests.processes import free_port, stop, uvicorn_command, wait_until_up
from tests.submission_helpers import predictions_text

pytest_plugins = ["tests.api_helpers"]
# about 3 minutes (three cost jobs with verification runs): `pytest -m slow`
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PB = Path(sys.executable).with_name("paretoboard")
REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BROKER_DB = 3  # 3 and 4: this module's broker and results
PASSWORD = "correct horse battery staple"
MODELS = Path(__file__).parent / "models" / "verify"
TOKENIZER = REPO_ROOT.parent / "shared" / "data" / "tokenizers" / "bert-base-uncased"


@dataclass
class Stack:
    base: str
    db_url: str
    headers: dict[str, str]
    log: Path


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    url = clone_pg(request, seeded=True)
    engine = make_engine(url)
    with transaction(engine) as session:
        user = user_service.create_user(
            session,
            email=f"v-{uuid.uuid4().hex[:8]}@example.org",
            display_name="V",
            password=PASSWORD,
        )
        _, token = user_service.create_token(session, user=user, name="api")
    engine.dispose()
    broker, backend = f"{REDIS_URL}/{BROKER_DB}", f"{REDIS_URL}/{BROKER_DB + 1}"
    redis.Redis.from_url(broker).flushdb()
    redis.Redis.from_url(backend).flushdb()
    tmp = tmp_path_factory.mktemp("verified")
    jobs = Path(f"/tmp/paretoboard-jobs-{uuid.uuid4().hex[:8]}")
    jobs.mkdir(mode=0o755)
    jobs.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_MODE="test",
        PARETOBOARD_DB__URL=url,
        PARETOBOARD_BROKER__URL=broker,
        PARETOBOARD_BROKER__RESULT_BACKEND=backend,
        PARETOBOARD_STORAGE__DATA_DIR=str(tmp / "var"),
        PARETOBOARD_STORAGE__JOBS_DIR=str(jobs),
        PARETOBOARD_LIMITS__COST_DEVICE="cpu",
    )
    log = tmp / "processes.log"
    port = free_port()
    procs = [
        subprocess.Popen(
            cmd,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for cmd in (
            uvicorn_command(port, "--log-level", "warning"),
            [str(PB), "worker", "--queues", "score,cost"],
            [str(PB), "worker", "--queues", "preflight"],
        )
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        client = redis.Redis.from_url(broker)
        wait_until_up(
            base,
            procs,
            log,
            timeout=90,
            ready=lambda: any(client.scan_iter(match="paretoboard:preflight-worker:*")),
        )
        yield Stack(base, url, {"Authorization": f"Bearer {token}"}, log)
    finally:
        for p in procs:
            stop(p)


def _sst2_ids() -> list[list[int]]:
    """SST-2's test inputs as the platform tokenises them (bert-base-uncased, 512 tokens)."""
    from tests.conftest import ELUE_DIR

    texts = [e.texts for e in read_task_folder(ELUE_DIR / "SST-2").test]
    return encode(cached_tokenizer(TOKENIZER / "tokenizer.json", max_tokens=512), texts)


def _model(path: Path, seed: int) -> Any:
    model = runpy.run_path(str(path))["entire_model"]
    torch.manual_seed(seed)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def _predictions(model: Any, ids: list[list[int]]) -> bytes:
    with torch.no_grad():
        labels = [int(model(torch.tensor([x])).argmax()) for x in ids]
    return ("index\tprediction\n" + "".join(f"{i}\t{k}\n" for i, k in enumerate(labels))).encode()


def _weights(model: Any) -> bytes:
    buffer = Path(f"/tmp/w-{uuid.uuid4().hex}.safetensors")
    try:
        save_model(model, str(buffer))
        return buffer.read_bytes()
    finally:
        buffer.unlink(missing_ok=True)


def _submit(
    stack: Stack, name: str, model: Path, weights: bytes, predictions: dict[str, bytes]
) -> httpx.Response:
    files: list[tuple[str, tuple[str, Any, str]]] = [
        ("model", (model.name, io.BytesIO(model.read_bytes()), "text/x-python")),
        ("weights", ("weights.safetensors", io.BytesIO(weights), "application/octet-stream")),
    ]
    files += [
        ("predictions", (fname, io.BytesIO(body), "text/tab-separated-values"))
        for fname, body in predictions.items()
    ]
    return httpx.post(
        f"{stack.base}/api/v1/submissions",
        headers=stack.headers,
        data={"name": name},
        files=files,
        timeout=300,
    )


def _wait_done(stack: Stack, sid: int, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(
            f"{stack.base}/api/v1/submissions/{sid}", headers=stack.headers, timeout=30
        ).json()
        if body["state"] in ("done", "failed"):
            assert body["state"] == "done", (body["state_message"], body.get("error_detail"))
            return dict(body)
        if time.monotonic() > deadline:
            pytest.fail(
                f"submission {sid} stuck in {body['state']}:\n{stack.log.read_text()[-4000:]}"
            )
        time.sleep(1)


def _points(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["point"]: p for t in body["results"] for p in t["points"]}


def test_honest_point_verified_and_borrowed_predictions_not_reproduced(stack: Stack) -> None:
    ids = _sst2_ids()
    honest = _model(MODELS / "small_binary.py", seed=1)
    mine = _predictions(honest, ids)
    # another (better) model's predictions: a label in seven differs
    rows = mine.decode().splitlines()
    for i in range(1, len(rows), 7):
        index, label = rows[i].split("\t")
        rows[i] = f"{index}\t{1 - int(label)}"
    borrowed = ("\n".join(rows) + "\n").encode()
    differ = sum(a != b for a, b in zip(mine.splitlines(), borrowed.splitlines(), strict=True))
    assert differ > 50
    made = _submit(
        stack,
        "honest with weights",
        MODELS / "small_binary.py",
        _weights(honest),
        {"SST-2.mine.tsv": mine, "SST-2.borrowed.tsv": borrowed},
    )
    assert made.status_code == 202, made.text
    body = _wait_done(stack, made.json()["id"])
    points = _points(body)
    assert points["mine"]["verified"] is True, points["mine"]["verification"]
    assert points["mine"]["verification"]["agreement"] >= 0.995
    assert points["mine"]["verification"]["n"] == len(ids)
    assert points["borrowed"]["verified"] is False
    got = points["borrowed"]["verification"]
    assert got["status"] == "not_reproduced"
    assert got["disagree"] == differ
    assert got["first_diffs"]  # the owner sees which samples differ
    assert body["verified"] is False  # not every point: the entry is not verified
    assert body["verification"]["status"] == "partly_verified"
    assert body["verification"]["hardware"]["kind"] == "cpu"
    latency = points["mine"]["verification"]["latency"]
    assert latency["median_ms"] > 0
    # the public view shows the counts, not which samples differ
    public = httpx.get(f"{stack.base}/api/v1/submissions/{body['id']}", timeout=30).json()
    assert _points(public)["borrowed"]["verification"]["first_diffs"] is None
    page = httpx.get(f"{stack.base}/submissions/{body['id']}", timeout=30).text
    assert "Partly verified" in page
    assert f"not reproduced: {differ:,} of {len(ids):,} samples differ" in page


def test_model_that_detects_tracing_is_not_reproduced(stack: Stack) -> None:
    ids = _sst2_ids()
    cheat = _model(MODELS / "detects_tracing.py", seed=3)
    made = _submit(
        stack,
        "cheap graph",
        MODELS / "detects_tracing.py",
        _weights(cheat),
        {"SST-2.tsv": _predictions(cheat, ids)},  # made by the expensive eager program
    )
    assert made.status_code == 202, made.text
    body = _wait_done(stack, made.json()["id"])
    point = _points(body)[""]
    assert point["verification"]["status"] == "not_reproduced", point["verification"]
    assert point["verified"] is False
    assert body["verified"] is False


def test_weights_that_do_not_fit_the_graph_are_refused_before_the_queue(stack: Stack) -> None:
    model = _model(MODELS / "small_binary.py", seed=4)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    state["head.weight"] = torch.zeros(3, 16)
    state["stray"] = torch.zeros(2)
    del state["embed.weight"]
    engine = make_engine(stack.db_url)
    try:
        with transaction(engine) as session:
            before = session.scalar(select(func.count()).select_from(Submission))
            files_before = session.scalar(select(func.count()).select_from(SubmissionFile))
        made = _submit(
            stack,
            "wrong weights",
            MODELS / "small_binary.py",
            save(state),
            {"SST-2.tsv": predictions_text("SST-2").encode()},
        )
        assert made.status_code == 422, made.text
        problems = [p["problem"] for p in made.json()["error"]["details"]]
        assert any(
            "'head.weight' has shape [3, 16], the graph expects [2, 16]" in p for p in problems
        )
        assert any("unexpected tensor 'stray'" in p for p in problems)
        assert any("missing tensor 'embed.weight'" in p for p in problems)
        with transaction(engine) as session:
            assert session.scalar(select(func.count()).select_from(Submission)) == before
            assert session.scalar(select(func.count()).select_from(SubmissionFile)) == files_before
    finally:
        engine.dispose()


def test_check_only_runs_the_model_on_real_samples_and_reports_quota(stack: Stack) -> None:
    """`/validate` with a live pre-flight worker: the model (examples/dan.py) runs on real
    samples of each task named, the answer gives the remaining quota, nothing is stored or
    counted; an early-exit file whose module paths the model does not have is refused by line."""
    engine = make_engine(stack.db_url)
    try:
        with transaction(engine) as session:
            before = session.scalar(select(func.count()).select_from(Submission))
        model = (REPO_ROOT / "examples" / "dan.py").read_bytes()
        files = [
            ("model", ("dan.py", model, "text/x-python")),
            ("predictions", ("SST-2.tsv", predictions_text("SST-2").encode(), "text/plain")),
            ("predictions", ("SNLI.tsv", predictions_text("SNLI").encode(), "text/plain")),
        ]
        checked = httpx.post(
            f"{stack.base}/api/v1/submissions/validate",
            headers=stack.headers,
            files=files,
            timeout=300,
        )
        assert checked.status_code == 200, checked.text
        body = checked.json()
        assert "ran on 5 real SST-2 test input(s), 5 real SNLI test input(s)" in body["model_check"]
        assert [(q["task"], q["used"]) for q in body["quota"]] == [("SNLI", 0), ("SST-2", 0)]
        assert all(q["remaining"] == q["limit"] > 0 for q in body["quota"])

        # ELUE's modules column naming modules DAN's module_list does not have
        lines = ["index\tpred\tmodules"] + [
            f"{i}\t{i % 2}\t(7),emb; (7,768),layer_1; (768),exit_1" for i in range(2210)
        ]
        lying = httpx.post(
            f"{stack.base}/api/v1/submissions/validate",
            headers=stack.headers,
            files=[
                ("model", ("dan.py", model, "text/x-python")),
                ("predictions", ("SST-2.tsv", ("\n".join(lines) + "\n").encode(), "text/plain")),
            ],
            timeout=300,
        )
        assert lying.status_code == 422, lying.text
        details = lying.json()["error"]["details"]
        assert any(
            d["file"] == "SST-2.tsv" and d["line"] == 2 and "unknown module" in d["problem"]
            for d in details
        ), details
        with transaction(engine) as session:
            assert session.scalar(select(func.count()).select_from(Submission)) == before
    finally:
        engine.dispose()
