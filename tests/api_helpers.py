"""API test helpers: the app on a fresh migrated database (SQLite and PostgreSQL), callers.

Load the fixtures in a test module with ``pytest_plugins = ["tests.api_helpers"]``, then::

    def test_something(seeded_api: Api) -> None:   # or `api`: the same without tasks
        alice = seeded_api.user()                  # an account with an API token, made directly
        seeded_api.client.get("/api/v1/users/me", headers=alice.headers)
        browser = seeded_api.login(alice)          # own cookies, X-CSRF-Token header preset
        admin = seeded_api.user(admin=True)
        with seeded_api.db() as session: ...       # arrange or inspect rows (committed)

Each test gets its own database: a copy of a migrated SQLite file, or a PostgreSQL database
cloned from a migrated template. For other settings, build one from the database fixture:
``Api.start(api_db, tmp_path / "var", limits=LimitsSettings(...))``.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.db import migrate
from core.db.session import engine_for, make_engine, transaction
from core.models import UserRole
from core.settings import DatabaseSettings, Mode, Settings, StorageSettings
from core.tasks import service as task_service
from core.users import service as user_service
from tests.conftest import BACKENDS, ELUE_DIR
from web.app import create_app

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class ApiUser:
    """An account the test can act as: its password, and an API token for `headers`."""

    id: int
    email: str
    password: str
    token: str
    role: UserRole = UserRole.USER

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """The app behind a TestClient (`client`), on its own database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self._stack = ExitStack()
        self._emails = itertools.count(1)
        self.client = self.new_client()

    @classmethod
    def start(cls, database_url: str, data_dir: Path, **settings: Any) -> Api:
        """An app on `database_url` with uploads etc. under `data_dir`; `settings` override."""
        data_dir.mkdir(parents=True, exist_ok=True)
        settings.setdefault("mode", Mode.TEST)
        settings.setdefault("storage", StorageSettings(data_dir=data_dir))
        return cls(Settings(db=DatabaseSettings(url=SecretStr(database_url)), **settings))

    def new_client(self, **kwargs: Any) -> TestClient:
        """Another client (another browser: its own cookies), closed with the app."""
        return self._stack.enter_context(TestClient(self.app, **kwargs))

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A transaction on the app's database, committed at the end of the block."""
        with transaction(engine_for(self.settings.database_url)) as session:
            yield session

    def user(
        self,
        email: str | None = None,
        *,
        name: str = "Test User",
        password: str = PASSWORD,
        admin: bool = False,
    ) -> ApiUser:
        """An account and API token made directly in the database (no API call, no limiter)."""
        email = email or f"user{next(self._emails)}@example.org"
        role = UserRole.ADMIN if admin else UserRole.USER
        with self.db() as session:
            row = user_service.create_user(
                session, email=email, display_name=name, password=password, role=role
            )
            _, token = user_service.create_token(session, user=row, name="tests")
            return ApiUser(row.id, row.email, password, token, role)

    def register(
        self, email: str | None = None, *, name: str = "Test User", password: str = PASSWORD
    ) -> ApiUser:
        """An account made through the API (POST /users, then POST /tokens)."""
        email = email or f"user{next(self._emails)}@example.org"
        made = self.client.post(
            "/api/v1/users", json={"email": email, "display_name": name, "password": password}
        )
        assert made.status_code == 201, made.text
        token = self.client.post(
            "/api/v1/tokens", json={"email": email, "password": password, "name": "tests"}
        )
        assert token.status_code == 201, token.text
        return ApiUser(made.json()["id"], made.json()["email"], password, token.json()["token"])

    def login(self, user: ApiUser, client: TestClient | None = None) -> TestClient:
        """A client logged in by session cookie, sending its X-CSRF-Token on every request.

        `del client.headers["X-CSRF-Token"]` to test a write without it.
        """
        client = client or self.new_client()
        response = client.post(
            "/api/v1/session", json={"email": user.email, "password": user.password}
        )
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        return client

    def close(self) -> None:
        self._stack.close()
        engine_for(self.settings.database_url).dispose()


def _pg_template(request: pytest.FixtureRequest, *, seeded: bool) -> str:
    """A migrated PostgreSQL database (with the ELUE tasks if `seeded`) to clone from."""
    url: str = request.getfixturevalue("pg_databases").create()
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        if seeded:
            with transaction(engine) as session:
                for data in task_service.read_task_folders(ELUE_DIR):
                    task_service.import_task(session, data)
    finally:
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it unused
    name = make_url(url).database
    assert name is not None
    return name


@pytest.fixture(scope="session")
def api_pg_template(request: pytest.FixtureRequest) -> str:
    return _pg_template(request, seeded=False)


@pytest.fixture(scope="session")
def api_pg_seeded_template(request: pytest.FixtureRequest) -> str:
    return _pg_template(request, seeded=True)


def clone_pg(request: pytest.FixtureRequest, *, seeded: bool) -> str:
    """URL of a new PostgreSQL database copied from the migrated (or seeded) template."""
    source = request.getfixturevalue("api_pg_seeded_template" if seeded else "api_pg_template")
    dbs = request.getfixturevalue("pg_databases")
    name = f"pb_test_{uuid.uuid4().hex[:12]}"
    with dbs.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    dbs.created.append(name)  # dropped at the end of the run
    return make_url(dbs.admin.url).set(database=name).render_as_string(hide_password=False)


def _fresh_database(request: pytest.FixtureRequest, tmp_path: Path, *, seeded: bool) -> str:
    if request.param == "sqlite":
        template: Path = (
            request.getfixturevalue("sqlite_seeded_template")
            if seeded
            else request.getfixturevalue("sqlite_templates")["empty"]
        )
        db = tmp_path / "db" / "paretoboard.db"
        db.parent.mkdir()
        shutil.copyfile(template, db)
        return f"sqlite:///{db}"
    return clone_pg(request, seeded=seeded)


@pytest.fixture(params=BACKENDS)
def api_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh migrated database without tasks (SQLite and PostgreSQL)."""
    return _fresh_database(request, tmp_path, seeded=False)


@pytest.fixture(params=BACKENDS)
def seeded_api_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh migrated database holding the five ELUE tasks."""
    return _fresh_database(request, tmp_path, seeded=True)


@pytest.fixture
def api(api_db: str, tmp_path: Path) -> Iterator[Api]:
    """The app on a fresh database without tasks."""
    app = Api.start(api_db, tmp_path / "var")
    yield app
    app.close()


@pytest.fixture
def seeded_api(seeded_api_db: str, tmp_path: Path) -> Iterator[Api]:
    """The app on a fresh database holding the five ELUE tasks."""
    app = Api.start(seeded_api_db, tmp_path / "var")
    yield app
    app.close()
