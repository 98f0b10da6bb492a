"""Accounts over HTTP on SQLite and PostgreSQL: registration, tokens, sessions, CSRF, limits."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from core.db.session import engine_for
from core.models import LoginAttempt, User, UserRole
from core.users.errors import RateLimitedError
from core.users.login_limits import Backoff, LoginLimiter, LoginLimits
from web.login import get_login_limiter

if TYPE_CHECKING:  # imported by pytest as a plugin (importing it first skips its rewriting)
    from tests.api_helpers import Api

from tests.login_limits import slow_login_limits

pytest_plugins = ["tests.api_helpers"]
PASSWORD = "correct horse battery staple"  # what Api.user() sets

PB = Path(sys.executable).with_name("paretoboard")
_CREATE = ["users", "create", "--email"]


class Reply(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def json(self) -> Any: ...


R = TypeVar("R", bound=Reply)


def _no_secrets(response: R) -> R:
    """Every response of these tests goes through here: no password hash, ever."""
    assert "$argon2" not in response.text
    assert "password_hash" not in response.text
    return response


def _limits(api: Api, **limits: object) -> None:
    """Use other rate limits in this app (the real limiter, on the same database)."""
    engine = engine_for(api.settings.database_url)
    chosen = LoginLimits(**limits)  # type: ignore[arg-type]
    api.app.dependency_overrides[get_login_limiter] = lambda: LoginLimiter(engine, chosen)


def _login(client: TestClient, email: str, password: str) -> Reply:
    return _no_secrets(client.post("/api/v1/session", json={"email": email, "password": password}))


def _age_attempts(api: Api, minutes: float) -> None:
    """Move every recorded attempt `minutes` into the past."""
    with api.db() as session:  # in Python: SQLite has no datetime arithmetic on these columns
        for row in session.scalars(select(LoginAttempt)):
            when = row.created_at.replace(tzinfo=row.created_at.tzinfo or dt.UTC)
            row.created_at = when - dt.timedelta(minutes=minutes)


def test_register_token_me(api: Api) -> None:
    made = _no_secrets(
        api.client.post(
            "/api/v1/users",
            json={"email": "Ada@Example.org", "display_name": " Ada ", "password": PASSWORD},
        )
    )
    assert made.status_code == 201, made.text
    user = made.json()
    assert set(user) == {"id", "email", "display_name", "affiliation", "role", "created_at"}
    assert user["email"] == "ada@example.org"
    assert user["affiliation"] is None
    assert user["role"] == "user"
    assert dt.datetime.fromisoformat(user["created_at"]).utcoffset() == dt.timedelta(0)

    created = _no_secrets(
        api.client.post(
            "/api/v1/tokens",
            json={"email": "ADA@example.org", "password": PASSWORD, "name": "laptop"},
        )
    )
    assert created.status_code == 201, created.text
    token = created.json()
    assert set(token) == {"token", "id", "name", "prefix", "created_at"}
    assert token["token"].startswith("pb_")
    assert token["token"].startswith(token["prefix"])

    auth = {"Authorization": f"Bearer {token['token']}"}
    me = _no_secrets(api.client.get("/api/v1/users/me", headers=auth))
    assert me.status_code == 200
    assert me.json() == user

    listed = _no_secrets(api.client.get("/api/v1/tokens", headers=auth))
    assert listed.status_code == 200
    [row] = listed.json()
    assert set(row) == {"id", "name", "prefix", "created_at", "last_used_at"}
    assert row["id"] == token["id"]
    assert row["last_used_at"] is not None  # stamped by the requests above
    assert token["token"] not in listed.text  # shown once, never again
    with api.db() as session:
        stored = session.scalar(select(User.password_hash).where(User.id == user["id"]))
    assert stored is not None
    assert stored.startswith("$argon2")

    anonymous = _no_secrets(api.client.get("/api/v1/users/me"))
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"


def test_registration_problems(api: Api) -> None:
    bad = _no_secrets(
        api.client.post(
            "/api/v1/users", json={"email": "nope", "display_name": " ", "password": "short"}
        )
    )
    assert bad.status_code == 422
    assert {d["column"] for d in bad.json()["error"]["details"]} == {
        "body.email",
        "body.display_name",
        "body.password",
    }
    spoof = api.client.post(
        "/api/v1/users",
        json={"email": "s@example.org", "display_name": "admin\u202e", "password": PASSWORD},
    )
    assert spoof.status_code == 422  # no control or bidi characters in public names
    api.user("taken@example.org")
    taken = _no_secrets(
        api.client.post(
            "/api/v1/users",
            json={"email": "Taken@example.org", "display_name": "T", "password": PASSWORD},
        )
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "conflict"


def test_cookie_session_and_csrf(api: Api) -> None:
    alice = api.user()
    browser = api.new_client()
    pre = browser.get("/api/v1/session")  # anonymous: no session yet
    assert pre.status_code == 404
    login = _login(browser, alice.email, alice.password)
    assert login.status_code == 200, login.text
    body = login.json()
    assert body["user"]["id"] == alice.id
    csrf = body["csrf_token"]
    cookies = sorted(c.lower() for c in login.headers.get_list("set-cookie"))
    assert [c.split("=", 1)[0] for c in cookies] == ["paretoboard_device", "paretoboard_session"]
    for cookie in cookies:
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "secure" not in cookie  # only in production mode (https)

    me = browser.get("/api/v1/users/me")
    assert me.status_code == 200
    assert me.json()["email"] == alice.email
    again = browser.get("/api/v1/session")
    assert again.status_code == 200
    assert again.json()["csrf_token"] == csrf

    # Cookie-authenticated writes need the CSRF token; reads do not.
    refused = browser.post("/api/v1/tokens", json={"name": "from the browser"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    wrong = browser.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "no"})
    assert wrong.status_code == 403
    made = _no_secrets(
        browser.post(
            "/api/v1/tokens", json={"name": "from the browser"}, headers={"X-CSRF-Token": csrf}
        )
    )
    assert made.status_code == 201, made.text
    token_id = made.json()["id"]
    assert browser.delete(f"/api/v1/tokens/{token_id}").status_code == 403
    assert (
        browser.delete(f"/api/v1/tokens/{token_id}", headers={"X-CSRF-Token": csrf}).status_code
        == 204
    )

    # A new login rotates the session: a new CSRF token, the old one no longer works.
    relogin = _login(browser, alice.email, alice.password)
    new_csrf = relogin.json()["csrf_token"]
    assert new_csrf != csrf
    stale = browser.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert stale.status_code == 403

    assert browser.delete("/api/v1/session").status_code == 403  # logging out is a write too
    out = browser.delete("/api/v1/session", headers={"X-CSRF-Token": new_csrf})
    assert out.status_code == 204
    assert browser.get("/api/v1/users/me").status_code == 401


def test_me_shows_the_affiliation_set_on_the_account_page(api: Api) -> None:
    alice = api.user()
    browser = api.new_client()
    csrf = _login(browser, alice.email, alice.password).json()["csrf_token"]
    saved = browser.post("/account/profile", data={"affiliation": " Uni X ", "csrf_token": csrf})
    assert saved.status_code == 200  # the account page, after its redirect
    me = api.client.get("/api/v1/users/me", headers=alice.headers)
    assert me.status_code == 200
    assert me.json()["affiliation"] == "Uni X"
    cleared = browser.post("/account/profile", data={"affiliation": "", "csrf_token": csrf})
    assert cleared.status_code == 200
    assert browser.get("/api/v1/users/me").json()["affiliation"] is None


def test_token_auth_needs_no_csrf_but_cannot_mint_tokens(api: Api) -> None:
    alice = api.user()
    mint = _no_secrets(api.client.post("/api/v1/tokens", json={"name": "x"}, headers=alice.headers))
    assert mint.status_code == 403
    assert "cannot create" in mint.json()["error"]["message"]
    nobody = _no_secrets(api.client.post("/api/v1/tokens", json={"name": "x"}))
    assert nobody.status_code == 401
    half = _no_secrets(api.client.post("/api/v1/tokens", json={"name": "x", "email": alice.email}))
    assert half.status_code == 422

    second = _no_secrets(
        api.client.post(
            "/api/v1/tokens", json={"name": "ci", "email": alice.email, "password": PASSWORD}
        )
    ).json()
    # A bearer write (revoking) needs no CSRF token: no ambient credentials are involved.
    gone = api.client.delete(f"/api/v1/tokens/{second['id']}", headers=alice.headers)
    assert gone.status_code == 204


def test_revoked_token_is_refused(api: Api) -> None:
    alice = api.user()
    assert api.client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    [row] = api.client.get("/api/v1/tokens", headers=alice.headers).json()
    assert (
        api.client.delete(f"/api/v1/tokens/{row['id']}", headers=alice.headers).status_code == 204
    )
    after = _no_secrets(api.client.get("/api/v1/users/me", headers=alice.headers))
    assert after.status_code == 401
    assert after.json()["error"]["message"] == "Invalid or revoked API token"
    garbage = api.client.get("/api/v1/users/me", headers={"Authorization": "Bearer pb_nope"})
    assert garbage.status_code == 401


def test_other_users_token_is_not_found(api: Api) -> None:
    alice, bob = api.user(), api.user()
    [bobs] = api.client.get("/api/v1/tokens", headers=bob.headers).json()
    [alices] = api.client.get("/api/v1/tokens", headers=alice.headers).json()
    assert bobs["id"] != alices["id"]
    steal = _no_secrets(api.client.delete(f"/api/v1/tokens/{bobs['id']}", headers=alice.headers))
    assert steal.status_code == 404
    missing = api.client.delete("/api/v1/tokens/999999", headers=alice.headers)
    assert missing.status_code == 404
    assert steal.json() == missing.json()  # same answer as for a token that does not exist
    assert api.client.get("/api/v1/users/me", headers=bob.headers).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/session", "/api/v1/tokens"])
def test_login_errors_do_not_reveal_accounts(api: Api, path: str) -> None:
    alice = api.user()
    inactive = api.user()
    with api.db() as session:
        session.execute(update(User).where(User.id == inactive.id).values(is_active=False))

    def attempt(email: str, password: str) -> Reply:
        body = {"email": email, "password": password, "name": "x"}
        return _no_secrets(api.new_client().post(path, json=body))

    unknown = attempt("nobody@example.org", PASSWORD)
    wrong = attempt(alice.email, "wrong password!")
    disabled = attempt(inactive.email, PASSWORD)
    assert unknown.status_code == wrong.status_code == disabled.status_code == 401
    assert unknown.json() == wrong.json() == disabled.json()
    assert unknown.json()["error"] == {
        "code": "invalid_credentials",
        "message": "Wrong email or password",
        "details": [],
    }
    assert "set-cookie" not in wrong.headers


def test_login_backoff_per_account_and_ip(api: Api) -> None:
    """Default policy: 5 free failures per (account, IP), then 429 with a doubling wait."""
    slow_login_limits(api)
    alice = api.user()
    client = api.new_client()  # no known-device cookie
    for _ in range(4):
        assert _login(client, alice.email, "wrong password!").status_code == 401
    # A success resets this IP's failures on the email...
    assert _login(client, alice.email, alice.password).status_code == 200
    stranger = api.new_client()
    for _ in range(5):
        assert _login(stranger, alice.email, "wrong password!").status_code == 401
    # ...and once throttled even the right password is refused, without being checked.
    for password in ("wrong password!", alice.password):
        limited = _login(stranger, alice.email, password)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 9 * 60 < int(limited.headers["retry-after"]) <= 10 * 60
    # Same through the token door.
    body = {"email": alice.email, "password": alice.password, "name": "x"}
    assert api.new_client().post("/api/v1/tokens", json=body).status_code == 429
    # Another email from the same IP is fine.
    bob = api.user()
    assert _login(api.new_client(), bob.email, bob.password).status_code == 200
    _age_attempts(api, 11)  # the wait has passed
    assert _login(stranger, alice.email, alice.password).status_code == 200


def test_backoff_doubles_and_is_capped(api_db: str) -> None:
    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    limits = LoginLimits(
        per_account_ip=Backoff(2, dt.timedelta(seconds=30)),
        per_account=Backoff(100, dt.timedelta(minutes=5)),
    )
    engine = engine_for(api_db)
    clock = [now]
    limiter = LoginLimiter(engine, limits, clock=lambda: clock[0])
    try:
        waits = []
        for _ in range(8):
            try:
                limiter.check_in(email="a@example.org", ip="1.1.1.1")  # left as failures
            except RateLimitedError as exc:
                waits.append(exc.retry_after)
                clock[0] += dt.timedelta(seconds=exc.retry_after)
                limiter.check_in(email="a@example.org", ip="1.1.1.1")
        assert waits == [1, 2, 4, 8, 16, 30]
    finally:
        engine.dispose()


def test_rate_limit_unknown_email_and_retry_after(api: Api) -> None:
    _limits(api, per_account_ip=Backoff(3, dt.timedelta(minutes=15), dt.timedelta(minutes=10)))
    for _ in range(3):
        assert _login(api.client, "ghost@example.org", "whatever1").status_code == 401
    limited = _login(api.client, "GHOST@example.org ", "whatever1")  # normalised email
    assert limited.status_code == 429
    assert 9 * 60 < int(limited.headers["retry-after"]) <= 10 * 60
    with api.db() as session:  # refused attempts are not counted
        assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 3
        stored = set(session.scalars(select(LoginAttempt.email_key)))
    assert all(key is not None and "ghost" not in key for key in stored)


def test_rate_limit_per_ip(api: Api) -> None:
    _limits(api, per_ip=Backoff(3, dt.timedelta(minutes=15), dt.timedelta(minutes=10)))
    alice = api.user()
    lab = api.new_client(client=("10.0.0.1", 40000))
    for n in range(3):
        assert _login(lab, f"probe{n}@example.org", "whatever1").status_code == 401
    assert _login(lab, alice.email, alice.password).status_code == 429
    # Another address is not affected, and its success does not reset the first one.
    home = api.new_client(client=("10.0.0.2", 40000))
    assert _login(home, alice.email, alice.password).status_code == 200
    assert _login(lab, alice.email, alice.password).status_code == 429


def test_success_keeps_other_ips_failures(api: Api) -> None:
    _limits(api, per_account_ip=Backoff(3, dt.timedelta(minutes=15), dt.timedelta(minutes=10)))
    alice = api.user()
    attacker = api.new_client(client=("10.0.0.66", 40000))
    for _ in range(2):
        assert _login(attacker, alice.email, "guess guess").status_code == 401
    assert _login(api.client, alice.email, alice.password).status_code == 200
    assert _login(attacker, alice.email, "guess guess").status_code == 401
    assert _login(attacker, alice.email, "guess guess").status_code == 429


def test_signup_probing_counts_against_the_ip(api: Api) -> None:
    _limits(api, per_ip=Backoff(2, dt.timedelta(minutes=15), dt.timedelta(minutes=10)))
    api.user("taken@example.org")
    body = {"email": "taken@example.org", "display_name": "T", "password": PASSWORD}
    assert api.client.post("/api/v1/users", json=body).status_code == 409
    assert api.client.post("/api/v1/users", json=body).status_code == 409
    body["email"] = "fresh@example.org"
    limited = api.client.post("/api/v1/users", json=body)
    assert limited.status_code == 429
    assert "retry-after" in limited.headers


def test_limiter_is_shared_between_processes(api_db: str) -> None:
    """Two limiters (as in two server processes) on one database see the same attempts."""
    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    limits = LoginLimits(per_account=Backoff(2, dt.timedelta(minutes=15), dt.timedelta(minutes=10)))
    engine = engine_for(api_db)
    try:
        first = LoginLimiter(engine, limits, clock=lambda: now)
        second = LoginLimiter(engine, limits, clock=lambda: now)
        first.check_in(email="a@example.org", ip="1.1.1.1")
        second.check_in(email="a@example.org", ip="2.2.2.2")
        with pytest.raises(RateLimitedError, match="try again in 600 seconds") as refused:
            second.check_in(email="A@example.org", ip="3.3.3.3")
        assert refused.value.retry_after == 600
        later = LoginLimiter(engine, limits, clock=lambda: now + dt.timedelta(hours=2))
        attempt = later.check_in(email="a@example.org", ip="1.1.1.1")  # both aged out
        later.succeeded(attempt)
    finally:
        engine.dispose()


def test_openapi_documents_the_account_routes(api: Api) -> None:
    schema = api.client.get("/api/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/users"]) == {"post"}
    assert set(paths["/api/v1/users/me"]) == {"get"}
    me = paths["/api/v1/users/me"]["get"]["responses"]["200"]
    assert me["content"]["application/json"]["schema"]["$ref"].endswith("/UserRead")
    user = schema["components"]["schemas"]["UserRead"]
    assert "affiliation" in user["required"]
    assert {"type": "null"} in user["properties"]["affiliation"]["anyOf"]
    assert set(paths["/api/v1/session"]) == {"get", "post", "delete"}
    assert set(paths["/api/v1/tokens"]) == {"get", "post"}
    assert set(paths["/api/v1/tokens/{token_id}"]) == {"delete"}
    login = paths["/api/v1/session"]["post"]["responses"]
    assert login["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert login["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    created = paths["/api/v1/tokens"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/TokenCreated")
    assert "password_hash" not in str(schema)
    assert api.client.get("/api/docs").status_code == 200


@pytest.fixture
def cli_env(api: Api) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env["PARETOBOARD_DB__URL"] = api.settings.database_url
    env["PARETOBOARD_STORAGE__DATA_DIR"] = str(api.settings.storage.data_dir)
    return env


def _cli(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PB), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_creates_the_first_admin(api: Api, cli_env: dict[str, str]) -> None:
    admin_args = [*_CREATE, "Root@Example.org", "--name", "Root", "--admin", "--password-stdin"]
    made = _cli(admin_args, cli_env, stdin="an admin password\n")
    assert made.returncode == 0, made.stderr
    assert "created admin root@example.org" in made.stdout
    assert "an admin password" not in made.stdout + made.stderr

    token = api.client.post(
        "/api/v1/tokens",
        json={"email": "root@example.org", "password": "an admin password", "name": "ops"},
    )
    assert token.status_code == 201, token.text
    me = api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {token.json()['token']}"}
    )
    assert me.json()["role"] == "admin"
    with api.db() as session:
        assert session.scalar(select(User.role).where(User.email == "root@example.org")) == (
            UserRole.ADMIN
        )

    again = _cli(admin_args, cli_env, stdin="another password\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    no_tty = _cli([*_CREATE, "v@example.org", "--name", "V"], cli_env)
    assert no_tty.returncode == 1
    assert "--password-stdin" in no_tty.stderr

    listing = _cli(["users", "list"], cli_env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert len(lines) == 1
    assert "admin" in lines[0]
    assert "root@example.org" in lines[0]
    assert "$argon2" not in listing.stdout
