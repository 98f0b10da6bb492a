"""Login throttling that slows an attacker without locking the owner out (SQLite and
PostgreSQL): known-device cookies, other addresses, and reset links as proof of ownership."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.models import LoginAttempt
from core.users.devices import DEVICE_COOKIE
from tests.login_limits import slow_login_limits

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]
PB = Path(sys.executable).with_name("paretoboard")
NEW_PASSWORD = "a brand new passphrase"


def _login(client: TestClient, email: str, password: str) -> int:
    return client.post("/api/v1/session", json={"email": email, "password": password}).status_code


def _attack(client: TestClient, email: str, guesses: int) -> list[int]:
    codes = []
    for n in range(guesses):
        reply = client.post("/api/v1/session", json={"email": email, "password": f"guess {n}!"})
        if reply.status_code == 429:
            assert int(reply.headers["retry-after"]) >= 1
            assert reply.json()["error"]["code"] == "rate_limited"
        codes.append(reply.status_code)
    return codes


def test_an_attacker_does_not_lock_the_owner_out(api: Api) -> None:
    slow_login_limits(api)  # the default policy, with waits no test can outrun
    alice = api.user()
    x, y = ("203.0.113.7", 40000), ("198.51.100.9", 40000)
    laptop = api.new_client(client=x)  # the owner's browser, on the attacker's network
    assert _login(laptop, alice.email, alice.password) == 200
    assert DEVICE_COOKIE in laptop.cookies
    assert (
        laptop.delete("/api/v1/session", headers={"X-CSRF-Token": _csrf(laptop)}).status_code == 204
    )

    attacker = api.new_client(client=x)
    codes = _attack(attacker, alice.email, 50)
    assert set(codes) == {401, 429}  # slowed, never let in
    assert codes[:5] == [401] * 5
    assert codes.count(429) == 45
    # The attacker's own next try, with the right password even, is still throttled...
    assert _login(attacker, alice.email, alice.password) == 429
    # ...but the owner logs in from the browser they used before, on the same network,
    assert _login(laptop, alice.email, alice.password) == 200
    # and from a new browser at another address.
    assert _login(api.new_client(client=y), alice.email, alice.password) == 200


def _csrf(client: TestClient) -> str:
    reply = client.get("/api/v1/session")
    return str(reply.json()["csrf_token"]) if reply.status_code == 200 else ""


def test_a_forged_or_foreign_device_cookie_counts_for_nothing(api: Api) -> None:
    slow_login_limits(api)
    alice, mallory = api.user(), api.user()
    attacker = api.new_client(client=("10.1.1.1", 40000))
    assert _login(attacker, mallory.email, mallory.password) == 200  # a real cookie, own account
    forged = api.new_client(client=("10.1.1.2", 40000))
    forged.cookies.set(DEVICE_COOKIE, "W1siYWJjIiwiZGVmIl1d.forged.signature")
    for client in (attacker, forged):
        codes = _attack(client, alice.email, 8)
        assert codes == [401] * 5 + [429] * 3  # throttled like any unknown browser


@pytest.mark.slow
def test_known_device_failures_are_throttled_on_their_own(api: Api) -> None:
    slow_login_limits(api)
    alice = api.user()
    laptop = api.new_client()
    assert _login(laptop, alice.email, alice.password) == 200
    codes = _attack(laptop, alice.email, 8)  # a stolen laptop guessing
    assert codes == [401] * 5 + [429] * 3
    # Other browsers are not slowed by the laptop's failures.
    assert _login(api.new_client(), alice.email, alice.password) == 200


@pytest.mark.slow
def test_reset_link_from_the_cli_proves_ownership(api: Api) -> None:
    alice = api.user()
    elsewhere = api.login(alice)
    stranger = api.new_client()
    _attack(stranger, alice.email, 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env["PARETOBOARD_DB__URL"] = api.settings.database_url
    env["PARETOBOARD_STORAGE__DATA_DIR"] = str(api.settings.storage.data_dir)
    made = subprocess.run(
        [str(PB), "user", "reset-link", "--email", alice.email.upper()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    link = urlsplit(made.stdout.strip())
    assert link.path == "/reset-password"
    unknown = subprocess.run(
        [str(PB), "users", "reset-link", "--email", "nobody@example.org"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unknown.returncode == 1
    assert "no active account" in unknown.stderr

    # The owner, on the throttled browser: the link's form sets the password and logs in.
    page = stranger.get(f"{link.path}?{link.query}")
    assert page.status_code == 200
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    token = dict(p.split("=", 1) for p in link.query.split("&"))["token"]
    form = {"csrf_token": csrf, "token": token, "new_password": NEW_PASSWORD}
    differ = stranger.post("/reset-password", data={**form, "new_password_again": "other one!"})
    assert differ.status_code == 422
    done = stranger.post(
        "/reset-password", data={**form, "new_password_again": NEW_PASSWORD}, follow_redirects=False
    )
    assert done.status_code == 303
    assert stranger.get("/api/v1/users/me").status_code == 200
    assert elsewhere.get("/api/v1/users/me").status_code == 401  # every other session ended
    with api.db() as session:  # the account's failures are forgotten
        assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 0
    # The link works once.
    again = api.new_client().get(f"{link.path}?{link.query}")
    assert again.status_code == 422
    assert "expired, already used or mistyped" in again.text
    assert _login(api.new_client(), alice.email, NEW_PASSWORD) == 200
