"""Boards too slow to make inline: served from the previous version while recomputed, bounded.

`core.leaderboard.cache` rule 4. A real board (tests.test_leaderboard's scenario) is made
"slow" by setting the cache's `sync_budget` to 0, so every board counts as too slow to make
inline; writes from another process are a real subprocess, or a bare connection (no Session
events: to the cache exactly what another process's commit is).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text, update

from core.db.session import engine_for
from core.leaderboard import cache
from core.models import Submission, SubmissionState, Visibility
from tests.factories import make_submission
from tests.test_leaderboard import _OTHER_PROCESS, Board, build

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every board counts as too slow to make inline."""
    cache.clear()
    monkeypatch.setattr(cache, "sync_budget", 0.0)
    yield
    cache.clear()


@pytest.fixture
def api_board(api: Api, slow: None) -> tuple[Api, Board]:
    with api.db() as session:
        built = build(session)
    return api, built


def _names(api: Api, **params: str) -> list[str]:
    params.setdefault("coverage", "any")  # every entry (B covers one task of two)
    body = api.client.get("/api/v1/leaderboard", params=params).json()
    return [e["name"] for e in body["entries"]]


def _hide_elsewhere(api: Api, submission_id: int) -> None:
    """Hide a submission and bump the version outside any Session (as another process)."""
    with engine_for(api.settings.database_url).begin() as conn:
        conn.execute(
            text("UPDATE submissions SET hidden = :t WHERE id = :id"),
            {"t": True, "id": submission_id},
        )
        conn.execute(text("UPDATE board_version SET version = version + 1 WHERE id = 1"))


def test_another_process_write_is_served_stale_then_fresh(api_board: tuple[Api, Board]) -> None:
    api, board = api_board
    assert "C" in _names(api)
    assert _names(api, q="c") == ["C"]  # the search index of this board
    home = api.client.get("/")
    assert "C" in home.text
    stale_before = cache.stale_hits

    subprocess.run(  # a worker or another server process hides C and commits
        [sys.executable, "-c", _OTHER_PROCESS, api.settings.database_url, str(board.c.id)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    assert "C" in _names(api)  # the previous board, while the new one is made
    assert cache.stale_hits > stale_before
    assert cache.wait_refreshed(60)
    assert "C" not in _names(api)
    assert _names(api, q="c") == []  # the index was remade from the new board
    api.client.get("/")  # served the previous page's board, refreshing it
    assert cache.wait_refreshed(60)
    assert ">C<" not in api.client.get("/").text
    task = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert cache.wait_refreshed(60)
    task = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert "C" not in {s["name"] for s in task["submissions"]}


def test_stale_reads_are_bounded_by_max_stale(
    api_board: tuple[Api, Board], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, board = api_board
    assert "C" in _names(api)
    monkeypatch.setattr(cache, "max_stale", 0.0)
    _hide_elsewhere(api, board.c.id)
    assert "C" not in _names(api)  # waited for the new board: nothing stale is served


def test_this_process_sees_its_own_public_write_at_once(api_board: tuple[Api, Board]) -> None:
    api, board = api_board
    assert "B" in _names(api)
    stale_before = cache.stale_hits
    with api.db() as session:  # committed by this process (a page or API write)
        session.execute(update(Submission).where(Submission.id == board.b.id).values(hidden=True))
    assert "B" not in _names(api)
    task = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    assert "B" not in {s["name"] for s in task["submissions"]}
    assert cache.stale_hits == stale_before


def test_private_progress_invalidates_nothing(api_board: tuple[Api, Board]) -> None:
    api, _ = api_board
    with api.db() as session:
        private = make_submission(
            session, "mine", visibility=Visibility.PRIVATE, state=SubmissionState.QUEUED
        )
    first = api.client.get("/api/v1/leaderboard")
    misses = cache.misses
    for state in (SubmissionState.SCORING, SubmissionState.COUNTING, SubmissionState.DONE):
        with api.db() as session:  # the pipeline moves it on (ORM: inspected row by row)
            row = session.get(Submission, private.id)
            assert row is not None
            row.state = state
            row.state_message = f"now {state.value}"
        again = api.client.get(
            "/api/v1/leaderboard", headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
    assert cache.misses == misses  # nothing was recomputed
    assert cache.stale_hits == 0

    _hide_elsewhere(api, private.id)  # a bump that comes from elsewhere does recompute
    api.client.get("/api/v1/leaderboard")
    assert cache.wait_refreshed(60)
    assert cache.misses > misses
