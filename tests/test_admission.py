"""Bounded admission (web/admission.py): a web process whose upload slots are all taken
answers 503 with Retry-After at once, reads nothing and stores nothing, while reads go on; the
light client waits the time named and sends the upload again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.submission_helpers import TINY_MODEL, predictions_bytes
from tests.test_submissions_api import Sent, limited, snapshot
from tests.test_submissions_api import sent as sent  # the fixture: jobs recorded, not sent
from web.admission import upload_gate

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]

SST2 = predictions_bytes("SST-2", seed=1)


def _upload(api: Api, token: str, path: str, name: str) -> httpx.Response:
    return api.client.post(
        path,
        headers={"Authorization": f"Bearer {token}"},
        data={"name": name},
        files=[
            ("model", ("model.py", TINY_MODEL.read_bytes())),
            ("predictions", ("SST-2.tsv", SST2)),
        ],
    )


def test_a_full_process_answers_503_with_retry_after_at_once(
    seeded_api_db: str, tmp_path: Path, sent: Sent
) -> None:
    api = limited(seeded_api_db, tmp_path, uploads_in_flight=2, upload_retry_after_seconds=3)
    try:
        alice = api.user()
        gate = upload_gate(api.app)
        assert gate.try_enter()  # two uploads in progress elsewhere
        assert gate.try_enter()
        before = snapshot(api)
        for path in ("/api/v1/submissions", "/api/v1/submissions/validate"):
            busy = _upload(api, alice.token, path, "busy")
            assert busy.status_code == 503, busy.text
            assert busy.headers["Retry-After"] == "3"
            assert busy.json()["error"]["code"] == "busy"
        assert snapshot(api) == before  # nothing stored
        assert sent.jobs == []  # nothing sent
        assert gate.refused == 2
        # Reads never wait behind uploads.
        assert api.client.get("/api/v1/leaderboard").status_code == 200
        assert api.client.get("/tasks/SST-2").status_code == 200

        gate.leave()  # one slot free again: the upload goes through, and gives its slot back
        accepted = _upload(api, alice.token, "/api/v1/submissions", "accepted")
        assert accepted.status_code == 202, accepted.text
        assert gate.active == 1
        assert len(sent.jobs) == 1
    finally:
        api.close()


def test_the_client_sends_again_after_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`paretoboard submit` waits out a 503's Retry-After, then sends the whole upload again."""
    from paretoboard_client import commands, main

    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        if len(bodies) < 3:
            return httpx.Response(
                503,
                headers={"Retry-After": "4"},
                json={"error": {"code": "busy", "message": "busy", "details": []}},
            )
        return httpx.Response(202, json={"id": 7, "url": "/submissions/7", "queued": True})

    def client(config: Any) -> httpx.Client:
        return httpx.Client(base_url=config.server, transport=httpx.MockTransport(answer))

    slept: list[float] = []
    monkeypatch.setattr(commands, "_client", client)
    monkeypatch.setattr(commands.time, "sleep", slept.append)
    model = tmp_path / "model.py"
    model.write_bytes(TINY_MODEL.read_bytes())
    preds = tmp_path / "SST-2.tsv"
    preds.write_bytes(SST2)
    args = ["submit", "--server", "http://pb.test", "--token", "pb_x", "--model", str(model)]
    result = CliRunner().invoke(main.app, [*args, str(preds)])
    assert result.exit_code == 0, result.output
    assert "submission 7" in result.output
    assert len(bodies) == 3  # the whole upload each time (multipart boundaries differ)
    assert len({len(body) for body in bodies}) == 1
    assert all(SST2 in body and TINY_MODEL.read_bytes() in body for body in bodies)
    assert len(slept) == 2
    assert all(4 <= s <= 5 for s in slept)

    # Without retries left, the 503 is reported with the wait it asked for.
    bodies.clear()
    result = CliRunner().invoke(main.app, [*args, "--retries", "0", str(preds)])
    assert result.exit_code == 1
    assert "HTTP 503" in result.output
    assert "retry after 4 seconds" in result.output
    assert len(bodies) == 1
