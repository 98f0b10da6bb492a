"""The server-rendered pages through TestClient (no browser): status codes, redirects, the HTML
error pages, escaping, access rules, and the forms that work without JavaScript.

The browser tests (real server, worker and Chromium) are in test_browser.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.arrays import pack_array
from core.models import (
    Result,
    ResultCost,
    Submission,
    SubmissionKind,
    SubmissionState,
    Task,
    Visibility,
)
from tests.submission_helpers import TINY_MODEL, predictions_text, with_bad_line
from web import enqueue

if TYPE_CHECKING:
    from tests.api_helpers import Api, ApiUser

pytest_plugins = ["tests.api_helpers"]

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
EVIL_ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Submissions made here are stored but sent to no queue."""
    monkeypatch.setattr(enqueue, "send_score", lambda *_args, **_kwargs: True)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def browser(api: Api, user: ApiUser | None = None) -> TestClient:
    """A client that asks for pages like a browser, logged in through the login form."""
    client = api.new_client(follow_redirects=False)
    client.headers.update(HTML)
    if user is not None:
        page = client.get("/login")
        response = client.post(
            "/login",
            data={
                "email": user.email,
                "password": user.password,
                "csrf_token": csrf_of(page.text),
                "next": "/account",
            },
        )
        assert response.status_code == 303, response.text
    return client


def browser_multipart(
    fields: dict[str, str], files: list[tuple[str, str, bytes]]
) -> tuple[bytes, dict[str, str]]:
    """A multipart body as a browser sends it: an empty file input is a part with filename=""."""
    boundary = "----paretoboardTestBoundary7MA4YWxkTrZu0gW"
    out = bytearray()
    for key, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for key, name, data in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def paper(api: Api, user: ApiUser, name: str, **extra: Any) -> int:
    body = {
        "name": name,
        "paper_url": "https://example.org/paper",
        "params": 66_000_000,
        "points": [
            {"task": "SST-2", "point": "a", "performance": 86.0, "flops": 1.2e9},
            {"task": "SST-2", "point": "b", "performance": 88.0, "flops": 3.0e9},
        ],
        **extra,
    }
    response = api.client.post("/api/v1/papers", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def set_baseline(api: Api, admin: ApiUser, submission_id: int, task: str = "SST-2") -> None:
    response = api.client.put(
        f"/api/v1/tasks/{task}/baseline",
        json={"submission_id": submission_id},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text


def measured_with_costs(api: Api, owner: ApiUser, name: str = "counted") -> tuple[int, int]:
    """A done measured submission with one counted SST-2 result, written directly."""
    rng = np.random.default_rng(0)
    flops = rng.integers(1_000_000, 3_000_000, size=2210).astype(np.float64)
    with api.db() as session:
        task = session.query(Task).filter_by(name="SST-2").one()
        sub = Submission(
            owner_id=owner.id,
            name=name,
            description="line one\nline two",
            kind=SubmissionKind.MEASURED,
            state=SubmissionState.DONE,
            params=500_000,
            tokenizer_name="bert-base-uncased",
            sandbox_log="sandbox says <b>hello</b>",
        )
        session.add(sub)
        session.flush()
        result = Result(
            submission_id=sub.id,
            task_id=task.id,
            point="",
            performance=84.5,
            metrics={"accuracy": 84.5},
            cost_status="counted",
            flops_mean=float(flops.mean()),
            flops_median=float(np.median(flops)),
            flops_p10=float(np.percentile(flops, 10)),
            flops_p90=float(np.percentile(flops, 90)),
            flops_max=float(flops.max()),
            macs_mean=float(flops.mean() / 2),
            params=500_000,
        )
        session.add(result)
        session.flush()
        session.add(
            ResultCost(
                result_id=result.id,
                n=flops.size,
                flops=pack_array(flops),
                per_module={"": float(flops.mean()), "proj": 1.5e6, "out": 64.0},
                per_operator={"linear": float(flops.mean())},
                uncounted={"aten::tanh": 1600.0, "<b>aten::mean</b>": 16.0},
                mismatches=[{"index": 3, "declared": 10, "tokenized": 12}],
                details={
                    "kind": "static",
                    "cross_check_agrees": True,
                    "mismatch_count": 1,
                    "n_counts": 40,
                    "flops_without_norm_mean": float(flops.mean()),
                },
            )
        )
        return sub.id, result.id


# --- every page answers ---------------------------------------------------------------------


def test_public_pages_render(seeded_api: Api) -> None:
    client = browser(seeded_api)
    for path in (
        "/",
        "/?track=40M",
        "/tasks/SST-2",
        "/tasks/sts-b",
        "/about",
        "/login",
        "/register",
    ):
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-eval" not in csp
        assert "<script>" not in page.text  # no inline script anywhere
        assert " onclick=" not in page.text
        assert " onload=" not in page.text
    home = client.get("/").text
    for name in ("SST-2", "SNLI", "SciTail", "MRPC", "STS-B"):
        assert f'href="/tasks/{name}"' in home
    assert 'href="/api/v1/leaderboard?format=csv"' in home
    about = client.get("/about").text
    assert 'id="ranking"' in about
    assert 'id="model-files"' in about
    assert 'href="/about/examples/dan.py"' in about
    example = client.get("/about/examples/dan.py")
    assert example.status_code == 200
    assert "entire_model" in example.text
    assert client.get("/about/examples/..%2Fpyproject.toml").status_code == 404


def test_pages_that_need_an_account_send_to_the_login(seeded_api: Api) -> None:
    client = browser(seeded_api)
    for path in ("/submit", "/account", "/admin"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next=%2F{path[1:]}"


def test_assets_are_served_with_long_cache_headers(seeded_api: Api) -> None:
    client = browser(seeded_api)
    home = client.get("/").text
    css = re.search(r'href="(/assets/[0-9a-f]+/site\.css)"', home)
    assert css
    response = client.get(css.group(1))
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    assert client.get("/assets/000000000000/site.css").status_code == 404
    task = client.get("/tasks/SST-2").text
    bundle = re.search(r'src="(/assets/vendor/plotly-[0-9.]+\.min\.js)"', task)
    assert bundle
    response = client.get(bundle.group(1), headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "max-age=31536000" in response.headers["cache-control"]
    assert response.headers["content-encoding"] == "gzip"
    assert b"plotly" in response.content[:2000].lower()


# --- errors ---------------------------------------------------------------------------------


def test_errors_are_pages_for_browsers_and_json_for_the_api(seeded_api: Api) -> None:
    client = browser(seeded_api)
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Page not found" in missing.text
    assert client.get("/tasks/QNLI").status_code == 404
    assert "Page not found" in client.get("/tasks/QNLI").text
    invalid = client.get("/submissions/abc")
    assert invalid.status_code == 422
    assert "Invalid request" in invalid.text
    assert client.get("/?track=9M").status_code == 422
    # The API keeps its JSON shape, even for a browser's Accept header.
    api_missing = client.get("/api/v1/tasks/QNLI")
    assert api_missing.status_code == 404
    assert api_missing.json()["error"]["code"] == "not_found"
    # And so does anything that does not ask for HTML.
    plain = seeded_api.client.get("/no/such/page")
    assert plain.json()["error"]["code"] == "not_found"


def test_admin_page_is_for_admins(seeded_api: Api) -> None:
    user = browser(seeded_api, seeded_api.user())
    forbidden = user.get("/admin")
    assert forbidden.status_code == 403
    assert "Not allowed" in forbidden.text
    admin = browser(seeded_api, seeded_api.user(admin=True))
    page = admin.get("/admin")
    assert page.status_code == 200
    assert "Task baselines" in page.text


def test_server_error_page(seeded_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from web.pages import about

    def broken() -> None:
        raise RuntimeError("boom: secret detail")

    monkeypatch.setattr(about, "docs", broken)
    client = seeded_api.new_client(raise_server_exceptions=False)
    page = client.get("/about", headers=HTML)
    assert page.status_code == 500
    assert "Something went wrong" in page.text
    assert "secret detail" not in page.text


# --- escaping and access ----------------------------------------------------------------------


def test_names_and_descriptions_with_html_are_escaped(seeded_api: Api) -> None:
    admin = seeded_api.user(admin=True)
    sid = paper(seeded_api, admin, EVIL, description=EVIL)
    set_baseline(seeded_api, admin, sid)
    client = browser(seeded_api)
    for path in (
        "/",
        "/?track=70M",
        "/tasks/SST-2",
        f"/submissions/{sid}",
        "/tasks/SST-2/plot.json",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text, path
        assert "<img src=x" not in page.text, path
    assert EVIL_ESCAPED in client.get("/").text
    task = client.get("/tasks/SST-2").text
    assert EVIL_ESCAPED in task  # the tables
    assert "\\u003cscript\\u003e" in task  # the plot data
    submission = client.get(f"/submissions/{sid}").text
    assert submission.count(EVIL_ESCAPED) >= 2  # the name and the description


def test_private_submission_is_invisible_to_others(seeded_api: Api) -> None:
    owner = seeded_api.user()
    sid = paper(seeded_api, owner, "my private entry", visibility="private")
    mine = browser(seeded_api, owner)
    assert mine.get(f"/submissions/{sid}").status_code == 200
    assert "my private entry" in mine.get("/account").text
    other = browser(seeded_api, seeded_api.user())
    anonymous = browser(seeded_api)
    for client in (other, anonymous):
        page = client.get(f"/submissions/{sid}")
        assert page.status_code == 404
        assert "my private entry" not in page.text
        assert client.get(f"/submissions/{sid}/panel").status_code == 404
        assert "my private entry" not in client.get("/").text
        assert "my private entry" not in client.get("/tasks/SST-2").text


def test_submission_page_shows_costs_and_the_owner_sees_files_and_log(seeded_api: Api) -> None:
    owner = seeded_api.user()
    sid, _ = measured_with_costs(seeded_api, owner)
    anonymous = browser(seeded_api)
    page = anonymous.get(f"/submissions/{sid}")
    assert page.status_code == 200
    text = page.text
    assert "Where the FLOPs of SST-2" in text
    assert "<svg" in text
    assert "Histogram of FLOPs per sample over 2,210 samples" in text
    assert "aten::tanh" in text
    assert "&lt;b&gt;aten::mean&lt;/b&gt;" in text
    assert "Length mismatches" in text
    assert "proj" in text
    assert "linear" in text
    assert "Only you see this" not in text
    assert "sandbox says" not in text
    owner_page = browser(seeded_api, owner).get(f"/submissions/{sid}").text
    assert "Only you see this" in owner_page
    assert "sandbox says &lt;b&gt;hello&lt;/b&gt;" in owner_page
    panel = anonymous.get(f"/submissions/{sid}/panel")
    assert panel.status_code == 200
    assert 'id="panel"' in panel.text
    assert 'data-state="done"' in panel.text
    assert "<html" not in panel.text


def test_owner_downloads_their_uploaded_files(seeded_api: Api) -> None:
    owner = seeded_api.user()
    response = seeded_api.client.post(
        "/api/v1/submissions",
        headers=owner.headers,
        data={"name": "with files"},
        files=[
            ("model", ("tiny_static.py", TINY_MODEL.read_bytes())),
            ("predictions", ("SST-2.tsv", predictions_text("SST-2").encode())),
        ],
    )
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    mine = browser(seeded_api, owner)
    page = mine.get(f"/submissions/{sid}").text
    links = re.findall(rf'href="(/submissions/{sid}/files/\d+)"', page)
    assert len(links) == 2
    downloads = {mine.get(link).content for link in links}
    assert TINY_MODEL.read_bytes() in downloads
    model_link = links[0]
    assert mine.get(model_link).headers["content-disposition"].startswith("attachment")
    # Anyone else: the file does not exist.
    assert browser(seeded_api, seeded_api.user()).get(model_link).status_code == 404
    assert browser(seeded_api).get(model_link).status_code == 404
    assert mine.get(f"/submissions/{sid}/files/999999").status_code == 404


# --- the forms, without JavaScript ------------------------------------------------------------


def test_register_log_in_tokens_log_out(seeded_api: Api) -> None:
    client = browser(seeded_api)
    form = client.get("/register")
    made = client.post(
        "/register",
        data={
            "email": "ada@example.org",
            "display_name": "Ada <b>L</b>",
            "password": "correct horse battery staple",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/account"
    account = client.get("/account")
    assert account.status_code == 200
    assert "Ada &lt;b&gt;L&lt;/b&gt;" in account.text
    csrf = csrf_of(account.text)
    created = client.post("/account/tokens", data={"name": "laptop", "csrf_token": csrf})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    token = re.search(r'id="new-token" type="text" readonly value="(pb_[^"]+)"', created.text)
    assert token, created.text
    me = seeded_api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {token.group(1)}"}
    )
    assert me.status_code == 200
    # Shown once: the account page lists the token by its prefix only.
    again = client.get("/account").text
    assert token.group(1) not in again
    assert "laptop" in again
    token_id = re.search(r'action="/account/tokens/(\d+)/revoke"', again)
    assert token_id
    revoked = client.post(f"/account/tokens/{token_id.group(1)}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    me = seeded_api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {token.group(1)}"}
    )
    assert me.status_code == 401
    out = client.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert client.get("/account").status_code == 303
    # Log in again through the form; a wrong password is said plainly.
    form = client.get("/login?next=/submit")
    wrong = client.post(
        "/login",
        data={"email": "ada@example.org", "password": "nope", "csrf_token": csrf_of(form.text)},
    )
    assert wrong.status_code == 401
    assert "Wrong email or password" in wrong.text
    ok = client.post(
        "/login",
        data={
            "email": "ada@example.org",
            "password": "correct horse battery staple",
            "next": "/submit",
            "csrf_token": csrf_of(wrong.text),
        },
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == "/submit"
    assert client.get("/submit").status_code == 200


def test_register_shows_problems_next_to_fields(seeded_api: Api) -> None:
    client = browser(seeded_api)
    form = client.get("/register")
    page = client.post(
        "/register",
        data={
            "email": "not-an-email",
            "display_name": "A",
            "password": "short",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert page.status_code == 422
    assert re.search(r'id="problems-email"[^>]*>\s*<li>expected an email', page.text)
    assert re.search(r'id="problems-password"[^>]*>\s*<li>password must be', page.text)


def test_form_posts_need_the_csrf_token(seeded_api: Api) -> None:
    user = seeded_api.user()
    client = browser(seeded_api, user)
    refused = client.post("/account/tokens", data={"name": "x"})
    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    anonymous = browser(seeded_api)
    anonymous.get("/login")
    login = anonymous.post(
        "/login", data={"email": user.email, "password": user.password, "csrf_token": "wrong"}
    )
    assert login.status_code == 403
    # Never sent on to another site after logging in.
    form = anonymous.get("/login")
    ok = anonymous.post(
        "/login",
        data={
            "email": user.email,
            "password": user.password,
            "next": "//evil.example/",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert ok.headers["location"] == "/account"


def test_submit_form_without_javascript(seeded_api: Api) -> None:
    user = seeded_api.user()
    client = browser(seeded_api, user)
    form = client.get("/submit")
    assert form.status_code == 200
    csrf = csrf_of(form.text)
    text = predictions_text("SST-2")
    model = ("model", "tiny_static.py", TINY_MODEL.read_bytes())
    empty_tokenizer = ("tokenizer", "", b"")  # a file input left empty
    body, headers = browser_multipart(
        {"name": "first", "csrf_token": csrf},
        [model, ("predictions", "SST-2.tsv", with_bad_line(text, 4, "maybe")), empty_tokenizer],
    )
    checked = client.post("/submit/check", content=body, headers=headers)
    assert checked.status_code == 422, checked.text[:2000]
    # The problem sits next to its file, with its line.
    entry = re.search(
        r'<span class="file-name">SST-2\.tsv</span>\s*<ul class="problems">(.*?)</ul>',
        checked.text,
        re.S,
    )
    assert entry, checked.text
    assert "line 4" in entry.group(1)
    assert 'value="first"' in checked.text  # what was typed is kept
    good = [model, ("predictions", "SST-2.tsv", text.encode()), empty_tokenizer]
    body, headers = browser_multipart({"name": "", "csrf_token": csrf}, good)
    ok = client.post("/submit/check", content=body, headers=headers)
    assert ok.status_code == 200, ok.text[:2000]
    assert "Every check passed" in ok.text
    assert "Quota SST-2: " in ok.text
    assert "submissions left in 24 hours (this check used none)" in ok.text
    assert 'id="model-check"' in ok.text  # no pre-flight worker here: says it did not run
    body, headers = browser_multipart(
        {"name": "no js", "visibility": "private", "csrf_token": csrf}, good
    )
    created = client.post("/submit", content=body, headers=headers)
    assert created.status_code == 303, created.text[:2000]
    location = created.headers["location"]
    assert re.fullmatch(r"/submissions/\d+", location)
    page = client.get(location)
    assert page.status_code == 200
    assert "no js" in page.text
    assert "Queued" in page.text
    with seeded_api.db() as session:
        sub = session.get(Submission, int(location.rsplit("/", 1)[1]))
        assert sub is not None
        assert sub.visibility is Visibility.PRIVATE


def test_admin_chooses_baseline_hides_and_reruns(seeded_api: Api) -> None:
    admin_user = seeded_api.user(admin=True)
    owner = seeded_api.user()
    base = paper(seeded_api, owner, "elastic")
    other = paper(seeded_api, owner, "other entry")
    admin = browser(seeded_api, admin_user)
    csrf = csrf_of(admin.get("/admin").text)
    chosen = admin.post(
        "/admin/baseline", data={"task": "SST-2", "submission_id": str(base), "csrf_token": csrf}
    )
    assert chosen.status_code == 303
    page = admin.get("/admin").text
    assert f"Submission {base} is now the baseline of SST-2." in page
    with seeded_api.db() as session:
        task = session.query(Task).filter_by(name="SST-2").one()
        assert task.baseline_submission_id == base
    hidden = admin.post(
        "/admin/submissions",
        data={"submission_id": str(other), "action": "hide", "csrf_token": csrf},
    )
    assert hidden.status_code == 303
    assert "other entry" not in browser(seeded_api).get("/").text
    refused = admin.post(
        "/admin/submissions",
        data={"submission_id": str(other), "action": "rerun", "csrf_token": csrf},
    )
    assert refused.status_code == 303
    assert "Not done" in admin.get("/admin").text  # self-reported: nothing to re-run
    # A form naming no row, or none there is, is sent back with the lookup's message.
    for path, data, message in (
        ("/admin/submissions", {"submission_id": "x"}, "Not done: Give a submission id"),
        ("/admin/submissions", {"submission_id": "999999"}, "Not done: No submission 999999"),
        ("/admin/tasks/rerun", {"task": "nope"}, "Not done: Unknown task &#39;nope&#39;"),
    ):
        missing = admin.post(path, data={**data, "action": "hide", "csrf_token": csrf})
        assert missing.status_code == 303, path
        assert message in admin.get("/admin").text
    # Not for other users, even with a valid form.
    user = browser(seeded_api, seeded_api.user())
    user_csrf = csrf_of(user.get("/account").text)
    assert (
        user.post(
            "/admin/baseline",
            data={"task": "SST-2", "submission_id": str(other), "csrf_token": user_csrf},
        ).status_code
        == 403
    )


def test_home_filters_sort_and_pages(seeded_api: Api) -> None:
    owner = seeded_api.user()
    admin = seeded_api.user(admin=True)
    base = paper(seeded_api, owner, "baseline entry", params=109_000_000)
    set_baseline(seeded_api, admin, base)
    paper(seeded_api, owner, "small model", params=10_000_000)
    paper(seeded_api, owner, "big model", params=300_000_000)
    client = browser(seeded_api)
    # Self-reported entries are kept apart by default: only the baseline among them is listed.
    default = client.get("/").text
    assert "baseline entry" in default
    assert "small model" not in default
    # With self_reported=1 they are ranked with the measured entries (here: every entry).
    assert "small model" in client.get("/?self_reported=1&q=SMALL").text
    assert "big model" not in client.get("/?self_reported=1&q=small").text
    ranged = client.get("/?self_reported=1&min_params=5&max_params=50").text
    assert "small model" in ranged
    assert "big model" not in ranged
    assert "baseline entry" not in ranged
    # An unparsable bound is ignored, not an error.
    assert client.get("/?self_reported=1&min_params=abc").status_code == 200
    by_params = client.get("/?self_reported=1&sort=params&dir=desc").text
    assert by_params.index("big model") < by_params.index("small model")
    assert 'aria-sort="descending"' in by_params
    track = client.get("/?self_reported=1&track=55M&coverage=any").text
    assert "small model" in track
    assert "big model" not in track
    # By default a track lists entries with a point on every task (the papers have SST-2 only).
    assert "small model" not in client.get("/?self_reported=1&track=55M").text
    # The coverage switch: "All tasks" is the default, "Any tasks" keeps the other filters.
    home = client.get("/?self_reported=1&q=model").text
    assert 'href="/?self_reported=1&amp;coverage=any&amp;q=model"' in home
    assert "among the entries that cover every task with a baseline" in home
    partial = client.get("/?self_reported=1&coverage=any&partial=1&q=model")
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert "small model" in partial.text


def test_failed_submission_shows_every_problem_to_its_owner_only(seeded_api: Api) -> None:
    owner = seeded_api.user()
    with seeded_api.db() as session:
        sub = Submission(
            owner_id=owner.id,
            name="refused",
            kind=SubmissionKind.MEASURED,
            state=SubmissionState.FAILED,
            state_message="2 problem(s) in the submitted files",
            failed_stage="validating",
            fault="user",
            error_detail="SST-2.tsv:3 [prediction]: label 'x' is not one of 0, 1\n"
            "SST-2.tsv:9 [index]: index 9 given twice <b>",
        )
        session.add(sub)
        session.flush()
        sid = sub.id
    page = browser(seeded_api, owner).get(f"/submissions/{sid}").text
    assert "Failed while validating files" in page
    assert "<li>SST-2.tsv:3 [prediction]: label &#39;x&#39; is not one of 0, 1</li>" in page
    assert "index 9 given twice &lt;b&gt;" in page
    assert 'class="stage stage-failed"' in page
    public = browser(seeded_api).get(f"/submissions/{sid}").text
    assert "Failed while validating files" in public
    assert "SST-2.tsv:3" not in public  # the details are the owner's


def test_admin_reruns_a_measured_submission(seeded_api: Api) -> None:
    sid, _ = measured_with_costs(seeded_api, seeded_api.user())
    admin = browser(seeded_api, seeded_api.user(admin=True))
    csrf = csrf_of(admin.get(f"/submissions/{sid}").text)
    response = admin.post(
        "/admin/submissions",
        data={
            "submission_id": str(sid),
            "action": "rerun",
            "next": f"/submissions/{sid}",
            "csrf_token": csrf,
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/submissions/{sid}"
    page = admin.get(f"/submissions/{sid}").text
    assert f"Submission {sid} was re-queued." in page
    assert 'data-state="queued"' in page
