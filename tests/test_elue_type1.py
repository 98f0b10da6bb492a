"""ELUE's Type 1 entries (prediction files scored here, FLOPs and parameters per file typed in,
with units) and paper entries with units: plausibility, unit slips, kept apart on the board."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from core.db.session import make_engine
from core.models import Result
from core.submissions.plausibility import (
    PLAUSIBLE,
    FlopsUnit,
    ParamsUnit,
    check_cost,
    method_text,
)
from tests.submission_helpers import TINY_MODEL, footprint, predictions_bytes
from web import enqueue
from worker import pipeline

if TYPE_CHECKING:
    from tests.api_helpers import Api, ApiUser

pytest_plugins = ["tests.api_helpers"]

# Pages and paper entries do not depend on the database: one backend keeps the default run short
SQLITE_SEEDED = pytest.mark.parametrize("seeded_api_db", ["sqlite"], indirect=True)
SST2_A = predictions_bytes("SST-2", seed=1)
SST2_B = predictions_bytes("SST-2", seed=2)


def cost(file: str, flops: float, params: float, **units: str) -> dict[str, Any]:
    return {
        "file": file,
        "flops": flops,
        "flops_unit": units.get("flops_unit", "MFLOPs"),
        "params": params,
        "params_unit": units.get("params_unit", "M"),
    }


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    sent: list[tuple[int, str]] = []

    def send(settings: Any, submission_id: int, job_id: str) -> bool:
        sent.append((submission_id, job_id))
        return True

    monkeypatch.setattr(enqueue, "send_score", send)
    return sent


def type1(api: Api, user: ApiUser, costs: Any, *, name: str = "type1", **extra: Any) -> Any:
    parts = [
        ("predictions", ("SST-2.a.tsv", SST2_A)),
        ("predictions", ("SST-2.b.tsv", SST2_B)),
        *extra.pop("parts", []),
    ]
    data = {"name": name, "costs": costs if isinstance(costs, str) else json.dumps(costs)}
    return api.client.post("/api/v1/submissions", headers=user.headers, data=data, files=parts)


def details(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    return list(response.json()["error"]["details"])


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "value", "unit", "expected"),
    [
        ("flops", 6788, FlopsUnit.MFLOPS, 6.788e9),
        ("params", 67, ParamsUnit.M, 67e6),
        ("flops", 2.1, FlopsUnit.GFLOPS, 2.1e9),
        ("params", 109_000_000, ParamsUnit.PARAMS, 109e6),
    ],
)
def test_plausible_values_in_base_units(
    quantity: str, value: float, unit: FlopsUnit | ParamsUnit, expected: float
) -> None:
    assert check_cost(quantity, value, unit, column="c") == (pytest.approx(expected), None)


@pytest.mark.parametrize(
    ("quantity", "value", "unit", "says"),
    [
        # ELUE's MFLOPs typed as FLOPs: 6,788 FLOPs for a 67M-parameter transformer
        ("flops", 6788, FlopsUnit.FLOPS, "unit slip: did you mean 6,788 MFLOPs"),
        # a FLOPs count typed into the MFLOPs field
        ("flops", 6.788e9, FlopsUnit.MFLOPS, "unit slip: did you mean 6,788,000,000 FLOPs"),
        ("params", 67, ParamsUnit.PARAMS, "unit slip: did you mean 67 M"),
        ("params", 67e6, ParamsUnit.M, "unit slip: did you mean 67,000,000 params"),
        ("flops", 0, FlopsUnit.MFLOPS, "cannot be true: it must be greater than zero"),
        ("params", -5, ParamsUnit.M, "cannot be true: it must be greater than zero"),
        ("flops", 5e7, FlopsUnit.GFLOPS, "above the plausible range, " + PLAUSIBLE["flops"].why),
        ("params", 0.001, ParamsUnit.M, "below the plausible range, " + PLAUSIBLE["params"].why),
    ],
)
def test_implausible_values_are_refused_with_the_reason(
    quantity: str, value: float, unit: FlopsUnit | ParamsUnit, says: str
) -> None:
    base, problem = check_cost(quantity, value, unit, column="c")
    assert base is None
    assert problem is not None
    assert says in problem.problem
    assert problem.column == "c"


def test_type1_scored_here_costs_self_reported_and_kept_apart(
    seeded_api: Api, jobs: list[tuple[int, str]]
) -> None:
    alice = seeded_api.user()
    made = type1(
        seeded_api,
        alice,
        [
            cost("SST-2.a.tsv", 6788, 67),
            cost("sst2.b.tsv", 1.2, 14.5, flops_unit="GFLOPs"),  # any spelling of the task
        ],
    )
    assert made.status_code == 202, made.text
    [(sid, job_id)] = jobs
    engine = make_engine(seeded_api.settings.database_url)
    try:  # the scoring stage finishes it: nothing to count
        assert pipeline.run_scoring(engine, seeded_api.settings, sid, job_id) == "stop"
    finally:
        engine.dispose()
    read = seeded_api.client.get(f"/api/v1/submissions/{sid}").json()
    assert (read["kind"], read["self_reported"], read["state"]) == ("self_reported", True, "done")
    assert "self-reported" in read["state_message"]
    points = {p["point"]: p for t in read["results"] for p in t["points"]}
    assert {k: (p["flops"]["mean"], p["params"], p["cost_status"]) for k, p in points.items()} == {
        "a": (6.788e9, 67_000_000, "self_reported"),
        "b": (1.2e9, 14_500_000, "self_reported"),
    }
    assert all(p["self_reported"] and p["performance"] is not None for p in points.values())
    with seeded_api.db() as session:  # scored from its file, no model file stored
        rows = session.scalars(select(Result).where(Result.submission_id == sid)).all()
        assert all(r.file_id is not None and r.metrics for r in rows)

    board = seeded_api.client.get("/api/v1/leaderboard").json()
    assert board["self_reported"] is False
    assert "type1" not in [e["name"] for e in board["entries"]]
    both = seeded_api.client.get("/api/v1/leaderboard", params={"self_reported": "true"}).json()
    [entry] = [e for e in both["entries"] if e["name"] == "type1"]
    assert (entry["self_reported"], entry["params"]) == (True, 67_000_000)


def test_type1_refusals_name_the_file_and_store_nothing(
    seeded_api: Api, jobs: list[tuple[int, str]]
) -> None:
    alice = seeded_api.user()
    with seeded_api.db() as session:
        before = footprint(session, seeded_api.settings.storage.data_dir)
    slip = type1(
        seeded_api,
        alice,
        [
            cost("SST-2.a.tsv", 6788, 67, flops_unit="FLOPs"),
            cost("SST-2.c.tsv", 100, 10),  # no such upload; and SST-2 point b has no row
        ],
    )
    found = {(d["file"], d["column"]): d["problem"] for d in details(slip)}
    assert "did you mean 6,788 MFLOPs (= 6,788,000,000 FLOPs)" in found[(None, "costs.0.flops")]
    assert found[(None, "costs.0.flops")].startswith("SST-2.a.tsv: FLOPs per sample: 6,788 FLOPs")
    assert "is not one of the uploaded prediction files" in found[(None, "costs.1.file")]
    assert "no self-reported FLOPs and parameters" in found[("SST-2.b.tsv", "costs")]

    both = type1(
        seeded_api,
        alice,
        [cost("SST-2.a.tsv", 6788, 67), cost("SST-2.b.tsv", 6788, 67)],
        parts=[("model", ("model.py", TINY_MODEL.read_bytes()))],
    )
    assert [d["column"] for d in details(both)] == ["model"]
    units = type1(seeded_api, alice, [{**cost("SST-2.a.tsv", 1, 1), "flops_unit": "TFLOPs"}])
    assert [d["column"] for d in details(units)] == ["costs.0.flops_unit"]
    assert details(type1(seeded_api, alice, "not json"))[0]["column"] == "costs"
    with seeded_api.db() as session:
        assert footprint(session, seeded_api.settings.storage.data_dir) == before
    assert jobs == []


@SQLITE_SEEDED
def test_paper_entry_units_and_unit_slip(seeded_api: Api) -> None:
    alice = seeded_api.user()
    entry = {
        "name": "paper with units",
        "paper_url": "https://example.org/paper",
        "params": 67,
        "params_unit": "M",
        "points": [{"task": "SST-2", "performance": 88.0, "flops": 6788, "flops_unit": "MFLOPs"}],
    }
    made = seeded_api.client.post("/api/v1/papers", headers=alice.headers, json=entry)
    assert made.status_code == 201, made.text
    read = seeded_api.client.get(made.json()["api_url"]).json()
    [point] = read["results"][0]["points"]
    assert (point["flops"]["mean"], point["params"]) == (6.788e9, 67_000_000)

    slip = seeded_api.client.post(
        "/api/v1/papers",
        headers=alice.headers,
        json={
            **entry,
            "name": "slip",
            "params_unit": "params",
            "points": [{**entry["points"][0], "flops_unit": "FLOPs"}],
        },
    )
    found = {d["column"]: d["problem"] for d in details(slip)}
    assert set(found) == {"params", "points.0.flops"}
    assert "did you mean 67 M" in found["params"]
    assert "did you mean 6,788 MFLOPs" in found["points.0.flops"]


@SQLITE_SEEDED
def test_web_form_takes_the_costs_table_with_units(
    seeded_api: Api, jobs: list[tuple[int, str]]
) -> None:
    from tests.test_pages import browser, browser_multipart, csrf_of

    client = browser(seeded_api, seeded_api.user())
    form = client.get("/submit")
    assert 'name="costs_table"' in form.text
    assert "from 10,000 FLOPs (0.01 MFLOPs)" in form.text  # the plausible range, from the table
    csrf = csrf_of(form.text)
    files = [
        ("model", "", b""),  # the file inputs a browser sends empty
        ("predictions", "SST-2.a.tsv", SST2_A),
        ("predictions", "SST-2.b.tsv", SST2_B),
    ]
    fields = {"name": "typed", "csrf_token": csrf, "costs_flops_unit": "MFLOPs"}
    body, headers = browser_multipart(
        {
            **fields,
            "costs_params_unit": "M",
            "costs_table": "SST-2.a.tsv 6788 67\nSST-2.b.tsv 6788e6 67\n",
        },
        files,
    )
    refused = client.post("/submit/check", content=body, headers=headers)
    assert refused.status_code == 422, refused.text[:2000]
    box = re.search(
        r'<ul class="problems" id="problems-costs_table"\s*>(.*?)</ul>', refused.text, re.S
    )
    assert box, refused.text
    assert "line 2: SST-2.b.tsv: FLOPs per sample" in html.unescape(box.group(1))
    assert "did you mean 6,788,000,000 FLOPs (= 6,788 MFLOPs)?" in html.unescape(box.group(1))
    assert "SST-2.b.tsv 6788e6 67" in refused.text  # what was typed is kept

    body, headers = browser_multipart(
        {
            **fields,
            "costs_params_unit": "M",
            "costs_table": "SST-2.a.tsv 6788 67\nSST-2.b.tsv 1200 14.5",
        },
        files,
    )
    created = client.post("/submit", content=body, headers=headers)
    assert created.status_code == 303, created.text[:2000]
    assert len(jobs) == 1
    page = client.get(created.headers["location"])
    assert "Self-reported" in page.text


@pytest.mark.parametrize("api_db", ["sqlite"], indirect=True)
def test_method_page_and_docs_state_the_table_in_code(api: Api) -> None:
    ranking = (Path(__file__).resolve().parents[1] / "docs" / "ranking.md").read_text()
    about = api.client.get("/about").text
    for quantity, why in method_text():
        assert f"| {quantity} | {why} |" in ranking
        assert f"<td>{quantity}</td><td>{why}</td>" in about
    assert 'id="self-reported"' in about
    assert "pip install ./client" in about  # the light client's one-line install
    assert (
        "curl -H &#34;Authorization: Bearer" in about or 'curl -H "Authorization: Bearer' in about
    )


@SQLITE_SEEDED
def test_paper_web_form_with_units(seeded_api: Api) -> None:
    from tests.test_pages import browser, csrf_of

    client = browser(seeded_api, seeded_api.user())
    form = client.get("/submit/paper")
    assert form.status_code == 200
    fields = {
        "csrf_token": csrf_of(form.text),
        "name": "from the paper form",
        "paper_url": "https://example.org/paper",
        "params": "67",
        "params_unit": "M",
        "flops_unit": "FLOPs",
        "points_table": "# task point performance flops\nSST-2 - 88.5 6788\nSST-2 small 84 0\n",
    }
    refused = client.post("/submit/paper", data=fields)
    assert refused.status_code == 422, refused.text[:2000]
    box = re.search(r'id="problems-points_table"\s*>(.*?)</ul>', refused.text, re.S)
    assert box, refused.text
    text = html.unescape(box.group(1))
    assert "line 2: flops: FLOPs per sample: 6,788 FLOPs is below" in text
    assert "did you mean 6,788 MFLOPs (= 6,788,000,000 FLOPs)?" in text
    assert "line 3: flops: FLOPs per sample: 0 FLOPs cannot be true" in text
    assert "SST-2 small 84 0" in refused.text  # what was typed is kept

    created = client.post(
        "/submit/paper",
        data={**fields, "flops_unit": "MFLOPs", "points_table": "SST-2 - 88.5 6788\n"},
    )
    assert created.status_code == 303, created.text[:2000]
    sid = int(created.headers["location"].rsplit("/", 1)[1])
    read = seeded_api.client.get(f"/api/v1/submissions/{sid}").json()
    [point] = read["results"][0]["points"]
    assert (read["self_reported"], point["flops"]["mean"], point["params"]) == (
        True,
        6.788e9,
        67_000_000,
    )
