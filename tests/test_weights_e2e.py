"""Weights from the submitter's side, against the app served by uvicorn on PostgreSQL (a copy of
the seeded database) with Redis as the broker: the `paretoboard submit --weights` client as a
subprocess, and the submit form in Chromium with its upload progress bar.

No worker runs: these tests end when the submission is queued (the pipeline has its own tests).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from core.db.session import make_engine, transaction
from core.models import Submission, SubmissionWeights
from core.settings import REPO_ROOT
from core.users import service as user_service
from tests.api_helpers import clone_pg
from tests.processes import free_port, stop, uvicorn_command, wait_until_up
from tests.submission_helpers import TINY_MODEL, predictions_text
from tests.weights_helpers import pickled_weights, tiny_weights

pytest_plugins = ["tests.api_helpers"]
pytestmark = pytest.mark.postgres

PB = Path(sys.executable).with_name("paretoboard")
CHROMIUM = Path("/usr/bin/chromium")
REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BROKER_DB = 5  # the other end-to-end tests use 7-14
PASSWORD = "correct horse battery staple"
SHOTS = REPO_ROOT / "test-artifacts" / "screenshots"  # gitignored


@dataclass
class Stack:
    base: str
    db_url: str
    email: str
    token: str
    client_env: dict[str, str]  # for client commands: no server settings


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    url = clone_pg(request, seeded=True)
    email = f"weights-{uuid.uuid4().hex[:8]}@example.org"
    engine = make_engine(url)
    with transaction(engine) as session:
        user = user_service.create_user(
            session, email=email, display_name="Weights", password=PASSWORD
        )
        _, token = user_service.create_token(session, user=user, name="cli")
    engine.dispose()
    broker, backend = f"{REDIS_URL}/{BROKER_DB}", f"{REDIS_URL}/{BROKER_DB + 1}"
    redis.Redis.from_url(broker).flushdb()
    tmp = tmp_path_factory.mktemp("weights")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env = {
        **base_env,
        "PARETOBOARD_MODE": "test",
        "PARETOBOARD_DB__URL": url,
        "PARETOBOARD_BROKER__URL": broker,
        "PARETOBOARD_BROKER__RESULT_BACKEND": backend,
        "PARETOBOARD_STORAGE__DATA_DIR": str(tmp / "var"),
    }
    log = tmp / "server.log"
    port = free_port()
    web = subprocess.Popen(
        uvicorn_command(port, "--log-level", "warning"),
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, [web], log)
        client_env = {
            **base_env,
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "PARETOBOARD_SERVER": base,
        }
        yield Stack(base, url, email, token, client_env)
    finally:
        stop(web)


def weights_of(stack: Stack, submission_id: int) -> SubmissionWeights | None:
    engine = make_engine(stack.db_url)
    try:
        with transaction(engine) as session:
            row = session.scalar(
                select(SubmissionWeights).where(SubmissionWeights.submission_id == submission_id)
            )
            if row is not None:
                session.expunge(row)
            return row
    finally:
        engine.dispose()


def submissions(stack: Stack) -> int:
    engine = make_engine(stack.db_url)
    try:
        with transaction(engine) as session:
            return len(session.scalars(select(Submission.id)).all())
    finally:
        engine.dispose()


def pb(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PB), *args, "--token", stack.token],
        env=stack.client_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow  # about 30 s; the default run keeps the suite under 15 min
def test_cli_submit_with_weights(stack: Stack, tmp_path: Path) -> None:
    model = tmp_path / "tiny_static.py"
    model.write_bytes(TINY_MODEL.read_bytes())
    preds = tmp_path / "SST-2.tsv"
    preds.write_text(predictions_text("SST-2", seed=5))
    good = tmp_path / "tiny.safetensors"
    good.write_bytes(tiny_weights(rows=1000))
    bad = tmp_path / "pickled.safetensors"
    bad.write_bytes(pickled_weights())

    before = submissions(stack)
    refused = pb(stack, "submit", "--model", str(model), "--weights", str(bad), str(preds))
    assert refused.returncode == 1, refused.stderr
    assert "pickled.safetensors: this is a Python pickle" in refused.stderr
    assert submissions(stack) == before

    checked = pb(
        stack, "submit", "--check", "--model", str(model), "--weights", str(good), str(preds)
    )
    assert checked.returncode == 0, checked.stderr
    assert "weights: tiny.safetensors: 5 tensor(s), 16,306 values" in checked.stdout
    assert submissions(stack) == before

    made = pb(
        stack,
        "submit",
        "--model",
        str(model),
        "--weights",
        str(good),
        "--name",
        "cli w",
        str(preds),
    )
    assert made.returncode == 0, made.stderr
    sid = int(re.search(r"submission (\d+):", made.stdout).group(1))  # type: ignore[union-attr]
    row = weights_of(stack, sid)
    assert row is not None
    assert row.sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
    assert row.tensor_count == 5
    status = pb(stack, "status", str(sid))
    assert status.returncode == 0, status.stderr
    assert (
        f"weights: tiny.safetensors, 5 tensor(s), {good.stat().st_size:,} bytes, sha256 {row.sha256}"
        in (status.stdout)
    )


def test_submit_form_uploads_weights_with_progress(stack: Stack, tmp_path: Path) -> None:
    """The weights field in the form, sent by XHR with the progress bar showing while it goes."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: run scripts/ensure-chromium.sh")
    model = tmp_path / "tiny_static.py"
    model.write_bytes(TINY_MODEL.read_bytes())
    preds = tmp_path / "SST-2.tsv"
    preds.write_text(predictions_text("SST-2", seed=6))
    weights = tmp_path / "tiny.safetensors"
    weights.write_bytes(tiny_weights(rows=30522))  # 1.9 MiB
    pickled = tmp_path / "pickled.safetensors"
    pickled.write_bytes(pickled_weights())
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{stack.base}/login")
            page.get_by_label("Email").fill(stack.email)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(r"/account$"))
            page.goto(f"{stack.base}/submit")
            page.get_by_label("Name").fill("form weights")
            page.locator("#model").set_input_files(str(model))
            page.locator("#predictions").set_input_files(str(preds))

            # A pickle: refused, its reason shown next to the weights field.
            page.get_by_label("Weights").set_input_files(str(pickled))
            page.get_by_role("button", name="Check only").click()
            problems = page.locator("#problems-weights")
            problems.wait_for()
            assert "this is a Python pickle" in problems.inner_text()
            assert page.get_by_label("Weights").get_attribute("aria-invalid") == "true"
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "submit-weights-refused.png"), full_page=True)

            # The real weights, uploaded slowly enough to watch the progress bar move.
            page.get_by_label("Weights").set_input_files(str(weights))
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send(
                "Network.emulateNetworkConditions",
                {
                    "offline": False,
                    "latency": 0,
                    "downloadThroughput": -1,
                    "uploadThroughput": 1_000_000,
                },
            )
            page.get_by_role("button", name="Submit", exact=True).click()
            page.wait_for_function(
                """() => {
                    const bar = document.getElementById('upload-progress');
                    return !document.getElementById('upload').hidden && bar.value > 0 && bar.value < 100;
                }"""
            )
            assert page.locator("#upload-progress").is_visible()
            assert re.match(r"Uploading… \d+%", page.locator("#upload-status").inner_text())
            page.wait_for_url(re.compile(r"/submissions/\d+$"), timeout=60_000)
            sid = int(page.url.rsplit("/", 1)[1])
            row = weights_of(stack, sid)
            assert row is not None
            assert row.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
            facts = page.locator("#weights").inner_text()
            assert "tiny.safetensors" in facts
            assert "5 tensors" in facts
            assert row.sha256 in facts
            page.screenshot(path=str(SHOTS / "submission-weights.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
