"""The home and task pages kept per board version for anonymous viewers (`web.pages.leaderboard`):
ETag and 304, a write shows at once, and nothing of a logged-in viewer ever reaches the page
that anonymous viewers share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from core.models import User
from tests.test_pages import HTML, browser, csrf_of, paper
from web.pages.templating import FLASH_KEY, is_anonymous

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]

PAGES = ("/", "/?track=70M", "/?partial=1", "/tasks/SST-2", "/tasks/SST-2?verified=1")


def test_anonymous_pages_carry_an_etag_and_answer_304(seeded_api: Api) -> None:
    client = browser(seeded_api)
    for path in PAGES:
        first = client.get(path)
        assert first.status_code == 200, path
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "private, no-cache"
        assert "default-src 'self'" in first.headers["content-security-policy"]
        assert first.headers["content-type"] == "text/html; charset=utf-8"
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b""
        assert client.get(path).text == first.text  # the same page, from the cache


def test_a_write_changes_the_anonymous_page(seeded_api: Api) -> None:
    admin = seeded_api.user(admin=True)
    client = browser(seeded_api)
    before = {path: client.get(path) for path in ("/?coverage=any&self_reported=1", "/tasks/SST-2")}
    assert all("written later" not in r.text for r in before.values())
    paper(seeded_api, admin, "written later")
    for path, old in before.items():
        stale = client.get(path, headers={"If-None-Match": old.headers["etag"]})
        assert stale.status_code == 200, path  # not 304: the page changed
        assert "written later" in stale.text, path
        assert stale.headers["etag"] != old.headers["etag"]


def test_a_logged_in_viewer_never_leaks_into_the_shared_page(seeded_api: Api) -> None:
    owner = seeded_api.user(name="Owner Quinn")
    paper(seeded_api, owner, "owner's private entry", visibility="private")
    anonymous = browser(seeded_api)
    cached = {path: anonymous.get(path).text for path in PAGES}  # kept before the owner looks
    mine = browser(seeded_api, owner)
    for path in PAGES:
        page = mine.get(path, headers=HTML)
        assert page.status_code == 200, path
        assert "etag" not in page.headers, path  # rendered for them, never kept
        if not path.endswith("partial=1"):
            assert "Owner Quinn" in page.text, path
            token = csrf_of(page.text)
            assert token not in cached[path], path
    for path in PAGES:  # the owner's visit did not change or fill the shared page
        shared = browser(seeded_api).get(path)
        assert shared.text == cached[path], path
        for private in ("Owner Quinn", "owner's private entry", "csrf", "Log out"):
            assert private not in shared.text, (path, private)


def test_a_viewer_with_a_flash_message_is_not_served_the_shared_page() -> None:
    def request(session: dict[str, object] | None) -> Request:
        scope: dict[str, object] = {"type": "http", "headers": []}
        if session is not None:
            scope["session"] = session
        return Request(scope)

    assert is_anonymous(request(None), None)
    assert is_anonymous(request({}), None)
    assert is_anonymous(request({FLASH_KEY: []}), None)
    assert not is_anonymous(request({FLASH_KEY: ["Saved."]}), None)  # rendered with the notice
    assert not is_anonymous(request({}), User(display_name="someone"))
