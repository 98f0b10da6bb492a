"""Boards with thousands of results: every leaderboard route and page answers (SQLite and
PostgreSQL), and the board version moves only when a public board can change.

Rows are bulk-inserted (one INSERT per table) so the test stays quick; the old fingerprint
(sums of timestamps over whole tables) answered 500 past about 5,100 results on SQLite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import insert, select

from core.leaderboard import board_version, set_task_baseline
from core.models import (
    Result,
    Submission,
    SubmissionKind,
    SubmissionState,
    Task,
    Visibility,
)

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]

N_SUBMISSIONS = 2_200  # x 3 points = 6,600 results, plus the baseline's
HTML = {"Accept": "text/html"}


def _result(sid: int, tid: int, k: int, flops: float, perf: float) -> dict[str, Any]:
    return {
        "submission_id": sid,
        "task_id": tid,
        "point": f"exit{k}",
        "performance": perf,
        "metrics": {"accuracy": perf},
        "cost_status": "counted",
        "flops_mean": flops,
        "flops_p10": flops * 0.8,
        "flops_p90": flops * 1.2,
        "params": 10_000_000 + sid,
    }


def _populate(api: Api) -> dict[str, int]:
    with api.db() as session:
        tasks = {t.name: t.id for t in session.scalars(select(Task))}
        sst2 = tasks["SST-2"]
        subs = [
            {
                "name": "ElasticBERT-base" if i == 0 else f"model-{i}",
                "kind": SubmissionKind.SELF_REPORTED if i == 0 else SubmissionKind.MEASURED,
                "visibility": Visibility.PRIVATE if i % 97 == 5 else Visibility.PUBLIC,
                "state": SubmissionState.DONE,
                "params": 109_000_000 if i == 0 else 4_000_000 + 50_000 * i,
                "timeline": [],
            }
            for i in range(N_SUBMISSIONS + 1)
        ]
        ids = list(
            session.scalars(
                insert(Submission).returning(Submission.id, sort_by_parameter_order=True), subs
            )
        )
        rows = []
        for n, sid in enumerate(ids):
            for k in range(3):
                flops = (1000 + 300 * k + (n % 50)) * 1e6
                rows.append(_result(sid, sst2, k, flops, 84.0 + k + (n % 13) / 10))
            if n % 4 == 0:
                rows.append(_result(sid, tasks["SNLI"], 0, 2000e6 + n, 90.0 + (n % 7) / 10))
        session.execute(insert(Result), rows)
        set_task_baseline(session, task_name="SST-2", submission_id=ids[0])
        set_task_baseline(session, task_name="SNLI", submission_id=ids[0])
    return {"results": len(rows), "first": ids[1], "last": ids[-1]}


@pytest.fixture
def big_board(seeded_api: Api) -> tuple[Api, dict[str, int]]:
    return seeded_api, _populate(seeded_api)


def test_every_route_answers_with_thousands_of_results(
    big_board: tuple[Api, dict[str, int]],
) -> None:
    api, made = big_board
    assert made["results"] > 6_000
    client = api.client
    assert client.get("/api/v1/leaderboard").status_code == 200  # the default: all tasks
    overall = client.get("/api/v1/leaderboard?coverage=any")
    assert overall.status_code == 200, overall.text
    body = overall.json()
    listed = N_SUBMISSIONS + 1 - sum(1 for i in range(N_SUBMISSIONS + 1) if i % 97 == 5)
    assert body["total"] == listed
    assert len(body["entries"]) == body["limit"] == 100
    last = client.get(
        "/api/v1/leaderboard", params={"offset": listed - 3, "limit": 1000, "coverage": "any"}
    )
    assert last.status_code == 200
    assert len(last.json()["entries"]) == 3
    for path in (
        "/api/v1/leaderboard?track=55M",
        "/api/v1/leaderboard?track=110M&limit=1000&offset=500",
        "/api/v1/leaderboard?format=csv",
        "/api/v1/leaderboard?q=model-21",
        "/api/v1/tasks/SST-2/leaderboard",
        "/api/v1/tasks/SST-2/leaderboard?offset=2000&limit=500",
        "/api/v1/tasks/SNLI/leaderboard?format=csv",
        "/api/v1/tasks/STS-B/leaderboard",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    csv_lines = client.get("/api/v1/leaderboard?format=csv&coverage=any").text.strip().splitlines()
    assert len(csv_lines) == listed + 1  # the export is the whole board
    found = client.get(
        "/api/v1/leaderboard", params={"q": "MODEL-21", "limit": 1000, "coverage": "any"}
    ).json()
    assert {e["name"] for e in found["entries"]} == {
        f"model-{i}"
        for i in range(N_SUBMISSIONS + 1)
        if f"model-{i}".startswith("model-21") and i % 97 != 5
    }
    task = client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert task["total"] == listed
    assert task["total_points"] == 3 * listed
    assert len(task["submissions"]) == 100
    assert len(task["points"]) == 300
    assert task["front_points"]

    pages = api.new_client()
    pages.headers.update(HTML)
    for path in (
        "/",
        "/?page=20",
        "/?q=model-1",
        "/?min_params=10&max_params=20&sort=params&dir=desc",
        "/?q=model&min_params=5&max_params=50&sort=name",
        "/?track=55M",
        "/?partial=1&q=model-2",
        "/tasks/SST-2",
        "/tasks/SST-2?page=15",
        "/tasks/SST-2/plot.json",
        "/tasks/SST-2/plot.json?all=1",
    ):
        response = pages.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    searched = pages.get("/?q=model-21").text
    assert "model-21" in searched
    assert "model-3" not in searched


def test_private_progress_does_not_move_the_version_public_changes_do(
    big_board: tuple[Api, dict[str, int]],
) -> None:
    api, made = big_board
    client = api.client
    etag = client.get("/api/v1/leaderboard").headers["etag"]
    with api.db() as session:
        before = board_version(session)
        queued = Submission(
            name="in progress",
            kind=SubmissionKind.MEASURED,
            visibility=Visibility.PRIVATE,
            state=SubmissionState.QUEUED,
            timeline=[],
        )
        session.add(queued)
    with api.db() as session:
        queued = session.merge(queued)
        queued.state = SubmissionState.SCORING
        queued.state_message = "Scoring"
        queued.timeline = [{"state": "scoring"}]
    with api.db() as session:
        assert board_version(session) == before
    cached = client.get("/api/v1/leaderboard", headers={"If-None-Match": etag})
    assert cached.status_code == 304

    with api.db() as session:
        point = session.scalar(
            select(Result).where(Result.submission_id == made["last"]).order_by(Result.id)
        )
        assert point is not None
        point.performance = 99.5
    with api.db() as session:
        assert board_version(session)[0] == before[0] + 1
    fresh = client.get("/api/v1/leaderboard", headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.json()["entries"][0]["submission_id"] == made["last"]
