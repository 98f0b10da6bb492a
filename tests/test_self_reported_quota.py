"""Self-reported entries count against a daily quota of their own (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select, update

from core.models import Submission, SubmissionKind
from core.settings import LimitsSettings

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]


@pytest.fixture
def limited(seeded_api_db: str, tmp_path: Path) -> Iterator[Api]:
    from tests.api_helpers import Api

    app = Api.start(seeded_api_db, tmp_path / "var", limits=LimitsSettings(self_reported_per_day=2))
    yield app
    app.close()


def _entry(name: str) -> dict[str, object]:
    return {
        "name": name,
        "paper_url": "https://arxiv.org/abs/2110.07038",
        "params": 1_000_000,
        "points": [{"task": "SST-2", "point": "a", "performance": 80.0, "flops": 1e9}],
    }


def test_self_reported_entries_count_against_a_quota(limited: Api) -> None:
    alice, bob = limited.user(), limited.user()
    for n in range(2):
        made = limited.client.post("/api/v1/papers", headers=alice.headers, json=_entry(f"e{n}"))
        assert made.status_code == 201, made.text
    # Withdrawing one buys nothing back.
    with limited.db() as session:
        some_id = session.scalars(
            select(Submission.id).where(Submission.owner_id == alice.id)
        ).first()
    assert limited.client.delete(
        f"/api/v1/submissions/{some_id}", headers=alice.headers
    ).status_code in (200, 204)
    refused = limited.client.post("/api/v1/papers", headers=alice.headers, json=_entry("e2"))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert 23 * 3600 < int(refused.headers["retry-after"]) <= 24 * 3600
    with limited.db() as session:  # nothing stored by the refusal
        count = select(func.count()).where(Submission.kind == SubmissionKind.SELF_REPORTED)
        assert session.scalar(count) == 2
    # Another user has a quota of their own; a day later Alice has hers back.
    assert (
        limited.client.post("/api/v1/papers", headers=bob.headers, json=_entry("b")).status_code
        == 201
    )
    with limited.db() as session:
        session.execute(
            update(Submission)
            .where(Submission.owner_id == alice.id)
            .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=25))
        )
    assert (
        limited.client.post("/api/v1/papers", headers=alice.headers, json=_entry("e3")).status_code
        == 201
    )
