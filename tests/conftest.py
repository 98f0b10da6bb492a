"""Shared fixtures: databases on SQLite and on the real PostgreSQL, each test isolated."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.db import migrate
from core.db.session import make_engine, transaction
from core.tasks import service as task_service

REPO = Path(__file__).resolve().parent.parent
ELUE_DIR = Path(
    os.environ.get("PARETOBOARD_TEST_ELUE_DIR", REPO.parent / "shared" / "data" / "elue")
)
PG_URL = os.environ.get(
    "PARETOBOARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _import_elue(url: str) -> None:
    with transaction(make_engine(url)) as session:
        for data in task_service.read_task_folders(ELUE_DIR):
            task_service.import_task(session, data)


class _PgDatabases:
    """Throwaway PostgreSQL databases created for this test run and dropped at its end."""

    def __init__(self, admin_url: str) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self) -> str:
        name = f"pb_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[_PgDatabases]:
    try:
        dbs = _PgDatabases(PG_URL)
        with dbs.admin.connect():
            pass
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.fail(
            f"PostgreSQL at {PG_URL} is not reachable ({exc}); run the tests through "
            "scripts/test.sh, which starts a throwaway cluster when none is running"
        )
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Migrated SQLite files built once: empty, and with the five ELUE tasks imported."""
    root = tmp_path_factory.mktemp("sqlite-templates")
    empty = root / "empty.db"
    migrate.upgrade(f"sqlite:///{empty}")
    return {"empty": empty}


@pytest.fixture(scope="session")
def sqlite_seeded_template(sqlite_templates: dict[str, Path]) -> Path:
    seeded = sqlite_templates["empty"].with_name("seeded.db")
    shutil.copyfile(sqlite_templates["empty"], seeded)
    _import_elue(f"sqlite:///{seeded}")
    return seeded


@pytest.fixture(scope="session")
def pg_empty_url(pg_databases: _PgDatabases) -> str:
    url = pg_databases.create()
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_seeded_url(pg_databases: _PgDatabases) -> str:
    url = pg_databases.create()
    migrate.upgrade(url)
    _import_elue(url)
    return url


def _isolated_session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test."""
    conn = engine.connect()
    outer = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        conn.close()
        engine.dispose()


def _session_for(
    request: pytest.FixtureRequest, tmp_path: Path, *, seeded: bool
) -> Iterator[Session]:
    if request.param == "sqlite":
        template = (
            request.getfixturevalue("sqlite_seeded_template")
            if seeded
            else request.getfixturevalue("sqlite_templates")["empty"]
        )
        db = tmp_path / "test.db"
        shutil.copyfile(template, db)
        engine = make_engine(f"sqlite:///{db}")
        with Session(engine, expire_on_commit=False) as session:
            yield session
        engine.dispose()
    else:
        url = request.getfixturevalue("pg_seeded_url" if seeded else "pg_empty_url")
        yield from _isolated_session(make_engine(url))


@pytest.fixture(params=BACKENDS)
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """An isolated session on a migrated, empty database (SQLite and PostgreSQL)."""
    yield from _session_for(request, tmp_path, seeded=False)


@pytest.fixture(params=BACKENDS)
def seeded_session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """An isolated session on a database holding the five real ELUE tasks."""
    yield from _session_for(request, tmp_path, seeded=True)


@pytest.fixture(scope="session")
def sandbox_jobs_dir() -> Iterator[Path]:
    """A job folder base the sandbox uid can traverse (pytest's own tmp folders are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="paretoboard-jobs-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def elue_dir() -> Path:
    if not (ELUE_DIR / "SST-2" / "test.tsv").is_file():
        pytest.fail(f"ELUE data not found at {ELUE_DIR} (set PARETOBOARD_TEST_ELUE_DIR)")
    return ELUE_DIR


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server: PARETOBOARD_TEST_S3_URL (e.g. a MinIO), else moto's server
    (installed from PyPI with the dev extra) started here on a free port."""
    url = os.environ.get("PARETOBOARD_TEST_S3_URL")
    if url:
        yield url
        return
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_storage(s3_endpoint: str) -> dict[str, str]:
    """The storage settings of a fresh, empty bucket on that server (as keyword arguments of
    `StorageSettings`, all strings: `s3_env` gives the same as environment variables)."""
    from core.settings import StorageSettings
    from core.storage_s3 import S3BlobStore

    fields = {
        "backend": "s3",
        "s3_endpoint_url": s3_endpoint,
        "s3_bucket": f"pb-test-{uuid.uuid4().hex[:12]}",
        "s3_access_key": os.environ.get("PARETOBOARD_TEST_S3_ACCESS_KEY", "testing"),
        "s3_secret_key": os.environ.get("PARETOBOARD_TEST_S3_SECRET_KEY", "testing"),
    }
    assert S3BlobStore.from_settings(StorageSettings.model_validate(fields)).ensure_bucket()
    return fields


def s3_env(fields: dict[str, str]) -> dict[str, str]:
    """`s3_storage`'s settings as the environment of a `paretoboard` process."""
    return {f"PARETOBOARD_STORAGE__{key.upper()}": value for key, value in fields.items()}
