"""Submissions over HTTP on SQLite and PostgreSQL: upload rules, quota, reads, edits, admin routes.

The queue is replaced by a recorder that also checks the row was committed before the job was
sent (a worker must find it); the real broker and worker run in test_submissions_e2e.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, select, update

from core.arrays import pack_array
from core.db.session import make_engine, transaction
from core.models import (
    Result,
    ResultCost,
    Submission,
    SubmissionState,
    Task,
    Visibility,
)
from core.settings import BrokerSettings, LimitsSettings
from tests.submission_helpers import (
    NO_ENTIRE_MODEL,
    TINY_MODEL,
    Footprint,
    blob_files,
    footprint,
    predictions_bytes,
    predictions_text,
    with_bad_line,
    zip_bytes,
)
from web import enqueue

if TYPE_CHECKING:
    from tests.api_helpers import Api, ApiUser

pytest_plugins = ["tests.api_helpers"]

MODEL = TINY_MODEL.read_bytes()
SST2 = predictions_bytes("SST-2", seed=1)
Files = list[tuple[str, tuple[str, bytes]]]


@dataclass
class Sent:
    """Jobs the app sent, and whether each row was committed (visible elsewhere) at that moment."""

    jobs: list[tuple[int, str]] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sent]:
    record = Sent()

    def send(settings: Any, submission_id: int, job_id: str) -> bool:
        engine = make_engine(settings.database_url)
        with transaction(engine) as session:  # another connection: sees committed rows only
            sub = session.get(Submission, submission_id)
            record.committed.append(sub is not None and sub.job_id == job_id)
        engine.dispose()
        record.jobs.append((submission_id, job_id))
        return True

    monkeypatch.setattr(enqueue, "send_score", send)
    return record


def file_name(key: str) -> str:
    """`SST_2_exit3` -> `SST-2.exit3.tsv`, `preds_zip` -> `preds.zip` (keyword-friendly names)."""
    if key.endswith("_zip"):
        return key[:-4] + ".zip"
    return key.replace("SST_2", "SST-2").replace("_", ".") + ".tsv"


def files(model: bytes | None = MODEL, **predictions: bytes) -> Files:
    out: Files = []
    if model is not None:
        out.append(("model", ("model.py", model)))
    out += [("predictions", (file_name(key), data)) for key, data in predictions.items()]
    return out


def submit(api: Api, user: ApiUser, parts: Files, **data: str) -> Any:
    data.setdefault("name", "sub")
    return api.client.post("/api/v1/submissions", headers=user.headers, data=data, files=parts)


def snapshot(api: Api) -> Footprint:
    with api.db() as session:
        return footprint(session, api.settings.storage.data_dir)


def details(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert set(body) == {"error"}, body
    return list(body["error"]["details"])


def limited(api_db: str, tmp_path: Path, **limits: Any) -> Api:
    from tests.api_helpers import Api

    return Api.start(api_db, tmp_path / "limited", limits=LimitsSettings(**limits))


# ---------------------------------------------------------------------------------------------
# A valid submission


def test_submit_stores_commits_then_enqueues(seeded_api: Api, sent: Sent) -> None:
    alice = seeded_api.user()
    before = snapshot(seeded_api)
    response = submit(
        seeded_api,
        alice,
        files(SST_2_exit3=SST2, SNLI=predictions_bytes("SNLI")),
        name="tiny",
        description="two tasks",
        paper_url="https://arxiv.org/abs/2110.07038",
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {
        "id": body["id"],
        "url": f"/submissions/{body['id']}",
        "api_url": f"/api/v1/submissions/{body['id']}",
        "state": "queued",
        "queued": True,
    }
    assert sent.committed == [True]
    assert sent.jobs[0][0] == body["id"]
    after = snapshot(seeded_api)
    assert after.submissions == before.submissions + 1
    assert after.files == before.files + 3
    assert after.blobs == before.blobs + 3
    assert after.staged == 0

    read = seeded_api.client.get(body["api_url"], headers=alice.headers).json()
    assert read["state"] == "queued"
    assert read["stage"] == {"name": "queued", "index": 1, "total": 5}
    assert read["queue_position"] == 0
    assert read["kind"] == "measured"
    assert read["self_reported"] is False
    assert read["paper_url"] == "https://arxiv.org/abs/2110.07038"
    assert {(f["role"], f["task"], f["point"]) for f in read["files"]} == {
        ("model", None, None),
        ("predictions", "SST-2", "exit3"),
        ("predictions", "SNLI", ""),
    }
    # A second one waits behind the first.
    second = submit(seeded_api, alice, files(SST_2=SST2), name="tiny-2")
    assert second.status_code == 202
    assert seeded_api.client.get(second.json()["api_url"]).json()["queue_position"] == 1


def test_same_bytes_are_stored_once(seeded_api: Api, sent: Sent) -> None:
    alice, bob = seeded_api.user(), seeded_api.user()
    assert submit(seeded_api, alice, files(SST_2=SST2)).status_code == 202
    assert submit(seeded_api, bob, files(SST_2=SST2)).status_code == 202
    assert snapshot(seeded_api).blobs == 2  # one model blob, one predictions blob


def test_broker_outage_leaves_the_submission_queued(seeded_api_db: str, tmp_path: Path) -> None:
    from tests.api_helpers import Api

    down = BrokerSettings(url="redis://127.0.0.1:1/0", result_backend="redis://127.0.0.1:1/1")  # type: ignore[arg-type]
    api = Api.start(seeded_api_db, tmp_path / "var", broker=down)
    try:
        alice = api.user()
        response = submit(api, alice, files(SST_2=SST2))
        assert response.status_code == 202, response.text
        assert response.json()["queued"] is False
        with api.db() as session:
            sub = session.get(Submission, response.json()["id"])
            assert sub is not None
            assert sub.state is SubmissionState.QUEUED
            assert sub.job_id  # the reconciler re-sends it with a new job id
    finally:
        api.close()


def test_validate_stores_nothing_and_uses_no_quota(
    seeded_api_db: str, tmp_path: Path, sent: Sent
) -> None:
    api = limited(seeded_api_db, tmp_path, submissions_per_task_per_day=1)
    try:
        alice = api.user()
        before = snapshot(api)
        for _ in range(2):
            checked = api.client.post(
                "/api/v1/submissions/validate",
                headers=alice.headers,
                files=files(SST_2_a=SST2, SST_2_b=predictions_bytes("SST-2", 2)),
            )
            assert checked.status_code == 200, checked.text
        assert checked.json() == {
            "valid": True,
            "model": "model.py",
            "tokenizer": "bert-base-uncased",
            "tasks": [{"task": "SST-2", "points": ["a", "b"]}],
            "files": [
                {
                    "file": "SST-2.a.tsv",
                    "task": "SST-2",
                    "point": "a",
                    "rows": 2210,
                    "format": "simple",
                },
                {
                    "file": "SST-2.b.tsv",
                    "task": "SST-2",
                    "point": "b",
                    "rows": 2210,
                    "format": "simple",
                },
            ],
            "rows": 4420,
            "weights": None,
            # no pre-flight worker runs here (tests/test_verified_e2e.py starts one)
            "model_check": "not run: no pre-flight worker answered (the model is captured when "
            "the submission is counted)",
            "quota": [
                {"task": "SST-2", "used": 0, "limit": 1, "remaining": 1, "next_slot_at": None}
            ],
        }
        assert snapshot(api) == before
        assert sent.jobs == []
        bad = api.client.post(
            "/api/v1/submissions/validate",
            headers=alice.headers,
            files=files(SST_2=with_bad_line(predictions_text("SST-2"), 7, "maybe")),
        )
        assert bad.status_code == 422
        assert details(bad) == [
            {
                "file": "SST-2.tsv",
                "line": 7,
                "column": "prediction",
                "problem": 'label "maybe" is not one of 0, 1',
            }
        ]
        assert submit(api, alice, files(SST_2=SST2)).status_code == 202  # quota untouched
        # The check reports what is left (none now) and still answers: it uses no quota.
        again = api.client.post(
            "/api/v1/submissions/validate", headers=alice.headers, files=files(SST_2=SST2)
        )
        assert again.status_code == 200, again.text
        [quota] = again.json()["quota"]
        assert (quota["task"], quota["used"], quota["remaining"]) == ("SST-2", 1, 0)
        assert quota["next_slot_at"] is not None
    finally:
        api.close()


# ---------------------------------------------------------------------------------------------
# Refusals: each one answers with the exact problem and leaves nothing behind

KNOWN = (
    "known, in any case: SST-2 (sst-2, sst, sst2), SNLI, SciTail, MRPC, STS-B (sts-b, sts, stsb)"
)
BOMB = b"\n" * (8 * 1024 * 1024)  # 8 MiB of one byte: deflates about 1000:1
SYMLINK = zip_bytes([("SST-2.tsv", b"/etc/passwd")], symlinks=("SST-2.tsv",))
TOO_MANY = zip_bytes([(f"SST-2.p{i}.tsv", b"index\tprediction\n") for i in range(101)])


def _problem(
    problem: str, file: str | None = None, line: int | None = None, column: str | None = None
) -> dict[str, Any]:
    return {"problem": problem, "file": file, "line": line, "column": column}


REFUSALS: list[tuple[str, Files, list[dict[str, Any]]]] = [
    (
        "bad line",
        files(SST_2=with_bad_line(predictions_text("SST-2"), 12, "2")),
        [_problem('label "2" is not one of 0, 1', "SST-2.tsv", 12, "prediction")],
    ),
    (
        "unknown task",
        files(QNLI=b"index\tprediction\n0\t1\n"),
        [
            _problem(
                f"Unknown task 'QNLI' (read from 'QNLI.tsv' as <TASK>.tsv); {KNOWN}", "QNLI.tsv"
            )
        ],
    ),
    (
        "bad file name",
        files(**{"sst2 final": SST2}),
        [
            _problem(
                "file name 'sst2 final.tsv' is not one of <TASK>.tsv, <TASK>.<point>.tsv, "
                "ElasticBERT's pair <TASK>_<point>.tsv with <TASK>_infer_exit_layer_<point>.tsv, "
                "or <TASK>/<point>.tsv in a zip (point: letters, digits, ., _ or -, at most 64)",
                "sst2 final.tsv",
            )
        ],
    ),
    (
        "missing model",
        files(None, SST_2=SST2),
        [_problem("a model file (.py) is required", column="model")],
    ),
    (
        "model without entire_model",
        files(NO_ENTIRE_MODEL, SST_2=SST2),
        [
            _problem(
                "defines no module-level `entire_model` (an nn.Module: the whole network, whose "
                "parameters are counted); see the model-file contract",
                "model.py",
            )
        ],
    ),
    (
        "model syntax error",
        files(b"entire_model = (\n", SST_2=SST2),
        [_problem("Python syntax error: '(' was never closed", "model.py", 1)],
    ),
    (
        "oversize model",
        files(b"entire_model = None\n" + b"#" * (1024 * 1024), SST_2=SST2),
        [_problem("model file is 1,048,596 bytes, the limit is 1,048,576", "model.py")],
    ),
    (
        "zip with ..",
        files(preds_zip=zip_bytes([("../SST-2.tsv", SST2)])),
        [_problem("entry refused: parent path (..)", "preds.zip:../SST-2.tsv")],
    ),
    (
        "zip with an absolute path",
        files(preds_zip=zip_bytes([("/tmp/SST-2.tsv", SST2)])),
        [_problem("entry refused: absolute path", "preds.zip:/tmp/SST-2.tsv")],
    ),
    (
        "zip with a symlink",
        files(preds_zip=SYMLINK),
        [_problem("entry refused: symbolic link", "preds.zip:SST-2.tsv")],
    ),
    (
        "zip bomb",
        files(preds_zip=zip_bytes([("SST-2.tsv", BOMB)])),
        [
            _problem(
                "entry refused: compression ratio 1,028:1 is above the limit of 200:1",
                "preds.zip:SST-2.tsv",
            )
        ],
    ),
    (
        "zip with too many entries",
        files(preds_zip=TOO_MANY),
        [_problem("the archive has 101 entries, the limit is 100", "preds.zip")],
    ),
    (
        "zip with other files and folders",
        files(
            preds_zip=zip_bytes(
                [("preds/SST-2.tsv", SST2), ("preds/notes.txt", b"x"), ("preds/a/b/SNLI.tsv", b"")]
            )
        ),
        [
            _problem(
                "entry refused: nested folder (at most <folder>/<TASK>/<file>)",
                "preds.zip:preds/a/b/SNLI.tsv",
            ),
            _problem(
                "entry refused: only .tsv prediction files, .py model files and one "
                ".safetensors weights file are accepted",
                "preds.zip:preds/notes.txt",
            ),
        ],
    ),
    (
        "zip and files together",
        files(preds_zip=zip_bytes([("SST-2.tsv", SST2)]), SNLI=predictions_bytes("SNLI")),
        [
            _problem(
                "send either .tsv prediction files or one .zip of them, not both or several",
                column="predictions",
            )
        ],
    ),
    (
        "every problem at once",
        files(None, QNLI=b"x", SST_2=with_bad_line(predictions_text("SST-2"), 3, "")),
        [
            _problem("a model file (.py) is required", column="model"),
            _problem(
                f"Unknown task 'QNLI' (read from 'QNLI.tsv' as <TASK>.tsv); {KNOWN}", "QNLI.tsv"
            ),
            _problem("label is empty: expected one of 0, 1", "SST-2.tsv", 3, "prediction"),
        ],
    ),
]


@pytest.mark.parametrize(("parts", "expected"), [pytest.param(p, e, id=i) for i, p, e in REFUSALS])
def test_refusals_list_every_problem_and_store_nothing(
    seeded_api: Api, sent: Sent, parts: Files, expected: list[dict[str, Any]]
) -> None:
    alice = seeded_api.user()
    before = snapshot(seeded_api)
    response = submit(seeded_api, alice, parts)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    got = details(response)
    assert sorted(got, key=str) == sorted(expected, key=str), got
    assert snapshot(seeded_api) == before
    assert sent.jobs == []


def test_oversize_prediction_file(seeded_api_db: str, tmp_path: Path, sent: Sent) -> None:
    api = limited(seeded_api_db, tmp_path, prediction_file_bytes=10_000)
    try:
        before = snapshot(api)
        response = submit(api, api.user(), files(SST_2=SST2))
        assert response.status_code == 422
        assert details(response) == [
            _problem(f"file is {len(SST2)} bytes, the limit is 10000", "SST-2.tsv")
        ]
        assert snapshot(api) == before
    finally:
        api.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "streamed"])
def test_oversize_request_is_413(
    seeded_api_db: str, tmp_path: Path, sent: Sent, chunked: bool
) -> None:
    api = limited(seeded_api_db, tmp_path, request_bytes=64 * 1024)
    try:
        alice = api.user()
        before = snapshot(api)
        boundary = "pbboundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="predictions"; '
                f'filename="SST-2.tsv"\r\n\r\n'
            ).encode()
            + SST2 * 10
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {**alice.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        if chunked:
            chunks = [body[i : i + 8192] for i in range(0, len(body), 8192)]
            response = api.client.post("/api/v1/submissions", headers=headers, content=iter(chunks))
        else:
            response = api.client.post("/api/v1/submissions", headers=headers, content=body)
        assert response.status_code == 413, response.text
        assert response.json() == {
            "error": {
                "code": "too_large",
                "message": "The request body is larger than the limit of 65,536 bytes",
                "details": [],
            }
        }
        assert snapshot(api) == before
    finally:
        api.close()


def test_quota_counts_only_evaluations_not_failed_by_the_service(
    seeded_api_db: str, tmp_path: Path, sent: Sent
) -> None:
    api = limited(seeded_api_db, tmp_path, submissions_per_task_per_day=2)
    try:
        alice, bob = api.user(), api.user()
        ids = [submit(api, alice, files(SST_2=SST2), name=f"s{i}").json()["id"] for i in range(2)]
        before = snapshot(api)
        refused = submit(api, alice, files(SST_2=SST2, SNLI=predictions_bytes("SNLI")), name="s2")
        assert refused.status_code == 429
        retry = int(refused.headers["Retry-After"])
        assert 86_390 <= retry <= 86_400
        assert refused.json()["error"]["code"] == "quota_exceeded"
        # a message a person reads: when to try again, as a clock time
        assert re.search(r"try again after \d\d:\d\d UTC", refused.json()["error"]["message"]), (
            refused.json()["error"]["message"]
        )
        [problem] = details(refused)
        assert problem["column"] == "predictions"
        assert problem["problem"].startswith(
            "SST-2: 2 evaluation(s) in the last 24 hours, the limit is 2"
        )
        assert snapshot(api) == before
        # Other tasks and other users are not affected.
        assert (
            submit(api, alice, files(SNLI=predictions_bytes("SNLI")), name="s3").status_code == 202
        )
        assert submit(api, bob, files(SST_2=SST2), name="s0").status_code == 202
        # A failure through the service's own fault gives the slot back...
        with api.db() as session:
            session.execute(
                update(Submission)
                .where(Submission.id == ids[0])
                .values(fault="service", state=SubmissionState.FAILED)
            )
        assert submit(api, alice, files(SST_2=SST2), name="s4").status_code == 202
        # ...and the oldest counted one leaving the window tells the wait.
        with api.db() as session:
            old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=23)
            session.execute(
                update(Submission).where(Submission.id == ids[1]).values(created_at=old)
            )
        again = submit(api, alice, files(SST_2=SST2), name="s5")
        assert again.status_code == 429
        assert 3590 <= int(again.headers["Retry-After"]) <= 3600
    finally:
        api.close()


UNIQUE = ": names are unique per owner (and so per task), ignoring case and spacing"


def test_name_is_unique_per_owner(seeded_api: Api, sent: Sent) -> None:
    alice, bob = seeded_api.user(), seeded_api.user()
    assert submit(seeded_api, alice, files(SST_2=SST2), name="mine").status_code == 202
    taken = submit(seeded_api, alice, files(SST_2=SST2), name=" MINE ")
    assert taken.status_code == 422
    message = "you already have a submission named 'mine'" + UNIQUE
    assert details(taken) == [_problem(message, column="name")]
    assert submit(seeded_api, bob, files(SST_2=SST2), name="mine").status_code == 202
    # Operator entries' names (and the reserved words) are refused to users, whatever the case.
    reserved = submit(seeded_api, alice, files(SST_2=SST2), name="baseline")
    assert reserved.status_code == 422
    assert details(reserved) == [
        _problem(
            "'baseline' is reserved for the platform's own entries (the baseline)", column="name"
        )
    ]
    with seeded_api.db() as session:
        session.add(Submission(owner_id=None, name="Operator Entry"))
    operator = submit(seeded_api, bob, files(SST_2=SST2), name="operator  entry")
    assert operator.status_code == 422
    assert details(operator) == [
        _problem(
            "'operator  entry' is the name of an operator entry ('Operator Entry'); choose another",
            column="name",
        )
    ]


def test_form_problems(seeded_api: Api, sent: Sent) -> None:
    alice = seeded_api.user()
    response = submit(
        seeded_api,
        alice,
        [*files(SST_2=SST2), ("prediction", ("SNLI.tsv", b"x"))],
        visibility="secret",
        paper_url="javascript:alert(1)",
    )
    assert response.status_code == 422
    assert {(d["column"], d["problem"][:20]) for d in details(response)} == {
        ("prediction", "unknown field 'predi"),
        ("visibility", "must be public or pr"),
        ("paper_url", "expected an http(s) "),
    }
    not_multipart = seeded_api.client.post(
        "/api/v1/submissions", headers=alice.headers, json={"name": "x"}
    )
    assert not_multipart.status_code == 422
    assert details(not_multipart)[0]["column"] == "content-type"


def test_cookie_session_upload_with_csrf_header_or_field(seeded_api: Api, sent: Sent) -> None:
    alice = seeded_api.user()
    browser = seeded_api.login(alice)
    with_header = browser.post(
        "/api/v1/submissions", data={"name": "by-header"}, files=files(SST_2=SST2)
    )
    assert with_header.status_code == 202, with_header.text
    token = browser.headers.pop("X-CSRF-Token")
    with_field = browser.post(
        "/api/v1/submissions",
        data={"name": "by-field", "csrf_token": token},
        files=files(SST_2=SST2),
    )
    assert with_field.status_code == 202, with_field.text
    forged = browser.post("/api/v1/submissions", data={"name": "forged"}, files=files(SST_2=SST2))
    assert forged.status_code == 403
    assert snapshot(seeded_api).staged == 0


# ---------------------------------------------------------------------------------------------
# Reading, listing, editing, withdrawing


def _give_result(api: Api, submission_id: int, task: str = "SST-2") -> int:
    """A counted result with per-sample costs, as the worker would store it."""
    with api.db() as session:
        task_id = session.scalar(select(Task.id).where(Task.name == task))
        sub = session.get(Submission, submission_id)
        assert sub is not None
        assert task_id is not None
        result = Result(
            submission_id=submission_id,
            task_id=task_id,
            point="",
            performance=85.5,
            metrics={"accuracy": 85.5},
            cost_status="counted",
            flops_mean=2000.0,
            flops_median=2000.0,
            flops_p10=1000.0,
            flops_p90=3000.0,
            flops_max=3000.0,
            macs_mean=1000.0,
            params=1234,
        )
        session.add(result)
        session.flush()
        session.add(
            ResultCost(
                result_id=result.id,
                n=3,
                flops=pack_array(np.array([1000, 2000, 3000], dtype=np.int64)),
                per_operator={"aten::linear": 6000},
                per_module={"proj": 6000},
                uncounted={"aten::tanh": 30},
                mismatches=[],
                details={"cross_check_agrees": True},
            )
        )
        sub.state = SubmissionState.DONE
        return result.id


def test_results_and_costs_read_back(seeded_api: Api, sent: Sent) -> None:
    alice, bob = seeded_api.user(), seeded_api.user()
    sid = submit(seeded_api, alice, files(SST_2=SST2)).json()["id"]
    rid = _give_result(seeded_api, sid)
    with seeded_api.db() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        sub.error_detail = "secret traceback"
        sub.sandbox_log = "secret log"
    public = seeded_api.client.get(f"/api/v1/submissions/{sid}", headers=bob.headers).json()
    [task] = public["results"]
    assert task["task"] == "SST-2"
    [point] = task["points"]
    assert point == {
        "result_id": rid,
        "point": "",
        "performance": 85.5,
        "metrics": {"accuracy": 85.5},
        "baseline_delta": None,
        "flops": {
            "mean": 2000.0,
            "median": 2000.0,
            "p10": 1000.0,
            "p90": 3000.0,
            "max": 3000.0,
            "macs_mean": 1000.0,
            "elue_mean": None,
            "incomplete": False,
            "disagrees": False,
            "counter_version": None,
            "rule_hash": None,
        },
        "params": 1234,
        "cost_status": "counted",
        "self_reported": False,
        "costs_url": f"/api/v1/submissions/{sid}/costs/{rid}",
        "verified": False,  # no weights: never verified
        "verification": None,
        "ci_low": None,  # written by hand, not scored: no interval
        "ci_high": None,
    }
    assert public["error_detail"] is None
    assert public["sandbox_log"] is None
    assert public["files"] is None
    assert public["timeline"] is None
    own = seeded_api.client.get(f"/api/v1/submissions/{sid}", headers=alice.headers).json()
    assert own["error_detail"] == "secret traceback"
    assert own["sandbox_log"] == "secret log"
    assert own["timings"]["elapsed_seconds"] is not None

    costs = seeded_api.client.get(point["costs_url"])
    assert costs.status_code == 200
    assert costs.json() == {
        "submission_id": sid,
        "result_id": rid,
        "task": "SST-2",
        "point": "",
        "n": 3,
        "flops": [1000, 2000, 3000],
        "flops_elue": None,
        "incomplete_operators": [],
        "per_operator": {"aten::linear": 6000},
        "per_module": {"proj": 6000},
        "uncounted": {"aten::tanh": 30},
        "mismatches": [],
        "details": {"cross_check_agrees": True},
    }
    other = submit(seeded_api, bob, files(SST_2=SST2)).json()["id"]
    assert seeded_api.client.get(f"/api/v1/submissions/{other}/costs/{rid}").status_code == 404


def test_listing_own_and_public(seeded_api: Api, sent: Sent) -> None:
    alice, bob = seeded_api.user(), seeded_api.user()
    for i in range(3):
        submit(seeded_api, alice, files(SST_2=SST2), name=f"pub{i}")
    submit(
        seeded_api, alice, files(SNLI=predictions_bytes("SNLI")), name="priv", visibility="private"
    )
    submit(seeded_api, bob, files(SST_2=SST2), name="bob")
    page = seeded_api.client.get("/api/v1/submissions", params={"per_page": 2}).json()
    assert page["total"] == 4
    assert [i["name"] for i in page["items"]] == ["bob", "pub2"]
    page2 = seeded_api.client.get("/api/v1/submissions", params={"per_page": 2, "page": 2}).json()
    assert [i["name"] for i in page2["items"]] == ["pub1", "pub0"]
    mine = seeded_api.client.get("/api/v1/submissions?owner=me", headers=alice.headers).json()
    assert [i["name"] for i in mine["items"]] == ["priv", "pub2", "pub1", "pub0"]
    assert mine["items"][0]["tasks"] == ["SNLI"]
    by_task = seeded_api.client.get("/api/v1/submissions", params={"task": "snli"}).json()
    assert by_task["total"] == 0  # the only SNLI submission is private
    anonymous = seeded_api.client.get("/api/v1/submissions?owner=me")
    assert anonymous.status_code == 401


def test_listing_pages_by_offset_and_limit(seeded_api: Api, sent: Sent) -> None:
    # The one paging model (core.paging): offset and limit, answered with total, offset, limit;
    # page and per_page are the older spelling of the same window.
    alice = seeded_api.user()
    for i in range(3):
        submit(seeded_api, alice, files(SST_2=SST2), name=f"s{i}")
    body = seeded_api.client.get("/api/v1/submissions", params={"offset": 1, "limit": 1}).json()
    assert [i["name"] for i in body["items"]] == ["s1"]
    assert (body["total"], body["offset"], body["limit"]) == (3, 1, 1)
    older = seeded_api.client.get("/api/v1/submissions", params={"page": 2, "per_page": 1})
    assert older.json() == body
    assert seeded_api.client.get("/api/v1/submissions", params={"limit": 101}).status_code == 422


def test_edit_and_visibility(seeded_api: Api, sent: Sent) -> None:
    alice, bob = seeded_api.user(), seeded_api.user()
    first = submit(seeded_api, alice, files(SST_2=SST2), name="one").json()["id"]
    second = submit(seeded_api, alice, files(SST_2=SST2), name="two").json()["id"]
    url = f"/api/v1/submissions/{first}"
    changed = seeded_api.client.patch(
        url, headers=alice.headers, json={"description": "new", "visibility": "private"}
    )
    assert changed.status_code == 200
    assert changed.json()["visibility"] == "private"
    assert seeded_api.client.get(url, headers=bob.headers).status_code == 404
    assert seeded_api.client.patch(url, headers=bob.headers, json={"name": "x"}).status_code == 404
    taken = seeded_api.client.patch(
        f"/api/v1/submissions/{second}", headers=alice.headers, json={"name": "one"}
    )
    assert taken.status_code == 422
    assert details(taken) == [
        _problem("you already have a submission named 'one'" + UNIQUE, column="name")
    ]
    extra = seeded_api.client.patch(url, headers=alice.headers, json={"state": "done"})
    assert extra.status_code == 422


def test_withdraw_keeps_shared_blobs_and_the_quota_slot(
    seeded_api_db: str, tmp_path: Path, sent: Sent
) -> None:
    api = limited(seeded_api_db, tmp_path, submissions_per_task_per_day=1)
    try:
        alice, bob = api.user(), api.user()
        mine = submit(api, alice, files(SST_2=SST2), name="mine").json()["id"]
        shared = predictions_bytes("SNLI", seed=4)
        theirs = submit(api, bob, files(SNLI=shared), name="theirs").json()["id"]
        mine_2 = submit(api, alice, files(SNLI=shared), name="mine-2").json()["id"]
        _give_result(api, mine)
        uploads = api.settings.storage.uploads_dir
        assert len(blob_files(uploads)) == 3  # model (shared by all), SST-2 file, SNLI file

        withdrawn = api.client.delete(f"/api/v1/submissions/{mine}", headers=alice.headers)
        assert withdrawn.status_code == 204
        assert len(blob_files(uploads)) == 2  # only the SST-2 file was alice's alone
        assert (
            api.client.get(f"/api/v1/submissions/{mine}", headers=alice.headers).status_code == 404
        )
        admin = api.user(admin=True)
        seen = api.client.get(f"/api/v1/submissions/{mine}", headers=admin.headers).json()
        assert seen["state"] == "withdrawn"
        assert seen["results"] == []
        assert seen["name"].endswith("] mine")
        # The name is free again, the quota slot is not.
        assert submit(api, alice, files(SST_2=SST2), name="mine").status_code == 429
        renamed = api.client.patch(
            f"/api/v1/submissions/{mine_2}", headers=alice.headers, json={"name": "mine"}
        )
        assert renamed.status_code == 200
        assert (
            api.client.delete(f"/api/v1/submissions/{mine}", headers=alice.headers).status_code
            == 404
        )
        assert (
            api.client.delete(f"/api/v1/submissions/{theirs}", headers=bob.headers).status_code
            == 204
        )
        assert len(blob_files(uploads)) == 2  # alice's mine-2 still uses the model and SNLI file
    finally:
        api.close()


def test_a_baseline_cannot_be_withdrawn(seeded_api: Api, sent: Sent) -> None:
    alice, admin = seeded_api.user(), seeded_api.user(admin=True)
    sid = submit(seeded_api, alice, files(SST_2=SST2)).json()["id"]
    _give_result(seeded_api, sid)
    put = seeded_api.client.put(
        "/api/v1/tasks/SST-2/baseline", headers=admin.headers, json={"submission_id": sid}
    )
    assert put.status_code == 200, put.text
    assert put.json() == {"task": "SST-2", "baseline_submission_id": sid}
    [task] = seeded_api.client.get(f"/api/v1/submissions/{sid}").json()["results"]
    assert task["points"][0]["baseline_delta"] == 0.0  # the baseline scores 0 against itself
    refused = seeded_api.client.delete(f"/api/v1/submissions/{sid}", headers=alice.headers)
    assert refused.status_code == 409
    assert "baseline of SST-2" in refused.json()["error"]["message"]
    cleared = seeded_api.client.delete("/api/v1/tasks/SST-2/baseline", headers=admin.headers)
    assert cleared.json() == {"task": "SST-2", "baseline_submission_id": None}
    assert (
        seeded_api.client.delete(f"/api/v1/submissions/{sid}", headers=alice.headers).status_code
        == 204
    )


# ---------------------------------------------------------------------------------------------
# Administrators, papers, inputs


def test_admin_rerun_hide_and_task_rerun(seeded_api: Api, sent: Sent) -> None:
    alice, admin = seeded_api.user(), seeded_api.user(admin=True)
    sid = submit(seeded_api, alice, files(SST_2=SST2), name="a").json()["id"]
    snli = submit(seeded_api, alice, files(SNLI=predictions_bytes("SNLI")), name="b").json()["id"]
    _give_result(seeded_api, sid)
    with seeded_api.db() as session:
        session.execute(update(Submission).values(attempts=3))
    rerun = seeded_api.client.post(f"/api/v1/submissions/{sid}/rerun", headers=admin.headers)
    assert rerun.status_code == 200
    assert rerun.json() == {"requeued": [sid], "queued": True}
    assert sent.jobs[-1][0] == sid
    assert sent.committed[-1]
    with seeded_api.db() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert (sub.state, sub.attempts, sub.job_id) == (
            SubmissionState.QUEUED,
            0,
            sent.jobs[-1][1],
        )

    task_rerun = seeded_api.client.post("/api/v1/tasks/snli/rerun", headers=admin.headers)
    assert task_rerun.json() == {"requeued": [snli], "queued": True}

    hidden = seeded_api.client.post(f"/api/v1/submissions/{sid}/hide", headers=admin.headers)
    assert hidden.json()["hidden"] is True
    assert seeded_api.client.get(f"/api/v1/submissions/{sid}").status_code == 404
    assert (
        seeded_api.client.get(f"/api/v1/submissions/{sid}", headers=alice.headers).status_code
        == 200
    )
    assert [i["id"] for i in seeded_api.client.get("/api/v1/submissions").json()["items"]] == [snli]
    seeded_api.client.post(f"/api/v1/submissions/{sid}/unhide", headers=admin.headers)
    assert seeded_api.client.get(f"/api/v1/submissions/{sid}").status_code == 200


def test_self_reported_paper(seeded_api: Api, sent: Sent) -> None:
    alice = seeded_api.user()
    entry = {
        "name": "ElasticBERT (paper)",
        "paper_url": "https://arxiv.org/abs/2110.07038",
        "code_url": "https://github.com/fastnlp/ElasticBERT",
        "params": 109_000_000,
        "points": [
            {"task": "SST-2", "point": "exit3", "performance": 84.1, "flops": 1.059e9},
            {
                "task": "sst-2",
                "point": "exit12",
                "performance": 88.6,
                "flops": 4.237e9,
                "metrics": {"accuracy": 88.6},
            },
        ],
    }
    made = seeded_api.client.post("/api/v1/papers", headers=alice.headers, json=entry)
    assert made.status_code == 201, made.text
    assert made.json()["state"] == "done"
    read = seeded_api.client.get(made.json()["api_url"]).json()
    assert (read["kind"], read["self_reported"], read["state"]) == ("self_reported", True, "done")
    [task] = read["results"]
    assert [
        (p["point"], p["performance"], p["flops"]["mean"], p["cost_status"], p["self_reported"])
        for p in task["points"]
    ] == [  # the curve's order: cheapest first
        ("exit3", 84.1, 1.059e9, "self_reported", True),
        ("exit12", 88.6, 4.237e9, "self_reported", True),
    ]
    assert all(p["costs_url"] is None and p["params"] == 109_000_000 for p in task["points"])
    listed = seeded_api.client.get("/api/v1/submissions", params={"kind": "self_reported"}).json()
    assert [(i["name"], i["self_reported"]) for i in listed["items"]] == [
        ("ElasticBERT (paper)", True)
    ]
    with seeded_api.db() as session:
        assert all(r.file_id is None for r in session.scalars(select(Result)))

    bad = seeded_api.client.post(
        "/api/v1/papers",
        headers=alice.headers,
        json={
            **entry,
            "points": [
                entry["points"][0],
                entry["points"][0],
                {**entry["points"][0], "task": "QNLI"},
            ],
        },
    )
    assert bad.status_code == 422
    assert {d["column"] for d in details(bad)} == {"name", "points.1.point", "points.2.task"}
    no_url = seeded_api.client.post(
        "/api/v1/papers",
        headers=alice.headers,
        json={k: v for k, v in entry.items() if k != "paper_url"},
    )
    assert no_url.status_code == 422
    assert details(no_url)[0]["column"] == "body.paper_url"
    rerun = seeded_api.client.post(
        f"/api/v1/submissions/{made.json()['id']}/rerun",
        headers=seeded_api.user(admin=True).headers,
    )
    assert rerun.status_code == 409


def test_per_point_parameters_of_a_paper_entry(seeded_api: Api) -> None:
    """A paper's points may each give their parameter count (an early exit after 3 layers has
    fewer than the whole model); they show per point on the API, the CSV and the pages."""
    alice = seeded_api.user()
    entry = {
        "name": "exits",
        "paper_url": "https://example.org/paper",
        "params": 109_000_000,
        "points": [
            {
                "task": "SST-2",
                "point": "exit3",
                "performance": 84.1,
                "flops": 1.0e9,
                "params": 31_000_000,
            },
            {"task": "SST-2", "point": "exit12", "performance": 88.6, "flops": 4.0e9},
        ],
    }
    made = seeded_api.client.post("/api/v1/papers", headers=alice.headers, json=entry)
    assert made.status_code == 201, made.text
    [task] = seeded_api.client.get(made.json()["api_url"]).json()["results"]
    assert [(p["point"], p["params"]) for p in task["points"]] == [
        ("exit3", 31_000_000),
        ("exit12", 109_000_000),  # the entry's count where the point gives none
    ]
    board = seeded_api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert sorted((p["point"], p["params"]) for p in board["points"]) == [
        ("exit12", 109_000_000),
        ("exit3", 31_000_000),
    ]
    csv_text = seeded_api.client.get("/api/v1/tasks/SST-2/leaderboard?format=csv").text
    rows = {r["point"]: r["params"] for r in csv.DictReader(io.StringIO(csv_text))}
    assert rows == {"exit3": "31000000", "exit12": "109000000"}
    page = seeded_api.client.get(f"/submissions/{made.json()['id']}").text
    assert "31,000,000 parameters" in page
    bad = seeded_api.client.post(
        "/api/v1/papers",
        headers=alice.headers,
        json={**entry, "name": "bad", "points": [{**entry["points"][0], "params": 0}]},
    )
    assert bad.status_code == 422
    (problem,) = details(bad)
    assert problem["column"] == "points.0.params"  # checked like the entry's (plausibility)
    assert "zero" in problem["problem"].lower() or "positive" in problem["problem"].lower()


def test_task_inputs_download(seeded_api: Api) -> None:
    response = seeded_api.client.get("/api/v1/tasks/snli/inputs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/tab-separated-values; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="SNLI.test.tsv"'
    lines = response.text.splitlines()
    assert lines[0] == "index\tpremise\thypothesis"
    assert len(lines) == 9825
    assert all(len(line.split("\t")) == 3 for line in lines)
    assert [line.split("\t")[0] for line in lines[1:4]] == ["0", "1", "2"]
    assert seeded_api.client.get("/api/v1/tasks/QNLI/inputs").status_code == 404


def test_every_imported_split_downloads_and_no_download_reaches_test_gold(
    seeded_api: Api, elue_dir: Path
) -> None:
    """Every split the operator imported is offered on the API and the task page: dev with its
    labels, test as inputs only; no request of these reads `task_gold` (where test gold is)."""
    gold_reads: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "task_gold" in statement.lower():
            gold_reads.append(statement)

    event.listen(Engine, "before_cursor_execute", watch)
    try:
        tasks = seeded_api.client.get("/api/v1/tasks").json()
        assert tasks
        for task in tasks:
            splits = {s["split"]: s for s in task["splits"]}
            assert set(splits) == {"test", "dev"}, task["name"]
            assert splits["test"]["labelled"] is False
            assert splits["dev"]["labelled"] is True
            assert splits["test"]["size"] == task["test_size"]
            columns = ["index", *task["text_columns"]]
            for split in splits.values():
                got = seeded_api.client.get(split["url"])
                assert got.status_code == 200, got.text
                lines = got.text.splitlines()
                header = columns + (["label"] if split["split"] == "dev" else [])
                assert lines[0].split("\t") == header
                assert len(lines) == split["size"] + 1
                assert all(len(line.split("\t")) == len(header) for line in lines)
            page = seeded_api.client.get(f"/tasks/{task['name']}").text
            assert f'href="/api/v1/tasks/{task["name"]}/data/dev"' in page
            assert "inputs only (gold labels stay on the server)" in page
        for missing in ("train", "gold", "test_full", "TEST"):
            refused = seeded_api.client.get(f"/api/v1/tasks/SST-2/data/{missing}")
            assert refused.status_code == 404
            assert "(imported: test, dev)" in refused.json()["error"]["message"]
    finally:
        event.remove(Engine, "before_cursor_execute", watch)
    assert gold_reads == []
    # The dev file is the imported one: its labels in order.
    dev = seeded_api.client.get("/api/v1/tasks/SST-2/data/dev").text.splitlines()
    source = (elue_dir / "SST-2" / "dev.tsv").read_text(encoding="utf-8-sig").splitlines()
    assert [line.split("\t")[-1] for line in dev[1:6]] == [
        line.split("\t")[-1] for line in source[1:6]
    ]


def test_zip_upload_is_accepted(seeded_api: Api, sent: Sent) -> None:
    alice = seeded_api.user()
    archive = zip_bytes(
        [
            ("preds/", b""),
            ("preds/SST-2.a.tsv", SST2),
            ("preds/SST-2.b.tsv", predictions_bytes("SST-2", 9)),
        ]
    )
    response = submit(seeded_api, alice, files(preds_zip=archive))
    assert response.status_code == 202, response.text
    read = seeded_api.client.get(response.json()["api_url"], headers=alice.headers).json()
    assert sorted((f["name"], f["point"]) for f in read["files"] if f["role"] == "predictions") == [
        ("SST-2.a.tsv", "a"),
        ("SST-2.b.tsv", "b"),
    ]
    stored = zip_bytes([("SST-2.tsv", SST2)], compression=zipfile.ZIP_STORED)
    assert submit(seeded_api, alice, files(p_zip=stored), name="stored").status_code == 202


def test_private_visibility_everywhere(seeded_api: Api, sent: Sent) -> None:
    alice, bob = seeded_api.user(), seeded_api.user()
    sid = submit(seeded_api, alice, files(SST_2=SST2), visibility="private").json()["id"]
    rid = _give_result(seeded_api, sid)
    for headers in ({}, bob.headers):
        assert (
            seeded_api.client.get(f"/api/v1/submissions/{sid}", headers=headers).status_code == 404
        )
        assert (
            seeded_api.client.get(
                f"/api/v1/submissions/{sid}/costs/{rid}", headers=headers
            ).status_code
            == 404
        )
        listed = seeded_api.client.get("/api/v1/submissions", headers=headers).json()
        assert listed["total"] == 0
    assert (
        seeded_api.client.get(f"/api/v1/submissions/{sid}", headers=alice.headers).status_code
        == 200
    )
    with seeded_api.db() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert sub.visibility is Visibility.PRIVATE


def test_unexpected_errors_carry_no_traceback(
    seeded_api: Api, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.submissions import queries

    alice = seeded_api.user()
    sid = submit(seeded_api, alice, files(SST_2=SST2)).json()["id"]

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals at /srv/paretoboard")

    monkeypatch.setattr(queries, "read_submission", broken)
    client = seeded_api.new_client(raise_server_exceptions=False)
    response = client.get(f"/api/v1/submissions/{sid}")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "Internal server error", "details": []}
    }
    assert "secret" not in response.text
    assert "Traceback" not in response.text
