"""Leaderboards: scores against hand-computed values, Pareto flags, listing, tracks, cache, API.

The scenario (FLOPs in millions, performance x100), on a real database (SQLite, PostgreSQL):

- SST-2 baseline: ELUE's published curve (1059, 84.1) (1412, 85.7) (2118, 87.0) (4237, 88.6);
  SNLI baseline (2000, 90.1) (4000, 91.3); STS-B has no baseline.
- A (30M): SST-2 (500, 83.0) below range -1.1, (1765, 87.0) +0.65, (5000, 89.0) above +0.4
  -> -0.05/3; SNLI (3000, 91.0) +0.3 -> overall (0.3 - 0.05/3) / 2.
- C (exactly 40M): SST-2 (4237, 88.6) and SNLI (4000, 91.3): both 0 -> overall 0.
- B (67M): SST-2 (1059, 86.0) +1.9, STS-B (1000, 85.0) -> overall 1.9 over 1 of 2 tasks.
- Solo (20M): STS-B (800, 95.0) only -> no ELUE score, 0 of 2 tasks.
- The baseline (109M, self-reported) scores 0 over 2 of 2 tasks.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.errors import InvalidInputError, NotFoundError
from core.leaderboard import (
    board_version,
    cache,
    clear_task_baseline,
    overall_csv,
    overall_leaderboard,
    set_task_baseline,
    task_csv,
    task_leaderboard,
)
from core.leaderboard.types import (
    LeaderboardBaselinePointRead,
    LeaderboardBaselineRead,
    LeaderboardFamilyRead,
    LeaderboardPointRead,
    LeaderboardTaskRead,
    OverallEntryRead,
    TaskLeaderboardEntryRead,
)
from core.models import Result, Submission, SubmissionKind, SubmissionState, Task, Visibility
from core.ranking.tracks import Track
from tests.factories import SST2_BASELINE, add_points, make_entry, make_submission, make_task
from web.api.schemas.leaderboard import OverallLeaderboardRead, TaskLeaderboardRead

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]

A_SST2 = (-1.1 + 0.65 + 0.4) / 3
A_OVERALL = (A_SST2 + 0.3) / 2


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@dataclass
class Board:
    sst2: Task
    snli: Task
    stsb: Task
    baseline: Submission
    a: Submission
    b: Submission
    c: Submission
    solo: Submission


def build(session: Session) -> Board:
    sst2, snli, stsb = (make_task(session, n) for n in ("SST-2", "SNLI", "STS-B"))
    baseline = make_entry(
        session,
        "ElasticBERT-base",
        # Inserted out of order: the curve must come back sorted by FLOPs.
        {sst2: [SST2_BASELINE[2], SST2_BASELINE[0], SST2_BASELINE[3], SST2_BASELINE[1]]}
        | {snli: [(4000, 91.3), (2000, 90.1)]},
        kind=SubmissionKind.SELF_REPORTED,
        params=109_000_000,
    )
    a = make_entry(
        session,
        "A",
        {sst2: [(500, 83.0), (1765, 87.0), (5000, 89.0)], snli: [(3000, 91.0)]},
        params=30_000_000,
        verified=True,
    )
    b = make_entry(session, "B", {sst2: [(1059, 86.0)], stsb: [(1000, 85.0)]}, params=67_000_000)
    c = make_entry(session, "C", {sst2: [(4237, 88.6)], snli: [(4000, 91.3)]}, params=40_000_000)
    solo = make_entry(session, "Solo", {stsb: [(800, 95.0)]}, params=20_000_000)
    # Points that must never show: no cost, no performance.
    add_points(session, a, sst2, [(None, 99.9)])
    add_points(session, c, sst2, [(900, None)])
    # Submissions that must never show, each with a point that would top every front.
    for kwargs in (
        {"visibility": Visibility.PRIVATE},
        {"hidden": True},
        {"state": SubmissionState.FAILED},
        {"state": SubmissionState.COUNTING},
        {"state": SubmissionState.QUEUED},
        {"state": SubmissionState.WITHDRAWN},
        {"state": SubmissionState.QUEUED, "kind": SubmissionKind.SELF_REPORTED},
    ):
        make_entry(session, None, {sst2: [(100, 99.0)], snli: [(100, 99.0)]}, params=1, **kwargs)
    set_task_baseline(session, task_name="SST-2", submission_id=baseline.id)
    set_task_baseline(session, task_name="snli", submission_id=baseline.id)  # any case
    return Board(sst2, snli, stsb, baseline, a, b, c, solo)


@pytest.fixture
def board(session: Session) -> Board:
    return build(session)


# --- task leaderboard -------------------------------------------------------------------------


def test_task_scores_and_points_match_hand_computed_values(session: Session, board: Board) -> None:
    lb = task_leaderboard(session, "SST-2")
    assert lb.task.has_baseline
    assert lb.note is None
    assert lb.baseline is not None
    assert [(p.flops / 1e6, p.performance) for p in lb.baseline.points] == SST2_BASELINE
    assert (lb.baseline.min_flops, lb.baseline.max_flops) == (1059e6, 4237e6)

    scores = {s.name: s.score for s in lb.submissions}
    assert scores["ElasticBERT-base"] == pytest.approx(0.0, abs=1e-12)
    assert scores["A"] == pytest.approx(A_SST2)
    assert scores["B"] == pytest.approx(1.9)
    assert scores["C"] == pytest.approx(0.0, abs=1e-12)
    # Ranked by task score: B 1.9, then baseline / C at 0 (tie), then A.
    assert [(s.name, s.rank) for s in lb.submissions] == [
        ("B", 1),
        ("ElasticBERT-base", 2),
        ("C", 2),
        ("A", 4),
    ]
    a = {p.flops_mean / 1e6: p for p in lb.points if p.submission_name == "A"}
    assert set(a) == {500, 1765, 5000}  # the point without FLOPs is not listed
    assert [a[f].position for f in (500, 1765, 5000)] == ["below", "within", "above"]
    assert [a[f].baseline_performance for f in (500, 1765, 5000)] == [
        pytest.approx(84.1),
        pytest.approx(86.35),  # halfway between (1412, 85.7) and (2118, 87.0)
        pytest.approx(88.6),
    ]
    assert [a[f].delta for f in (500, 1765, 5000)] == [
        pytest.approx(-1.1),
        pytest.approx(0.65),
        pytest.approx(0.4),
    ]
    assert a[1765].metrics == {"accuracy": 87.0}
    assert a[1765].flops_p10 == pytest.approx(1765e6 * 0.9)
    assert a[1765].params == 30_000_000
    assert a[1765].verified
    a_entry = next(s for s in lb.submissions if s.name == "A")
    assert (a_entry.points, a_entry.best_performance, a_entry.out_of_range) == (3, 89.0, True)
    base_points = [p for p in lb.points if p.is_baseline]
    assert [p.position for p in base_points] == ["within"] * 4  # endpoints count as within
    # Points come by submission rank, then FLOPs ascending.
    assert [p.submission_name for p in lb.points] == ["B"] + ["ElasticBERT-base"] * 4 + ["C"] + [
        "A"
    ] * 3
    assert [p.flops_mean for p in lb.points[1:5]] == sorted(p.flops_mean for p in lb.points[1:5])


def test_pareto_flags(session: Session, board: Board) -> None:
    lb = task_leaderboard(session, "SST-2")
    key = {p.result_id: (p.submission_name, p.flops_mean / 1e6) for p in lb.points}
    on_flops = {key[p.result_id] for p in lb.points if p.on_flops_front}
    # (1059, 84.1) loses to B's (1059, 86.0); (2118, 87.0) to A's cheaper (1765, 87.0);
    # the baseline's and C's identical (4237, 88.6) do not dominate each other.
    assert on_flops == {
        ("A", 500),
        ("B", 1059),
        ("A", 1765),
        ("ElasticBERT-base", 4237),
        ("C", 4237),
        ("A", 5000),
    }
    assert [key[i][1] for i in lb.flops_front] == [500, 1059, 1765, 4237, 4237, 5000]
    # By params, A's best point (30M, 89.0) beats everything bigger and A's own weaker points.
    assert [key[i] for i in lb.params_front] == [("A", 5000)]
    assert {key[p.result_id] for p in lb.points if p.on_params_front} == {("A", 5000)}


def test_task_without_baseline_has_no_scores(session: Session, board: Board) -> None:
    lb = task_leaderboard(session, "sts-b")
    assert lb.task.name == "STS-B"
    assert not lb.task.has_baseline
    assert lb.baseline is None
    assert lb.note is not None
    assert "No baseline" in lb.note
    assert all(s.score is None and not s.out_of_range for s in lb.submissions)
    assert all(p.delta is None and p.position is None for p in lb.points)
    # Without scores, ranked by best performance.
    assert [s.name for s in lb.submissions] == ["Solo", "B"]
    assert [s.rank for s in lb.submissions] == [1, 2]


def test_unknown_task(session: Session, board: Board) -> None:
    with pytest.raises(NotFoundError):
        task_leaderboard(session, "nope")


# --- overall ----------------------------------------------------------------------------------


def test_overall_scores_coverage_and_order(session: Session, board: Board) -> None:
    lb = overall_leaderboard(session)
    assert lb.track is None
    assert lb.ranked_by == "elue_score"
    assert [(t.name, t.family, t.has_baseline) for t in lb.tasks] == [
        ("SST-2", "sentiment", True),
        ("SNLI", "nli", True),
        ("STS-B", "similarity", False),
    ]
    assert [(f.family, f.tasks) for f in lb.families] == [
        ("sentiment", ("SST-2",)),
        ("nli", ("SNLI",)),
        ("similarity", ("STS-B",)),
    ]
    rows = {e.name: e for e in lb.entries}
    assert set(rows) == {"ElasticBERT-base", "A", "B", "C", "Solo"}  # none of the unlisted
    assert rows["A"].score == pytest.approx(A_OVERALL)
    assert rows["A"].task_scores == {"SST-2": pytest.approx(A_SST2), "SNLI": pytest.approx(0.3)}
    assert (rows["A"].tasks_covered, rows["A"].tasks_total) == (2, 2)
    assert rows["A"].out_of_range_tasks == ("SST-2",)
    assert rows["A"].best_performance == {"SST-2": 89.0, "SNLI": 91.0}
    assert rows["A"].average_performance == pytest.approx(90.0)
    assert rows["A"].verified
    assert not rows["A"].self_reported
    # B has the best score but covers one task of two: it ranks below every 2-task entry.
    assert rows["B"].score == pytest.approx(1.9)
    assert rows["B"].tasks_covered == 1
    assert set(rows["B"].task_scores) == {"SST-2"}
    assert rows["B"].best_performance == {"SST-2": 86.0, "STS-B": 85.0}
    assert (rows["Solo"].score, rows["Solo"].tasks_covered) == (None, 0)
    base = rows["ElasticBERT-base"]
    assert base.is_baseline
    assert base.self_reported
    assert base.baseline_for == ("SST-2", "SNLI")
    assert base.score == pytest.approx(0.0, abs=1e-12)
    # By score, as ELUE ranked (B's 1.9 is over one task: coverage 1/2 is shown beside it).
    assert [(e.name, e.rank) for e in lb.entries] == [
        ("B", 1),
        ("A", 2),
        ("ElasticBERT-base", 3),
        ("C", 3),
        ("Solo", 5),
    ]
    assert lb.coverage == "any"
    # The default view of the pages and API: entries covering every task with a baseline.
    full = overall_leaderboard(session, coverage="all")
    assert full.coverage == "all"
    assert [(e.name, e.rank) for e in full.entries] == [
        ("A", 1),
        ("ElasticBERT-base", 2),
        ("C", 2),
    ]


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        # Average performance (Solo: 95 on its one task), then tasks, then fewer params.
        (Track.M40, ["Solo", "A", "C"]),
        (Track.M55, ["Solo", "A", "C"]),
        (Track.M70, ["Solo", "A", "C", "B"]),
        (Track.M110, ["Solo", "A", "C", "ElasticBERT-base", "B"]),
    ],
)
def test_tracks_filter_and_order(
    session: Session, board: Board, track: Track, expected: list[str]
) -> None:
    lb = overall_leaderboard(session, track)
    assert (lb.track, lb.track_limit, lb.ranked_by) == (track, track.limit, "average_performance")
    assert [e.name for e in lb.entries] == expected
    assert [e.rank for e in lb.entries] == list(range(1, len(expected) + 1))
    assert all(e.params is not None and e.params <= track.limit for e in lb.entries)
    # With a point on every task (SST-2, SNLI, STS-B): nobody in this scenario.
    assert overall_leaderboard(session, track, coverage="all").entries == ()


def test_entry_without_params_is_in_no_track(session: Session, board: Board) -> None:
    make_entry(session, "Unsized", {board.sst2: [(2000, 88.0)]}, params=None)
    assert "Unsized" in {e.name for e in overall_leaderboard(session).entries}
    assert "Unsized" not in {e.name for e in overall_leaderboard(session, Track.M110).entries}


def test_point_params_fall_back_to_the_submission(session: Session, board: Board) -> None:
    sub = make_submission(session, "NoPointParams", params=12_000_000)
    add_points(session, sub, board.sst2, [(300, 95.0)], params=None)
    point = next(p for p in task_leaderboard(session, "SST-2").points if p.submission_id == sub.id)
    assert point.params == 12_000_000
    assert point.on_params_front


def test_baseline_that_is_not_listed_gives_no_scores(session: Session, board: Board) -> None:
    board.baseline.hidden = True
    session.flush()
    lb = task_leaderboard(session, "SST-2")
    assert lb.baseline is None
    assert not lb.task.has_baseline
    assert lb.note is not None
    assert "not listed" in lb.note
    overall = overall_leaderboard(session)
    assert all(e.tasks_total == 0 and e.score is None for e in overall.entries)


def test_a_partial_entry_is_ranked_by_its_score_and_left_out_of_the_all_tasks_view(
    session: Session,
) -> None:
    sst2, snli = make_task(session, "SST-2"), make_task(session, "SNLI")
    base = make_entry(session, "base", {sst2: [(1000, 80.0)], snli: [(1000, 80.0)]})
    both = make_entry(session, "both", {sst2: [(1000, 80.5)], snli: [(1000, 80.5)]})
    one = make_entry(session, "one", {sst2: [(1000, 95.0)]})
    for name in ("SST-2", "SNLI"):
        set_task_baseline(session, task_name=name, submission_id=base.id)
    entries = overall_leaderboard(session).entries
    assert [e.submission_id for e in entries] == [one.id, both.id, base.id]
    assert [e.score for e in entries] == [15.0, pytest.approx(0.5), pytest.approx(0.0)]
    complete = overall_leaderboard(session, coverage="all").entries
    assert [(e.submission_id, e.rank) for e in complete] == [(both.id, 1), (base.id, 2)]


# --- baseline designation ---------------------------------------------------------------------


def test_set_task_baseline_checks(session: Session, board: Board) -> None:
    with pytest.raises(NotFoundError):
        set_task_baseline(session, task_name="SST-2", submission_id=10_000)
    with pytest.raises(NotFoundError):
        set_task_baseline(session, task_name="nope", submission_id=board.a.id)
    with pytest.raises(InvalidInputError) as no_points:
        set_task_baseline(session, task_name="STS-B", submission_id=board.c.id)
    assert "no point on STS-B" in str(no_points.value)
    private = make_entry(
        session, "private", {board.stsb: [(100, 1.0)]}, visibility=Visibility.PRIVATE
    )
    with pytest.raises(InvalidInputError):
        set_task_baseline(session, task_name="STS-B", submission_id=private.id)
    failed = make_entry(session, "failed", {board.stsb: [(100, 1.0)]}, state=SubmissionState.FAILED)
    with pytest.raises(InvalidInputError):
        set_task_baseline(session, task_name="STS-B", submission_id=failed.id)
    assert board.stsb.baseline_submission_id is None

    set_task_baseline(session, task_name="STS-B", submission_id=board.b.id)
    lb = task_leaderboard(session, "STS-B")
    assert lb.baseline is not None
    assert lb.baseline.submission_id == board.b.id
    # A one-point curve is flat: Solo (95.0) is 10 above B's 85.0.
    assert {s.name: s.score for s in lb.submissions} == {"Solo": 10.0, "B": 0.0}
    clear_task_baseline(session, task_name="STS-B")
    assert task_leaderboard(session, "STS-B").baseline is None


# --- CSV --------------------------------------------------------------------------------------


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_the_same_rows(session: Session, board: Board) -> None:
    lb = overall_leaderboard(session)
    rows = _rows(overall_csv(lb))
    assert [(int(r["rank"]), int(r["submission_id"])) for r in rows] == [
        (e.rank, e.submission_id) for e in lb.entries
    ]
    a = next(r for r in rows if r["name"] == "A")
    assert float(a["score"]) == pytest.approx(A_OVERALL)
    assert float(a["score_SNLI"]) == pytest.approx(0.3)
    assert (a["score_STS-B"], a["best_SST-2"], a["verified"]) == ("", "89.0", "true")
    assert next(r for r in rows if r["name"] == "Solo")["score"] == ""

    task = task_leaderboard(session, "SST-2")
    points = _rows(task_csv(task))
    assert [int(r["result_id"]) for r in points] == [p.result_id for p in task.points]
    first = points[-1]
    assert (first["name"], first["position"], first["on_flops_front"]) == ("A", "above", "true")
    assert float(first["delta"]) == pytest.approx(0.4)
    assert float(first["task_score"]) == pytest.approx(A_SST2)


# --- cache ------------------------------------------------------------------------------------


def test_cache_hits_until_something_changes(session: Session, board: Board) -> None:
    first = overall_leaderboard(session)
    assert overall_leaderboard(session) is first
    task = task_leaderboard(session, "SST-2")
    assert task_leaderboard(session, "SST-2") is task

    # A result changes (ORM): performance of C's SNLI point.
    result = session.scalar(
        select(Result).where(Result.submission_id == board.c.id, Result.task_id == board.snli.id)
    )
    assert result is not None
    result.performance = 92.3
    session.flush()
    c = next(e for e in overall_leaderboard(session).entries if e.name == "C")
    assert c.task_scores["SNLI"] == pytest.approx(1.0)
    assert task_leaderboard(session, "SST-2") is not task  # any change recomputes

    # Hidden by a Core UPDATE (onupdate still stamps updated_at).
    session.execute(update(Submission).where(Submission.id == board.c.id).values(hidden=True))
    assert "C" not in {e.name for e in overall_leaderboard(session).entries}
    assert "C" not in {s.name for s in task_leaderboard(session, "SST-2").submissions}

    # Visibility changed through the ORM.
    board.b.visibility = Visibility.PRIVATE
    session.flush()
    assert "B" not in {e.name for e in overall_leaderboard(session, Track.M110).entries}

    # Baseline changed: A becomes the SNLI baseline, so A scores 0 there.
    set_task_baseline(session, task_name="SNLI", submission_id=board.a.id)
    a = next(e for e in overall_leaderboard(session).entries if e.name == "A")
    assert a.task_scores["SNLI"] == 0.0

    # A result deleted.
    session.execute(delete(Result).where(Result.submission_id == board.solo.id))
    assert "Solo" not in {e.name for e in overall_leaderboard(session).entries}


def test_board_version_bumps_only_on_changes_a_public_board_can_show(
    session: Session, board: Board
) -> None:
    session.commit()
    seen = [board_version(session)]

    def bumped() -> bool:
        session.commit()
        now = board_version(session)
        new = now != seen[-1]
        seen.append(now)
        return new

    assert not bumped()  # reading changes nothing

    # A private submission's life until it is done: its progress alters no public board.
    private = make_submission(
        session, "mine", state=SubmissionState.QUEUED, visibility=Visibility.PRIVATE
    )
    assert not bumped()
    private.state = SubmissionState.SCORING
    private.timeline = [*private.timeline, {"state": "scoring"}]
    private.state_message = "Scoring SST-2"
    assert not bumped()
    add_points(session, private, board.sst2, [(900, 90.0)])
    assert not bumped()
    result = session.scalar(select(Result).where(Result.submission_id == private.id))
    assert result is not None
    result.flops_mean = 800e6
    assert not bumped()
    private.state = SubmissionState.DONE
    private.name = "mine, renamed"
    assert not bumped()
    session.execute(
        update(Submission).where(Submission.id == private.id).values(state_message="again")
    )
    assert not bumped()  # a Core UPDATE of columns no board reads
    private.visibility = Visibility.PUBLIC  # now it is listed
    assert bumped()

    # A listed entry: a result's score or cost, its listing, its details.
    result.performance = 91.0
    assert bumped()
    result.cost_status = "recounted"  # a column no board reads
    result.device = "cpu"
    assert not bumped()
    private.hidden = True
    assert bumped()
    private.hidden = False
    assert bumped()
    board.a.verified = False
    assert bumped()
    board.b.state = SubmissionState.WITHDRAWN
    assert bumped()
    session.execute(update(Submission).where(Submission.id == board.c.id).values(hidden=True))
    assert bumped()
    session.execute(
        update(Result).where(Result.submission_id == board.a.id).values(performance=50.0)
    )
    assert bumped()

    # Tasks and baselines.
    board.sst2.display_name = "SST-2 (binary)"
    assert bumped()
    clear_task_baseline(session, task_name="SST-2")
    assert bumped()
    set_task_baseline(session, task_name="SST-2", submission_id=board.baseline.id)
    assert bumped()

    # A rolled-back change bumps nothing.
    board.a.name = "A2"
    session.flush()
    session.rollback()
    assert board_version(session) == seen[-1]


def test_own_uncommitted_writes_show_at_once_and_vanish_on_rollback(
    session: Session, board: Board
) -> None:
    session.commit()
    before = overall_leaderboard(session)
    board.a.name = "A, renamed"
    session.flush()
    assert "A, renamed" in {e.name for e in overall_leaderboard(session).entries}
    assert board_version(session) == board_version(session)  # not bumped before the commit
    session.rollback()
    assert overall_leaderboard(session) is before


# --- API --------------------------------------------------------------------------------------


@pytest.fixture
def api_board(api: Api) -> tuple[Api, Board]:
    with api.db() as session:
        built = build(session)
    return api, built


def test_api_overall_json_and_csv(api_board: tuple[Api, Board]) -> None:
    api, _board = api_board
    default = api.client.get("/api/v1/leaderboard").json()
    assert default["coverage"] == "all"
    assert [e["name"] for e in default["entries"]] == ["A", "ElasticBERT-base", "C"]
    response = api.client.get("/api/v1/leaderboard", params={"coverage": "any"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["total"], body["offset"], body["limit"], body["coverage"]) == (5, 0, 100, "any")
    assert [e["name"] for e in body["entries"]] == ["B", "A", "ElasticBERT-base", "C", "Solo"]
    assert api.client.get("/api/v1/leaderboard?coverage=some").status_code == 422
    assert body["entries"][1]["score"] == pytest.approx(A_OVERALL)
    assert body["entries"][1]["task_scores"]["SST-2"] == pytest.approx(A_SST2)
    assert [f["family"] for f in body["families"]] == ["sentiment", "nli", "similarity"]
    assert body["tasks"][2] == {
        "name": "STS-B",
        "display_name": "STS-B",
        "family": "similarity",
        "metric": "pearson_spearman",
        "has_baseline": False,
    }

    as_csv = api.client.get("/api/v1/leaderboard", params={"format": "csv", "coverage": "any"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert 'filename="leaderboard-any-coverage.csv"' in as_csv.headers["content-disposition"]
    rows = _rows(as_csv.text)
    assert [int(r["submission_id"]) for r in rows] == [e["submission_id"] for e in body["entries"]]
    assert [float(r["score"]) if r["score"] else None for r in rows] == [
        pytest.approx(e["score"]) if e["score"] is not None else None for e in body["entries"]
    ]

    page = api.client.get(
        "/api/v1/leaderboard", params={"offset": 1, "limit": 2, "coverage": "any"}
    ).json()
    assert [e["name"] for e in page["entries"]] == ["A", "ElasticBERT-base"]
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)


def test_api_tracks(api_board: tuple[Api, Board]) -> None:
    api, _ = api_board
    body = api.client.get("/api/v1/leaderboard", params={"track": "70M", "coverage": "any"}).json()
    assert (body["track"], body["track_limit"], body["ranked_by"]) == (
        "70M",
        70_000_000,
        "average_performance",
    )
    assert [e["name"] for e in body["entries"]] == ["Solo", "A", "C", "B"]
    as_csv = api.client.get(
        "/api/v1/leaderboard", params={"track": "70M", "format": "csv", "coverage": "any"}
    )
    assert [r["name"] for r in _rows(as_csv.text)] == ["Solo", "A", "C", "B"]
    assert 'filename="leaderboard-70M-any-coverage.csv"' in as_csv.headers["content-disposition"]

    bad = api.client.get("/api/v1/leaderboard", params={"track": "30M"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_request"
    assert api.client.get("/api/v1/leaderboard", params={"format": "xml"}).status_code == 422


def test_api_task_leaderboard(api_board: tuple[Api, Board]) -> None:
    api, _ = api_board
    response = api.client.get("/api/v1/tasks/SST-2/leaderboard")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scored"]
    assert body["note"] is None
    assert [[p["flops"] / 1e6, p["performance"]] for p in body["baseline"]["points"]] == [
        list(p) for p in SST2_BASELINE
    ]
    a = [p for p in body["points"] if p["submission_name"] == "A"]
    assert [(p["position"], p["on_flops_front"]) for p in a] == [
        ("below", True),
        ("within", True),
        ("above", True),
    ]
    assert [p["delta"] for p in a] == [
        pytest.approx(-1.1),
        pytest.approx(0.65),
        pytest.approx(0.4),
    ]
    ids = [p["result_id"] for p in body["points"]]
    assert set(body["flops_front"]) <= set(ids)

    as_csv = api.client.get("/api/v1/tasks/sst-2/leaderboard", params={"format": "csv"})
    assert as_csv.status_code == 200
    assert 'filename="SST-2-leaderboard.csv"' in as_csv.headers["content-disposition"]
    assert [int(r["result_id"]) for r in _rows(as_csv.text)] == ids

    unscored = api.client.get("/api/v1/tasks/STS-B/leaderboard").json()
    assert not unscored["scored"]
    assert "No baseline" in unscored["note"]
    assert unscored["baseline"] is None

    missing = api.client.get("/api/v1/tasks/nope/leaderboard")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_api_serves_fresh_data_after_a_write(api_board: tuple[Api, Board]) -> None:
    api, board = api_board
    first = api.client.get("/api/v1/leaderboard")
    etag = first.headers["etag"]
    again = api.client.get("/api/v1/leaderboard", headers={"If-None-Match": etag})
    assert again.status_code == 304

    with api.db() as session:  # another connection, committed: as another process would
        session.execute(update(Submission).where(Submission.id == board.a.id).values(hidden=True))
    after = api.client.get("/api/v1/leaderboard", headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert "A" not in [e["name"] for e in after.json()["entries"]]
    task = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert "A" not in {s["name"] for s in task["submissions"]}

    with api.db() as session:
        session.execute(
            update(Result)
            .where(Result.submission_id == board.b.id, Result.task_id == board.sst2.id)
            .values(performance=90.0)
        )
    entries = api.client.get("/api/v1/leaderboard?coverage=any").json()["entries"]
    b = next(e for e in entries if e["name"] == "B")
    assert b["score"] == pytest.approx(90.0 - 84.1)


def test_openapi_documents_the_routes(api: Api) -> None:
    schema = api.client.get("/api/openapi.json").json()
    overall = schema["paths"]["/api/v1/leaderboard"]["get"]
    assert overall["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OverallLeaderboardRead"
    }
    assert "text/csv" in overall["responses"]["200"]["content"]
    assert {p["name"] for p in overall["parameters"]} >= {"track", "format", "offset", "limit"}
    task = schema["paths"]["/api/v1/tasks/{task}/leaderboard"]["get"]
    assert "TaskLeaderboardRead" in str(task["responses"]["200"])
    names = schema["components"]["schemas"]
    assert "LeaderboardPointRead" in names
    assert not [n for n in names if n.startswith(("server__", "web__"))]  # no name clashes


_OTHER_PROCESS = """
import sys
from sqlalchemy import update
from core.db.session import make_engine, transaction
from core.models import Submission
with transaction(make_engine(sys.argv[1])) as session:
    session.execute(update(Submission).where(Submission.id == int(sys.argv[2])).values(hidden=True))
"""


def test_writes_from_another_process_show_at_once(api_board: tuple[Api, Board]) -> None:
    api, board = api_board
    assert "C" in [e["name"] for e in api.client.get("/api/v1/leaderboard").json()["entries"]]
    version = api.client.get("/api/v1/leaderboard").headers["etag"]
    # A worker or another server process: its commit bumps the version row this one reads.
    subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, api.settings.database_url, str(board.c.id)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    after = api.client.get("/api/v1/leaderboard", headers={"If-None-Match": version})
    assert after.status_code == 200
    assert "C" not in [e["name"] for e in after.json()["entries"]]
    task = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert "C" not in {s["name"] for s in task["submissions"]}


def test_api_pages_and_search(api_board: tuple[Api, Board]) -> None:
    api, _ = api_board
    full = api.client.get("/api/v1/leaderboard").json()
    names = [e["name"] for e in full["entries"]]
    paged = [
        e["name"]
        for offset in range(0, 5, 2)
        for e in api.client.get(
            "/api/v1/leaderboard", params={"offset": offset, "limit": 2}
        ).json()["entries"]
    ]
    assert paged == names
    assert api.client.get("/api/v1/leaderboard", params={"limit": 1001}).status_code == 422
    assert api.client.get("/api/v1/leaderboard", params={"offset": -1}).status_code == 422

    found = api.client.get("/api/v1/leaderboard", params={"q": "elasticbert"}).json()
    assert [e["name"] for e in found["entries"]] == ["ElasticBERT-base"]
    assert found["total"] == 1
    assert [e["name"] for e in api.client.get("/api/v1/leaderboard?q=BASE").json()["entries"]] == [
        "ElasticBERT-base"
    ]
    assert api.client.get("/api/v1/leaderboard?q=lasticbert").json()["total"] == 0  # no infix
    as_csv = api.client.get("/api/v1/leaderboard", params={"q": "c", "format": "csv"})
    assert [r["name"] for r in _rows(as_csv.text)] == ["C"]

    task = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert (task["total"], task["offset"], task["limit"]) == (4, 0, 100)
    pages = [
        api.client.get("/api/v1/tasks/SST-2/leaderboard", params={"offset": o, "limit": 1}).json()
        for o in range(4)
    ]
    assert [p["submissions"][0]["name"] for p in pages] == [s["name"] for s in task["submissions"]]
    assert [pt["result_id"] for p in pages for pt in p["points"]] == [
        pt["result_id"] for pt in task["points"]
    ]
    for p in pages:
        assert {pt["submission_id"] for pt in p["points"]} == {p["submissions"][0]["submission_id"]}
        assert p["total_points"] == len(task["points"])
        assert {pt["result_id"] for pt in p["front_points"]} == set(task["flops_front"]) | set(
            task["params_front"]
        )
    beyond = api.client.get("/api/v1/tasks/SST-2/leaderboard", params={"offset": 10}).json()
    assert (beyond["submissions"], beyond["points"], beyond["total"]) == ([], [], 4)
    one = api.client.get(
        "/api/v1/tasks/SST-2/leaderboard", params={"format": "csv", "offset": 1, "limit": 1}
    )
    second = task["submissions"][1]["submission_id"]
    assert {int(r["submission_id"]) for r in _rows(one.text)} == {second}


def _same_keys(model: type[Any], data: dict[str, Any]) -> None:
    assert set(data) == {f.name for f in dataclasses.fields(model)}, model.__name__


def test_api_bodies_match_the_documented_models(api_board: tuple[Api, Board]) -> None:
    api, _ = api_board
    for path in ("/api/v1/leaderboard", "/api/v1/leaderboard?track=110M&limit=2"):
        body = api.client.get(path).json()
        TypeAdapter(OverallLeaderboardRead).validate_python(body)
        _same_keys(OverallLeaderboardRead, body)
        for entry in body["entries"]:
            _same_keys(OverallEntryRead, entry)
        _same_keys(LeaderboardTaskRead, body["tasks"][0])
        _same_keys(LeaderboardFamilyRead, body["families"][0])
    body = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    TypeAdapter(TaskLeaderboardRead).validate_python(body)
    _same_keys(TaskLeaderboardRead, body)
    _same_keys(LeaderboardTaskRead, body["task"])
    _same_keys(LeaderboardBaselineRead, body["baseline"])
    _same_keys(LeaderboardBaselinePointRead, body["baseline"]["points"][0])
    for point in body["points"]:
        _same_keys(LeaderboardPointRead, point)
    for entry in body["submissions"]:
        _same_keys(TaskLeaderboardEntryRead, entry)


# --- verified only (issue 11) -----------------------------------------------------------------


def test_verified_only_boards_rank_verified_entries_among_themselves(
    session: Session, board: Board
) -> None:
    """Only A is verified: the verified boards hold A and the baseline, ranked from 1, with the
    fronts remade among their points; a point that was not reproduced leaves them."""
    full = overall_leaderboard(session)
    only = overall_leaderboard(session, verified_only=True)
    assert {e.name for e in full.entries} > {e.name for e in only.entries}
    assert [(e.name, e.rank) for e in only.entries] == [
        (e.name, r)
        for r, e in enumerate(
            (e for e in full.entries if e.name in ("A", "ElasticBERT-base")), start=1
        )
    ]
    by_name = {e.name: e for e in only.entries}
    assert by_name["A"].verified
    assert by_name["A"].score == next(e.score for e in full.entries if e.name == "A")

    task = task_leaderboard(session, "SST-2", verified_only=True)
    assert {p.submission_name for p in task.points} == {"A", "ElasticBERT-base"}
    assert all(p.verified for p in task.points if p.submission_name == "A")
    assert [s.rank for s in task.submissions] == list(range(1, len(task.submissions) + 1))
    # C's 4237 MFLOPs point (88.6) is gone, so A's 5000 MFLOPs point (89.0) keeps the top
    front = [(p.submission_name, p.flops_mean / 1e6) for p in task.points if p.on_flops_front]
    assert ("A", 5000) in front
    assert task.baseline is not None

    # One of A's points not reproduced: it leaves the verified task board
    session.execute(
        update(Result)
        .where(Result.submission_id == board.a.id, Result.flops_mean == 5000 * 1e6)
        .values(verify_status="not_reproduced")
    )
    session.flush()
    again = task_leaderboard(session, "SST-2", verified_only=True)
    assert 5000.0 not in {p.flops_mean / 1e6 for p in again.points if p.submission_name == "A"}
    assert any(
        p.flops_mean == 5000e6 and not p.verified
        for p in task_leaderboard(session, "SST-2").points
        if p.submission_name == "A"
    )


def test_api_pages_and_plots_take_verified_only(api_board: tuple[Api, Board]) -> None:
    api, _ = api_board
    body = api.client.get("/api/v1/leaderboard", params={"verified": "true"}).json()
    assert body["verified_only"] is True
    assert {e["name"] for e in body["entries"]} == {"A", "ElasticBERT-base"}
    assert [e["rank"] for e in body["entries"]] == [1, 2]
    as_csv = api.client.get("/api/v1/leaderboard", params={"verified": "true", "format": "csv"})
    assert "leaderboard-verified.csv" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {r["name"] for r in rows} == {"A", "ElasticBERT-base"}
    task = api.client.get("/api/v1/tasks/SST-2/leaderboard", params={"verified": "true"}).json()
    assert task["verified_only"] is True
    assert {p["submission_name"] for p in task["points"]} == {"A", "ElasticBERT-base"}
    assert all(p["verified"] for p in task["points"] if p["submission_name"] == "A")
    full = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert not any(p["verified"] for p in full["points"] if p["submission_name"] == "C")
    plot = api.client.get("/tasks/SST-2/plot.json", params={"all": 1, "verified": 1}).json()
    assert {s[1] for s in plot["subs"]} == {"A", "ElasticBERT-base"}
    assert all(len(p) == 12 for p in plot["points"])  # ..., verified, point name
    home = api.client.get("/", params={"verified": 1}).text
    assert 'aria-checked="true"' in home
    assert ">C<" not in home
    page = api.client.get("/tasks/SST-2", params={"verified": 1}).text
    assert 'aria-checked="true"' in page
    assert "/api/v1/tasks/SST-2/leaderboard?verified=true" in page


def test_baseline_labelled_published_performance_platform_counted_cost(
    api_board: tuple[Api, Board],
) -> None:
    """The seeded baseline's provenance (published scores, FLOPs counted here) is named on the
    API, the boards, the plot legend and the submission page; the task page says, next to the
    points cheaper than its cheapest point, how they are compared."""
    api, board = api_board
    label = "published performance, platform-counted cost"
    with api.db() as session:
        session.execute(
            update(Result)
            .where(Result.submission_id == board.baseline.id)
            .values(metrics={"performance_source": "published", "flops_source": "counted"})
        )
    overall = api.client.get("/api/v1/leaderboard").json()
    base = next(e for e in overall["entries"] if e["is_baseline"])
    assert base["baseline_label"] == label
    assert all(e["baseline_label"] is None for e in overall["entries"] if not e["is_baseline"])
    task = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert task["baseline"]["label"] == label
    assert f"Baseline: {label}" in api.client.get("/").text
    page = api.client.get("/tasks/SST-2").text
    assert f"({label})" in page
    assert f"Baseline: {label}" in page
    # A is below the range (500 MFLOPs < 1,059): the note names the rule and the point used.
    assert "cheaper than the cheapest baseline point" in page
    assert "compared with that point's performance, 84.10 at 1.06 GFLOPs" in page
    plot = api.client.get("/tasks/SST-2/plot.json").json()
    assert plot["baseline"]["label"] == label
    submission = api.client.get(f"/submissions/{board.baseline.id}").text
    assert "The baseline of SNLI, SST-2: <strong>" + label in submission
    assert "baseline-label" not in api.client.get(f"/submissions/{board.a.id}").text
