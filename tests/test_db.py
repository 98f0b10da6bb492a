"""Migrations on SQLite and PostgreSQL, the schema they make, and compact array storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import core.models
from core.arrays import pack_array, unpack_array
from core.db import migrate
from core.db.base import Base
from core.db.session import make_engine
from core.models import Result, ResultCost, Submission, SubmissionState, User

TABLES = {
    "users",
    "api_tokens",
    "tasks",
    "task_examples",
    "task_gold",
    "submissions",
    "submission_files",
    "submission_weights",
    "results",
    "result_costs",
    "task_uncertainty",
    "submission_uncertainty",
    "login_attempts",
    "board_version",
    "user_sessions",
}


def _fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    url: str = request.getfixturevalue("pg_databases").create()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _fresh_url(request, tmp_path)


def test_migrations_match_models_and_reverse(fresh_url: str) -> None:
    migrate.upgrade(fresh_url)
    engine = make_engine(fresh_url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        fks = inspect(conn).get_foreign_keys("tasks")
        assert [fk["name"] for fk in fks] == ["fk_tasks_baseline_submission_id_submissions"]
    migrate.downgrade(fresh_url, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(fresh_url)  # and up again after a full downgrade
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
    engine.dispose()


def test_models_registered() -> None:
    assert set(core.models.__all__) >= {"Task", "TaskGold", "Result", "ResultCost"}
    assert set(Base.metadata.tables) == TABLES


def _user(session: Session, email: str = "a@example.org") -> User:
    user = User(email=email, display_name="A", password_hash="x")
    session.add(user)
    session.flush()
    return user


def test_submission_names_unique_per_owner(session: Session) -> None:
    alice, bob = _user(session), _user(session, "b@example.org")
    session.add_all(
        [Submission(owner_id=alice.id, name="tiny"), Submission(owner_id=bob.id, name="tiny")]
    )
    session.flush()
    session.add(Submission(owner_id=alice.id, name="tiny"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_submission_defaults_and_cost_roundtrip(seeded_session: Session) -> None:
    session = seeded_session
    owner = _user(session)
    sub = Submission(owner_id=owner.id, name="dan")
    session.add(sub)
    session.flush()
    assert sub.state is SubmissionState.QUEUED
    assert sub.timeline == []
    task_id = session.scalar(select(core.models.Task.id).where(core.models.Task.name == "SST-2"))
    assert task_id is not None
    result = Result(submission_id=sub.id, task_id=task_id, point="a", performance=80.0)
    session.add(result)
    session.flush()
    flops = np.linspace(1e9, 5e9, 2210)
    session.add(ResultCost(result_id=result.id, n=flops.size, flops=pack_array(flops)))
    session.flush()
    session.expire_all()
    stored = session.get(ResultCost, result.id)
    assert stored is not None
    np.testing.assert_array_equal(unpack_array(stored.flops), flops)
    # Compact: a few bytes per sample at most, not a row per sample.
    assert len(stored.flops) < flops.nbytes


@given(
    hnp.arrays(dtype=st.sampled_from([np.float64, np.int64]), shape=hnp.array_shapes(max_dims=1))
)
def test_pack_roundtrip(values: np.ndarray) -> None:
    out = unpack_array(pack_array(values))
    assert out.dtype == values.dtype
    np.testing.assert_array_equal(out, values)


def test_unpack_refuses_pickles() -> None:
    with pytest.raises(TypeError):
        pack_array(np.array([object()], dtype=object))
    import io
    import zlib

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        unpack_array(zlib.compress(buf.getvalue()))
