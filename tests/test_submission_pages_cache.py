"""A listed submission's page and API record kept for anonymous viewers
(`web.public_submissions`): ETag and 304, every change of the submission shows at once, nothing
of a logged-in viewer or a private entry reaches the copy anonymous viewers share, and an
unfinished submission's page (queue position, elapsed time) is never kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.encoders import jsonable_encoder
from sqlalchemy import select

from core.models import Result, Submission, SubmissionState
from core.submissions.queries import read_submission
from tests.test_pages import HTML, browser, csrf_of, paper

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]


def _paths(sid: int) -> tuple[str, str, str]:
    return f"/submissions/{sid}", f"/submissions/{sid}/panel", f"/api/v1/submissions/{sid}"


def _anonymous(api: Api) -> TestClient:
    return api.new_client(follow_redirects=False)


def test_a_listed_submission_carries_an_etag_and_answers_304(seeded_api: Api) -> None:
    owner = seeded_api.user(name="Owner Quinn")
    sid = paper(seeded_api, owner, "kept entry")
    client = browser(seeded_api)
    for path in _paths(sid):
        first = client.get(path)
        assert first.status_code == 200, path
        assert "kept entry" in first.text, path
        etag = first.headers["etag"]
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b""
        assert client.get(path).text == first.text  # the same copy
    page, _, record = _paths(sid)
    assert client.get(page).headers["cache-control"] == "private, no-cache"
    assert "default-src 'self'" in client.get(page).headers["content-security-policy"]
    body = _anonymous(seeded_api).get(record)
    assert body.headers["content-type"] == "application/json"
    assert body.json()["name"] == "kept entry"
    assert body.json()["timeline"] is None  # the owner's only
    with seeded_api.db() as session:  # what FastAPI would have sent for the record
        row = session.get(Submission, sid)
        assert row is not None
        assert body.json() == jsonable_encoder(read_submission(session, row, None))


def test_every_change_of_the_submission_shows_at_once(seeded_api: Api) -> None:
    owner = seeded_api.user()
    admin = seeded_api.user(admin=True)
    sid = paper(seeded_api, owner, "changing entry")
    client = _anonymous(seeded_api)
    page, panel, record = _paths(sid)

    def etags() -> dict[str, str]:
        return {p: client.get(p, headers=HTML).headers["etag"] for p in (page, panel, record)}

    def changed(before: dict[str, str], text: str) -> dict[str, str]:
        for path in (page, record):  # (the panel shows neither the description nor intervals)
            etag = before[path]
            response = client.get(path, headers={**HTML, "If-None-Match": etag})
            assert response.status_code == 200, path  # not 304: a new copy
            assert response.headers["etag"] != etag, path
        assert text in client.get(page).text
        return etags()

    tags = etags()
    edit = seeded_api.client.patch(
        f"/api/v1/submissions/{sid}", json={"description": "described later"}, headers=owner.headers
    )
    assert edit.status_code == 200, edit.text
    tags = changed(tags, "described later")
    # A result column no board reads (its interval): the record and page still change.
    with seeded_api.db() as session:
        for result in session.scalars(select(Result).where(Result.submission_id == sid)):
            result.ci_low, result.ci_high = 80.25, 91.75
    tags = changed(tags, "80.2")
    assert client.get(record).json()["results"][0]["points"][0]["ci_low"] == 80.25
    hide = seeded_api.client.post(f"/api/v1/submissions/{sid}/hide", headers=admin.headers)
    assert hide.status_code == 200, hide.text
    for path in (page, panel, record):
        assert client.get(path, headers=HTML).status_code == 404, path
    unhide = seeded_api.client.post(f"/api/v1/submissions/{sid}/unhide", headers=admin.headers)
    assert unhide.status_code == 200, unhide.text
    assert client.get(page).status_code == 200
    withdraw = seeded_api.client.delete(f"/api/v1/submissions/{sid}", headers=owner.headers)
    assert withdraw.status_code == 204, withdraw.text
    for path in (page, panel, record):
        assert client.get(path, headers=HTML).status_code == 404, path


def test_a_logged_in_viewer_never_leaks_into_the_shared_copy(seeded_api: Api) -> None:
    owner = seeded_api.user(name="Owner Quinn")
    sid = paper(seeded_api, owner, "public entry")
    hidden_one = paper(seeded_api, owner, "owner's private entry", visibility="private")
    page, panel, record = _paths(sid)
    anonymous = browser(seeded_api)
    cached = {path: anonymous.get(path).text for path in (page, panel, record)}
    mine = browser(seeded_api, owner)
    own = mine.get(page)
    assert own.status_code == 200
    assert "etag" not in own.headers  # rendered for the owner, never kept
    token = csrf_of(own.text)
    own_record = seeded_api.client.get(record, headers=owner.headers)
    assert "etag" not in own_record.headers
    assert own_record.json()["timeline"] is not None
    for path in (page, panel, record):  # the owner's visit did not change the shared copy
        shared = browser(seeded_api).get(path)
        assert shared.text == cached[path], path
        for private in (token, "csrf_token", "Log out", "owner's private entry", '"files":[{'):
            assert private not in shared.text, (path, private)
    for path in _paths(hidden_one):  # a private entry stays invisible to anonymous viewers
        assert browser(seeded_api).get(path).status_code == 404, path
        assert mine.get(path).status_code == 200, path


def test_an_unfinished_submission_is_never_kept(seeded_api: Api) -> None:
    owner = seeded_api.user()
    sid = paper(seeded_api, owner, "running entry")
    with seeded_api.db() as session:
        row = session.get(Submission, sid)
        assert row is not None
        row.state = SubmissionState.COUNTING  # its page shows a queue place and elapsed time
        row.finished_at = None
    client = browser(seeded_api)
    for path in _paths(sid):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "etag" not in response.headers, path
