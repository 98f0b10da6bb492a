"""Server-side browser sessions: log out, log out everywhere, password change (SQLite and
PostgreSQL, through the API and the account page)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.models import UserSession

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]
NEW_PASSWORD = "a new and longer passphrase"


def _me(client: TestClient) -> int:
    return client.get("/api/v1/users/me").status_code


def _copy(api: Api, client: TestClient) -> TestClient:
    """Another client holding a copy of `client`'s cookies (a stolen or saved cookie)."""
    copy = api.new_client()
    copy.cookies.update(dict(client.cookies))
    return copy


def test_logout_ends_the_session_for_every_copy_of_the_cookie(api: Api) -> None:
    alice = api.user()
    browser = api.login(alice)
    saved = _copy(api, browser)
    assert _me(saved) == 200
    with api.db() as session:
        row = session.scalars(select(UserSession)).one()
        assert row.user_id == alice.id
        assert row.ip == "testclient"
    assert browser.delete("/api/v1/session").status_code == 204
    assert _me(browser) == 401
    assert _me(saved) == 401  # the old cookie no longer works
    with api.db() as session:
        assert session.scalar(select(func.count()).select_from(UserSession)) == 0


@pytest.mark.slow
def test_page_logout_ends_the_session(api: Api) -> None:
    alice = api.user()
    browser = api.login(alice)
    saved = _copy(api, browser)
    csrf = browser.headers["X-CSRF-Token"]
    out = browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert _me(saved) == 401


def test_log_out_everywhere(api: Api) -> None:
    alice, bob = api.user(), api.user()
    laptop, phone, bobs = api.login(alice), api.login(alice), api.login(bob)
    listed = laptop.get("/api/v1/sessions")
    assert listed.status_code == 200
    assert [s["current"] for s in listed.json()].count(True) == 1
    assert len(listed.json()) == 2
    # Without its CSRF token a cookie write is refused, and nothing ends.
    assert api.new_client().delete("/api/v1/sessions").status_code == 401
    ended = phone.delete("/api/v1/sessions")
    assert ended.status_code == 200, ended.text
    assert ended.json() == {"ended": 2}
    assert _me(laptop) == 401
    assert _me(phone) == 401
    assert _me(bobs) == 200  # another user's sessions are untouched
    # API tokens stay valid, and can end sessions too (a lost laptop).
    assert api.client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    again = api.login(alice)
    by_token = api.client.delete("/api/v1/sessions", headers=alice.headers)
    assert by_token.json() == {"ended": 1}
    assert _me(again) == 401


def test_password_change_needs_the_current_one_and_ends_other_sessions(api: Api) -> None:
    alice = api.user()
    here, elsewhere = api.login(alice), api.login(alice)
    wrong = here.put(
        "/api/v1/users/me/password",
        json={"current_password": "not the password", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 422
    assert [d["column"] for d in wrong.json()["error"]["details"]] == ["current_password"]
    short = here.put(
        "/api/v1/users/me/password",
        json={"current_password": alice.password, "new_password": "short"},
    )
    assert short.status_code == 422
    assert _me(elsewhere) == 200  # nothing changed
    changed = here.put(
        "/api/v1/users/me/password",
        json={"current_password": alice.password, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"ended": 1}
    assert _me(here) == 200
    assert _me(elsewhere) == 401
    login = {"email": alice.email, "password": alice.password}
    assert api.new_client().post("/api/v1/session", json=login).status_code == 401
    login["password"] = NEW_PASSWORD
    assert api.new_client().post("/api/v1/session", json=login).status_code == 200


@pytest.mark.slow
def test_account_page_sessions_and_password_forms(api: Api) -> None:
    alice = api.user()
    here, elsewhere = api.login(alice), api.login(alice)
    page = here.get("/account")
    assert page.status_code == 200
    assert "Log out everywhere" in page.text
    assert "This browser" in page.text
    csrf = here.headers["X-CSRF-Token"]
    form = {
        "csrf_token": csrf,
        "current_password": alice.password,
        "new_password": NEW_PASSWORD,
        "new_password_again": "something else entirely",
    }
    differ = here.post("/account/password", data=form)
    assert differ.status_code == 422
    assert "the two new passwords differ" in differ.text
    form["new_password_again"] = NEW_PASSWORD
    done = here.post("/account/password", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert _me(elsewhere) == 401
    assert _me(here) == 200
    assert re.search(r"1 other session\(s\) ended", here.get("/account").text)
    out = here.post("/account/sessions/end-all", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert _me(here) == 401
