"""An incomplete FLOPs count (a lower bound) is flagged everywhere, never on a front or scored.

Builds the leaderboard scenario of tests/test_leaderboard.py, then adds "Cheap": a point whose
count met an operator without a rule, so cheap and good that it would top the SST-2 FLOPs and
params fronts and score far above the baseline if it were believed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.leaderboard import cache, overall_csv, overall_leaderboard, task_csv, task_leaderboard
from core.models import Result
from tests.factories import make_entry
from tests.test_leaderboard import A_OVERALL, A_SST2, Board, build

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]


@pytest.fixture
def board(session: Session) -> Board:
    return build(session)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def _add_cheap(session: Session, board: Board) -> int:
    cheap = make_entry(session, "Cheap", {board.sst2: [(10, 99.0), (2000, 88.0)]}, params=1_000_000)
    session.flush()
    incomplete = min(r.id for r in session.query(Result).filter_by(submission_id=cheap.id))
    session.execute(
        update(Result)
        .where(Result.id == incomplete)
        .values(cost_incomplete=True, flops_elue_mean=5e6, cost_disagrees=True)
    )
    session.flush()
    return incomplete


def test_incomplete_point_is_listed_flagged_and_off_the_fronts(
    session: Session, board: Board
) -> None:
    incomplete = _add_cheap(session, board)
    lb = task_leaderboard(session, "SST-2")
    point = next(p for p in lb.points if p.result_id == incomplete)
    assert point.cost_incomplete
    assert point.cost_disagrees
    assert point.flops_elue_mean == 5e6
    assert not point.on_flops_front
    assert not point.on_params_front
    assert incomplete not in lb.flops_front
    assert incomplete not in lb.params_front
    assert point.delta is None
    assert point.baseline_performance is None
    # The front is what it was without Cheap's incomplete point (A's cheapest still heads it).
    assert lb.flops_front[0] == next(
        p.result_id for p in lb.points if p.submission_name == "A" and p.flops_mean == 500e6
    )
    cheap = next(s for s in lb.submissions if s.name == "Cheap")
    assert cheap.incomplete_points == 1
    # Scored on its complete point only: (2000, 88.0) against the baseline's 86.8... at 2000.
    complete = next(
        p for p in lb.points if p.submission_name == "Cheap" and p.result_id != incomplete
    )
    assert complete.delta is not None
    assert cheap.score == pytest.approx(complete.delta)
    a = next(s for s in lb.submissions if s.name == "A")
    assert a.score == pytest.approx(A_SST2)  # others unchanged


def test_entry_with_only_incomplete_points_has_no_score(session: Session, board: Board) -> None:
    only = make_entry(session, "OnlyIncomplete", {board.sst2: [(5, 99.5)]}, params=10)
    session.execute(
        update(Result).where(Result.submission_id == only.id).values(cost_incomplete=True)
    )
    session.flush()
    lb = task_leaderboard(session, "SST-2")
    entry = next(s for s in lb.submissions if s.name == "OnlyIncomplete")
    assert entry.score is None
    assert entry.incomplete_points == 1
    overall = overall_leaderboard(session)
    row = next(e for e in overall.entries if e.name == "OnlyIncomplete")
    assert row.score is None
    assert row.incomplete_tasks == ("SST-2",)
    assert "SST-2" not in row.task_scores
    a = next(e for e in overall.entries if e.name == "A")
    assert a.score == pytest.approx(A_OVERALL)
    # Ranked after every scored entry.
    scored = [e.rank for e in overall.entries if e.score is not None]
    assert row.rank > max(scored)


def test_csv_exports_carry_the_flags(session: Session, board: Board) -> None:
    incomplete = _add_cheap(session, board)
    rows = list(csv.DictReader(io.StringIO(task_csv(task_leaderboard(session, "SST-2")))))
    row = next(r for r in rows if int(r["result_id"]) == incomplete)
    assert (row["cost_incomplete"], row["cost_disagrees"]) == ("true", "true")
    assert float(row["flops_elue_mean"]) == 5e6
    assert row["delta"] == ""
    assert row["on_flops_front"] == "false"
    overall = list(csv.DictReader(io.StringIO(overall_csv(overall_leaderboard(session)))))
    assert next(r for r in overall if r["name"] == "Cheap")["incomplete_tasks"] == "SST-2"


@pytest.fixture
def api_cheap(api: Api) -> tuple[Api, int]:
    with api.db() as session:
        incomplete = _add_cheap(session, build(session))
        session.commit()
    return api, incomplete


def test_api_and_pages_flag_incomplete_counts(api_cheap: tuple[Api, int]) -> None:
    api, incomplete = api_cheap
    body = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    point = next(p for p in body["points"] if p["result_id"] == incomplete)
    assert point["cost_incomplete"] is True
    assert point["on_flops_front"] is False
    assert incomplete not in body["flops_front"]
    cheap = next(s for s in body["submissions"] if s["name"] == "Cheap")
    assert cheap["incomplete_points"] == 1
    overall = api.client.get("/api/v1/leaderboard?coverage=any").json()
    assert next(e for e in overall["entries"] if e["name"] == "Cheap")["incomplete_tasks"] == [
        "SST-2"
    ]
    page = api.client.get("/tasks/SST-2")
    assert page.status_code == 200
    assert "Incomplete count" in page.text
    home = api.client.get("/?coverage=any")
    assert "Incomplete count" in home.text


def test_marking_a_count_incomplete_invalidates_every_board(session: Session, board: Board) -> None:
    """A recount that flags a listed result (committed elsewhere) bumps the board version."""
    from core.leaderboard import board_version

    session.commit()
    before = board_version(session)
    first = task_leaderboard(session, "SST-2")
    a_point = next(p for p in first.points if p.submission_name == "A")
    session.execute(
        update(Result).where(Result.id == a_point.result_id).values(cost_incomplete=True)
    )
    session.commit()
    assert board_version(session) != before
    after = task_leaderboard(session, "SST-2")
    assert next(p for p in after.points if p.result_id == a_point.result_id).cost_incomplete
