"""The web service as it runs: uvicorn on a loopback port, PostgreSQL behind a TCP proxy the tests
can cut. Writes are committed before their response; the database going away gives 503.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db.session import make_engine, transaction
from core.settings import REPO_ROOT
from core.users import service as user_service
from tests.processes import free_port, stop, uvicorn_command, wait_until_up
from tests.tcp_proxy import TcpProxy

pytest_plugins = ["tests.api_helpers"]
pytestmark = pytest.mark.postgres
PASSWORD = "correct horse battery staple"


@dataclass
class Live:
    base: str
    db_url: str  # direct, not through the proxy
    proxy: TcpProxy
    log: Path

    def user(self, email: str) -> None:
        with transaction(make_engine(self.db_url)) as session:
            user_service.create_user(
                session, email=email, display_name="Live User", password=PASSWORD
            )


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """uvicorn on a fresh migrated PostgreSQL database reached through a TCP proxy."""
    template = request.getfixturevalue("api_pg_template")
    dbs = request.getfixturevalue("pg_databases")
    name = f"pb_test_{uuid.uuid4().hex[:12]}"
    with dbs.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    dbs.created.append(name)
    direct = make_url(dbs.admin.url).set(database=name)
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
    proxied = direct.set(host="127.0.0.1", port=proxy.port)
    tmp = tmp_path_factory.mktemp("live")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_MODE="test",
        PARETOBOARD_DB__URL=proxied.render_as_string(hide_password=False),
        PARETOBOARD_STORAGE__DATA_DIR=str(tmp / "var"),
    )
    log = tmp / "uvicorn.log"
    port = free_port()
    proc = subprocess.Popen(
        uvicorn_command(port, "--log-level", "warning"),
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, [proc], log)
        yield Live(base, direct.render_as_string(hide_password=False), proxy, log)
    finally:
        stop(proc)
        proxy.cut()


def _browser(live: Live, email: str) -> httpx.Client:
    """A client logged in by cookie, sending its CSRF token."""
    client = httpx.Client(base_url=live.base, timeout=30)
    made = client.post("/api/v1/session", json={"email": email, "password": PASSWORD})
    assert made.status_code == 200, made.text
    client.headers["X-CSRF-Token"] = made.json()["csrf_token"]
    return client


def test_tokens_work_at_once_and_revocations_hold_at_once(live: Live) -> None:
    """A 201 for a token means it works on the next request; a 204 revoke, that it is refused.

    Each use goes over another kept-alive connection, right after the write's
    response: when the commit ran after the response had gone out, first uses got 401.
    """
    live.user("race@example.org")
    browser = _browser(live, "race@example.org")
    # Another kept-alive connection: each use goes out the moment the write's response is in.
    other = httpx.Client(base_url=live.base, timeout=30)
    other.get("/healthz")
    try:
        for _ in range(40):
            made = browser.post("/api/v1/tokens", json={"name": "race"})
            assert made.status_code == 201, made.text
            auth = {"Authorization": f"Bearer {made.json()['token']}"}
            used = other.get("/api/v1/users/me", headers=auth)
            assert used.status_code == 200, used.text
            revoked = browser.delete(f"/api/v1/tokens/{made.json()['id']}")
            assert revoked.status_code == 204, revoked.text
            after = other.get("/api/v1/users/me", headers=auth)
            assert after.status_code == 401, after.text
    finally:
        browser.close()
        other.close()


def test_database_away_gives_503_with_retry_after(live: Live) -> None:
    """Pages and API answer 503 with Retry-After while PostgreSQL is unreachable, then recover."""
    live.user("away@example.org")
    browser = _browser(live, "away@example.org")
    html = {"Accept": "text/html"}
    try:
        assert browser.get("/", headers=html).status_code == 200
        live.proxy.cut()
        try:
            for path, headers in (
                ("/", html),
                ("/account", html),
                ("/api/v1/tasks", {}),
                ("/api/v1/users/me", {}),
            ):
                reply = browser.get(path, headers=headers)
                assert reply.status_code == 503, (path, reply.text)
                assert int(reply.headers["retry-after"]) >= 1
                if headers:
                    assert "text/html" in reply.headers["content-type"]
                else:
                    assert reply.json()["error"]["code"] == "database_unavailable"
            made = browser.post("/api/v1/tokens", json={"name": "while away"})
            assert made.status_code == 503
        finally:
            live.proxy.restore()
        assert browser.get("/", headers=html).status_code == 200
        assert browser.get("/api/v1/users/me").status_code == 200
        assert "Traceback" not in live.log.read_text()
    finally:
        browser.close()
