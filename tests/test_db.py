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
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import core.models
from core.arrays import pack_array, unpack_array
from core.db import migrate
from core.db.base import Base
from core.db.session import make_engine
from core.models import Result, ResultCost, Submission, SubmissionState, Task, User

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
    "board_changes",
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


def test_submission_names_unique_up_to_case_and_operator_names_unique(session: Session) -> None:
    alice = _user(session)
    session.add(Submission(owner_id=alice.id, name="Tiny  BERT"))
    session.flush()
    nested = session.begin_nested()
    session.add(Submission(owner_id=alice.id, name="tiny bert"))
    with pytest.raises(IntegrityError):
        session.flush()
    nested.rollback()
    session.add_all(
        [Submission(owner_id=None, name="Op"), Submission(owner_id=alice.id, name="op")]
    )
    session.flush()  # a user's row is not held to the operator's index
    session.add(Submission(owner_id=None, name="OP"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_migration_0016_renames_existing_duplicates_and_reserved_names(fresh_url: str) -> None:
    """Rows that break the new rule are renamed (" #<id>"), the oldest keeping its name."""
    migrate.upgrade(fresh_url)
    engine = make_engine(fresh_url)
    with Session(engine) as s, s.begin():
        alice = _user(s)
        first = Submission(owner_id=alice.id, name="DAN")
        s.add_all([first, Submission(owner_id=None, name="ElasticBERT-base (published)")])
        s.flush()
        alice_id, template = alice.id, first.id
    migrate.downgrade(fresh_url, "0007")
    with engine.begin() as conn:
        columns = [
            c["name"]
            for c in inspect(conn).get_columns("submissions")
            if c["name"] not in ("id", "name", "owner_id")
        ]
        listed = ", ".join(columns)
        copy = text(
            f"INSERT INTO submissions (name, owner_id, {listed}) "
            f"SELECT :name, :owner, {listed} FROM submissions WHERE id = :id"
        )
        for name, owner in [
            ("dan", alice_id),  # the same name as "DAN" up to case
            ("D A N", alice_id),  # a different name
            ("elasticbert-base (published)", alice_id),  # an operator entry's name
            ("Baseline", alice_id),  # reserved
            ("Shared", alice_id),  # the name of an operator entry (below): the operator's wins
            ("shared", None),
        ]:
            conn.execute(copy, {"name": name, "owner": owner, "id": template})
    migrate.upgrade(fresh_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, owner_id, name FROM submissions ORDER BY id")).all()
    engine.dispose()
    names = [(owner, name) for _, owner, name in rows]
    ids = [sid for sid, _, _ in rows]
    assert names == [
        (alice_id, "DAN"),
        (None, "ElasticBERT-base (published)"),
        (alice_id, f"dan #{ids[2]}"),
        (alice_id, "D A N"),
        (alice_id, f"elasticbert-base (published) #{ids[4]}"),
        (alice_id, f"Baseline #{ids[5]}"),
        (alice_id, f"Shared #{ids[6]}"),
        (None, "shared"),
    ]


def test_migration_0015_drops_result_baseline_delta_and_restores_it(fresh_url: str) -> None:
    """Up: the unused column is gone and the rows stay; down: it is back, empty."""
    migrate.upgrade(fresh_url)
    engine = make_engine(fresh_url)
    with Session(engine) as s, s.begin():
        sub = Submission(owner_id=_user(s).id, name="kept")
        s.add(sub)
        s.flush()
        task = Task(
            name="T",
            display_name="T",
            family="nli",
            metric="accuracy",
            label_kind="classification",
            manifest={},
            test_size=1,
            test_sha256="x",
            gold_sha256="y",
        )
        s.add(task)
        s.flush()
        task_id = task.id
        s.add(Result(submission_id=sub.id, task_id=task_id, point="a", performance=90.0))

    def columns() -> list[str]:
        with engine.connect() as conn:
            return [c["name"] for c in inspect(conn).get_columns("results")]

    assert "baseline_delta" not in columns()
    migrate.downgrade(fresh_url, "0016")
    assert "baseline_delta" in columns()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT point, performance, baseline_delta FROM results")).all()
    assert [tuple(r) for r in rows] == [("a", 90.0, None)]
    migrate.upgrade(fresh_url)
    assert "baseline_delta" not in columns()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT point FROM results")).scalars().all() == ["a"]
    engine.dispose()
