"""Weights over HTTP (SQLite and PostgreSQL): stored with their hash and tensor listing, or
refused before the queue with the reason, leaving nothing stored."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from core.models import FileRole, SubmissionFile, SubmissionWeights
from core.settings import LimitsSettings
from tests.submission_helpers import (
    TINY_MODEL,
    Footprint,
    blob_files,
    footprint,
    predictions_bytes,
    zip_bytes,
)
from tests.weights_helpers import pickled_weights, tiny_weights, truncated_header
from web import enqueue

if TYPE_CHECKING:
    from tests.api_helpers import Api, ApiUser

pytest_plugins = ["tests.api_helpers"]

MODEL = TINY_MODEL.read_bytes()
SST2 = predictions_bytes("SST-2", seed=1)
WEIGHTS = tiny_weights(rows=1000)  # 1,000 vocabulary rows: small, and a real safetensors file


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The submissions sent to the queue (the broker itself is not needed here)."""
    jobs: list[int] = []

    def send(settings: Any, submission_id: int, job_id: str) -> bool:
        jobs.append(submission_id)
        return True

    monkeypatch.setattr(enqueue, "send_score", send)
    return jobs


def submit(
    api: Api,
    user: ApiUser,
    weights: bytes | None,
    *,
    weights_name: str = "model.safetensors",
    url: str = "/api/v1/submissions",
    predictions: tuple[str, bytes] = ("SST-2.tsv", SST2),
    **data: str,
) -> Any:
    parts: list[tuple[str, tuple[str, bytes]]] = [
        ("model", ("model.py", MODEL)),
        ("predictions", predictions),
    ]
    if weights is not None:
        parts.append(("weights", (weights_name, weights)))
    data.setdefault("name", "with weights")
    return api.client.post(url, headers=user.headers, data=data, files=parts)


def snapshot(api: Api) -> Footprint:
    with api.db() as session:
        return footprint(session, api.settings.storage.data_dir)


def stored_weights(api: Api) -> int:
    with api.db() as session:
        return len(session.scalars(select(SubmissionWeights)).all())


def test_weights_are_stored_with_their_hash_and_manifest(seeded_api: Api, sent: list[int]) -> None:
    alice = seeded_api.user()
    response = submit(seeded_api, alice, WEIGHTS)
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    assert sent == [sid]
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    with seeded_api.db() as session:
        [row] = session.scalars(
            select(SubmissionWeights).where(SubmissionWeights.submission_id == sid)
        ).all()
        file = session.get(SubmissionFile, row.file_id)
        assert file is not None
        assert (file.role, file.original_name, file.sha256, file.size) == (
            FileRole.WEIGHTS,
            "model.safetensors",
            sha,
            len(WEIGHTS),
        )
        assert (row.sha256, row.size, row.tensor_count) == (sha, len(WEIGHTS), 5)
        assert row.element_count == 1000 * 16 + 256 + 16 + 32 + 2
        assert row.manifest == {
            "emb.weight": {"dtype": "float32", "shape": [1000, 16]},
            "out.bias": {"dtype": "float32", "shape": [2]},
            "out.weight": {"dtype": "float32", "shape": [2, 16]},
            "proj.bias": {"dtype": "float32", "shape": [16]},
            "proj.weight": {"dtype": "float32", "shape": [16, 16]},
        }
        assert row.metadata_ == {"format": "pt"}
    blob = seeded_api.settings.storage.uploads_dir / sha[:2] / sha[2:4] / sha
    assert blob.read_bytes() == WEIGHTS

    expected = {
        "file": "model.safetensors",
        "task": None,  # for every task
        "size": len(WEIGHTS),
        "sha256": sha,
        "tensors": 5,
        "elements": 16_306,
    }
    bob = seeded_api.user()
    for viewer in (alice, bob):  # public: a reader checking the entry needs the hash
        read = seeded_api.client.get(f"/api/v1/submissions/{sid}", headers=viewer.headers)
        assert read.json()["weights"] == [expected]
    page = seeded_api.client.get(f"/submissions/{sid}").text
    assert sha in page
    assert "model.safetensors" in page
    assert "5 tensors" in page


def test_a_submission_without_weights_reads_none(seeded_api: Api, sent: list[int]) -> None:
    alice = seeded_api.user()
    sid = submit(seeded_api, alice, None).json()["id"]
    read = seeded_api.client.get(f"/api/v1/submissions/{sid}", headers=alice.headers).json()
    assert read["weights"] == []
    assert stored_weights(seeded_api) == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            pickled_weights(),
            "this is a Python pickle (it starts with byte 0x80, pickle protocol 4)",
        ),
        (truncated_header(), "truncated: the header should be "),
    ],
    ids=["pickle", "truncated-header"],
)
def test_bad_weights_refused_nothing_stored(
    seeded_api: Api, sent: list[int], data: bytes, expected: str
) -> None:
    alice = seeded_api.user()
    before = snapshot(seeded_api)
    response = submit(seeded_api, alice, data, weights_name="weights.safetensors")
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["details"]
    assert problem["file"] == "weights.safetensors"
    assert problem["problem"].startswith(expected)
    assert snapshot(seeded_api) == before  # no submission, file row or blob; staging emptied
    assert stored_weights(seeded_api) == 0
    assert sent == []


def test_weights_problems_listed_with_the_others(seeded_api: Api, sent: list[int]) -> None:
    alice = seeded_api.user()
    bad_predictions = ("SST-2.tsv", b"index\tprediction\n0\tmaybe\n")
    response = submit(seeded_api, alice, pickled_weights(), predictions=bad_predictions)
    assert response.status_code == 422
    files = {d["file"] for d in response.json()["error"]["details"]}
    assert {"SST-2.tsv", "model.safetensors"} <= files


def test_oversize_weights_refused(seeded_api_db: str, tmp_path: Path, sent: list[int]) -> None:
    from tests.api_helpers import Api

    limit = len(WEIGHTS) - 1
    api = Api.start(seeded_api_db, tmp_path / "v", limits=LimitsSettings(max_weights_bytes=limit))
    try:
        alice = api.user()
        before = snapshot(api)
        response = submit(api, alice, WEIGHTS)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"] == [
            {
                "problem": f"the weights file is {len(WEIGHTS):,} bytes, the limit is {limit:,}",
                "file": "model.safetensors",
                "line": None,
                "column": None,
            }
        ]
        assert snapshot(api) == before
        assert sent == []
    finally:
        api.close()


def test_weights_may_go_past_the_request_limit_but_not_the_weights_limit(
    seeded_api_db: str, tmp_path: Path, sent: list[int]
) -> None:
    """A submission upload may be the request limit plus the weights limit; other requests not."""
    from tests.api_helpers import Api

    limits = LimitsSettings(request_bytes=300 * 1024, max_weights_bytes=3 * 1024 * 1024)
    api = Api.start(seeded_api_db, tmp_path / "v", limits=limits)
    try:
        alice = api.user()
        big = tiny_weights(rows=30522)  # 1.9 MiB: above the request limit, within the sum
        assert limits.request_bytes < len(big) < limits.max_weights_bytes
        assert submit(api, alice, big).status_code == 202
        before = snapshot(api)
        huge = tiny_weights(rows=60000)  # 3.7 MiB: past the sum, cut off while streaming
        assert submit(api, alice, huge, name="huge").status_code == 413
        # The allowance is for the weights: the other files still count against the request limit.
        many = ("SST-2.tsv", SST2 * (limits.request_bytes // len(SST2) + 1))
        over = submit(api, alice, WEIGHTS, predictions=many, name="many")
        assert over.status_code == 413
        assert over.json()["error"]["message"] == (
            "The request body is larger than the limit of 307,200 bytes"
        )
        elsewhere = api.client.patch(
            "/api/v1/users/me", headers=alice.headers, content=b"x" * (400 * 1024)
        )
        assert elsewhere.status_code == 413
        assert snapshot(api) == before
    finally:
        api.close()


def test_check_only_reports_the_weights_and_stores_nothing(
    seeded_api: Api, sent: list[int]
) -> None:
    alice = seeded_api.user()
    before = snapshot(seeded_api)
    response = submit(seeded_api, alice, WEIGHTS, url="/api/v1/submissions/validate")
    assert response.status_code == 200, response.text
    assert response.json()["weights"] == {
        "file": "model.safetensors",
        "size": len(WEIGHTS),
        "tensors": 5,
        "elements": 16_306,
    }
    assert snapshot(seeded_api) == before


def test_weights_in_a_zip(seeded_api: Api, sent: list[int]) -> None:
    alice = seeded_api.user()
    archive = zip_bytes([("SST-2/3.tsv", SST2), ("SST-2/model.safetensors", WEIGHTS)])
    response = submit(seeded_api, alice, None, predictions=("preds.zip", archive))
    assert response.status_code == 202, response.text
    read = seeded_api.client.get(response.json()["api_url"], headers=alice.headers).json()
    [weights] = read["weights"]
    assert weights["file"] == "SST-2/model.safetensors"
    assert weights["sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert [f["role"] for f in read["files"]].count("predictions") == 1

    before = snapshot(seeded_api)
    two = zip_bytes(
        [
            ("SST-2.tsv", SST2),
            ("a.safetensors", WEIGHTS),
            ("b.safetensors", tiny_weights(1, rows=9)),
        ]
    )
    refused = submit(seeded_api, alice, None, predictions=("p.zip", two), name="two")
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["problem"] == (
        "entry refused: a second weights file (a.safetensors): a submission has one"
    )
    differ = zip_bytes([("SST-2.tsv", SST2), ("a.safetensors", WEIGHTS)])
    other = tiny_weights(2, rows=1000)
    refused = submit(seeded_api, alice, other, predictions=("p.zip", differ), name="differ")
    assert refused.status_code == 422
    [problem] = refused.json()["error"]["details"]
    assert problem["column"] == "weights"
    assert (
        "the weights file model.safetensors and a.safetensors in the zip differ"
        in (problem["problem"])
    )
    pickled = zip_bytes([("SST-2.tsv", SST2), ("w.safetensors", pickled_weights())])
    refused = submit(seeded_api, alice, None, predictions=("p.zip", pickled), name="pickled")
    assert refused.status_code == 422
    [problem] = refused.json()["error"]["details"]
    assert problem["file"] == "w.safetensors"
    assert "this is a Python pickle" in problem["problem"]
    assert snapshot(seeded_api) == before


def test_withdrawing_removes_the_weights_blob(seeded_api: Api, sent: list[int]) -> None:
    alice = seeded_api.user()
    sid = submit(seeded_api, alice, WEIGHTS).json()["id"]
    uploads = seeded_api.settings.storage.uploads_dir
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    assert sha in {p.name for p in blob_files(uploads)}
    gone = seeded_api.client.delete(f"/api/v1/submissions/{sid}", headers=alice.headers)
    assert gone.status_code == 204
    assert sha not in {p.name for p in blob_files(uploads)}


def test_form_without_javascript_shows_the_weights_problem_by_its_field(
    seeded_api: Api, sent: list[int]
) -> None:
    from tests.test_pages import browser, browser_multipart, csrf_of

    client = browser(seeded_api, seeded_api.user())
    csrf = csrf_of(client.get("/submit").text)
    before = snapshot(seeded_api)
    body, headers = browser_multipart(
        {"name": "no js", "csrf_token": csrf},
        [
            ("model", "tiny_static.py", MODEL),
            ("predictions", "SST-2.tsv", SST2),
            ("weights", "w.safetensors", pickled_weights()),
        ],
    )
    refused = client.post("/submit", content=body, headers=headers)
    assert refused.status_code == 422
    listed = re.search(
        r'<ul class="problems" id="problems-weights"[^>]*>(.*?)</ul>', refused.text, re.S
    )
    assert listed, refused.text[:3000]
    assert "this is a Python pickle" in listed.group(1)
    assert snapshot(seeded_api) == before


def test_per_task_weights_are_listed_by_task(seeded_api: Api, sent: list[int]) -> None:
    """Weights stored per task (the seeded example's) read back one per task, with listings."""
    import torch

    from core.models import Submission
    from core.seed.examples import attach_weights

    alice = seeded_api.user()
    sid = submit(seeded_api, alice, None).json()["id"]
    states = {
        "SST-2": {"out.weight": torch.zeros(2, 16), "out.bias": torch.zeros(2)},
        "MRPC": {"out.weight": torch.ones(2, 16)},
    }
    with seeded_api.db() as session:
        submission = session.get(Submission, sid)
        assert submission is not None
        attach_weights(session, seeded_api.settings, submission, states)
    read = seeded_api.client.get(f"/api/v1/submissions/{sid}", headers=alice.headers).json()
    assert [(w["file"], w["task"], w["tensors"], w["elements"]) for w in read["weights"]] == [
        ("MRPC.safetensors", "MRPC", 1, 32),
        ("SST-2.safetensors", "SST-2", 2, 34),
    ]
    page = seeded_api.client.get(f"/submissions/{sid}").text
    assert all(w["sha256"] in page for w in read["weights"])
