"""The site in a real browser: Debian's Chromium driven by Playwright, against the app served by
uvicorn on a loopback port, with a real Celery worker and Redis, on a fresh PostgreSQL database
holding the ELUE tasks.

One scenario walks through the site as its users do (register, token, submit through the form,
follow the evaluation live, find the entry on the plots and the leaderboard, administer); every
page is checked for console errors and failed requests, and photographed at laptop and phone
width into test-artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db.session import make_engine, transaction
from core.models import UserRole
from core.settings import REPO_ROOT
from core.users import service as user_service
from tests.processes import free_port, stop, uvicorn_command
from tests.submission_helpers import TINY_MODEL, predictions_text, with_bad_line

pytest_plugins = ["tests.api_helpers"]
pytestmark = pytest.mark.postgres

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REDIS_URL = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BROKER_DB = 7  # the other end-to-end tests use 9 and 11-14
PB = Path(sys.executable).with_name("paretoboard")
SHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
EVIL_NAME = '<img src=x onerror=alert("name")> tiny & static'


@dataclass
class Site:
    base: str
    db_url: str
    log: Path

    def db(self) -> Any:
        return transaction(make_engine(self.db_url))


@pytest.fixture(scope="module")
def site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_jobs_dir: Path,
) -> Iterator[Site]:
    """uvicorn and a Celery worker on a fresh copy of the seeded PostgreSQL database."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: run scripts/ensure-chromium.sh")
    template = request.getfixturevalue("api_pg_seeded_template")
    dbs = request.getfixturevalue("pg_databases")
    name = f"pb_test_{uuid.uuid4().hex[:12]}"
    with dbs.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    dbs.created.append(name)
    url = make_url(dbs.admin.url).set(database=name).render_as_string(hide_password=False)
    broker, backend = f"{REDIS_URL}/{BROKER_DB}", f"{REDIS_URL}/{BROKER_DB + 1}"
    redis.Redis.from_url(broker).flushdb()
    tmp = tmp_path_factory.mktemp("browser")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_MODE="test",
        PARETOBOARD_DB__URL=url,
        PARETOBOARD_BROKER__URL=broker,
        PARETOBOARD_BROKER__RESULT_BACKEND=backend,
        PARETOBOARD_STORAGE__DATA_DIR=str(tmp / "var"),
        PARETOBOARD_STORAGE__JOBS_DIR=str(sandbox_jobs_dir),
        PARETOBOARD_LIMITS__SANDBOX_WALL_SECONDS="300",
    )
    log = tmp / "stack.log"
    port = free_port()
    procs = [
        subprocess.Popen(
            [str(PB), "worker", "--queues", "score,cost", "--loglevel", "INFO"],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            uvicorn_command(port, "--log-level", "warning"),
            cwd=REPO_ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or procs[1].poll() is not None:
                pytest.fail(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Site(base, url, log)
    finally:
        for proc in procs:
            stop(proc)


@dataclass
class Watch:
    """Everything that went wrong in the browser: console errors, page errors, failed requests."""

    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    expected: list[tuple[int, str]] = field(
        default_factory=list
    )  # (status, path) refused on purpose

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "") if message.location else ""
        status = re.search(r"status of (\d{3})", message.text)
        if status and any(
            int(status.group(1)) == code and path in where for code, path in self.expected
        ):
            return
        self.problems.append(f"console error at {where}: {message.text}")

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure:  # a poll cut short by leaving the page
            return
        self.problems.append(f"request failed: {request.url} ({failure})")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    kind = "phone" if width < 600 else "desktop"
    page.screenshot(path=str(SHOTS / f"{name}-{kind}.png"), full_page=True)


def no_horizontal_scroll(page: Any) -> None:
    """The page itself fits the viewport (wide tables scroll inside their own box)."""
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} is {overflow}px wider than the phone's screen"


def make_admin(site: Site) -> tuple[str, str]:
    """An administrator with an API token, made directly in the database."""
    email = f"admin-{uuid.uuid4().hex[:8]}@example.org"
    with site.db() as session:
        user = user_service.create_user(
            session, email=email, display_name="Admin", password=PASSWORD, role=UserRole.ADMIN
        )
        _, token = user_service.create_token(session, user=user, name="tests")
    return email, token


def log_in(page: Any, site: Site, email: str) -> None:
    page.goto(f"{site.base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/account$"))


def test_the_site_in_a_browser(site: Site, chromium: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    watch = Watch()
    api = httpx.Client(base_url=site.base, timeout=30)
    admin_email, admin_token = make_admin(site)
    admin_headers = {"Authorization": f"Bearer {admin_token}"}
    baseline = api.post(
        "/api/v1/papers",
        headers=admin_headers,
        json={
            "name": "ElasticBERT-base",
            "paper_url": "https://arxiv.org/abs/2110.07038",
            "params": 109_000_000,
            "points": [
                {"task": "SST-2", "point": f"L{k}", "performance": p, "flops": f * 1e6}
                for k, (f, p) in enumerate(
                    [(1059, 84.1), (1412, 85.7), (2118, 87.0), (4237, 88.6)], start=1
                )
            ],
        },
    )
    assert baseline.status_code == 201, baseline.text
    baseline_id = baseline.json()["id"]

    desktop = chromium.new_context(viewport=DESKTOP)
    page = desktop.new_page()
    watch.attach(page)

    # --- register, and an API token shown once ---------------------------------------------
    page.goto(f"{site.base}/register")
    shoot(page, "register")
    email = f"alice-{uuid.uuid4().hex[:8]}@example.org"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Display name").fill("Alice <b>A.</b>")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create the account").click()
    page.wait_for_url(re.compile(r"/account$"))
    assert "Alice <b>A.</b>" in page.locator("nav").inner_text()  # escaped: shown as typed
    page.get_by_label("New token named").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").input_value()
    assert token.startswith("pb_")
    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied.").or_(page.get_by_text("Select the token")).wait_for()
    shoot(page, "account")
    me = api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["email"] == email

    # --- a bad file: its problem, with its line, next to it -----------------------------------
    good = predictions_text("SST-2", seed=3)
    bad = with_bad_line(good, 5, "positive")
    model_path = tmp_path / "tiny_static.py"
    model_path.write_bytes(TINY_MODEL.read_bytes())
    bad_path = tmp_path / "SST-2.tsv"
    bad_path.write_bytes(bad)
    page.goto(f"{site.base}/submit")
    page.get_by_label("Name").fill(EVIL_NAME)
    page.get_by_label("Description").fill("<script>alert('description')</script>")
    page.locator("#model").set_input_files(str(model_path))
    page.locator("#predictions").set_input_files(str(bad_path))
    watch.expected.append((422, "/api/v1/submissions/validate"))
    page.get_by_role("button", name="Check only").click()
    entry = page.locator("#file-list .file-entry.has-problems")
    entry.wait_for()
    assert "SST-2.tsv" in entry.locator(".file-name").inner_text()
    assert "line 5" in entry.locator(".problems").inner_text()
    assert page.locator("#form-summary").is_visible()
    shoot(page, "submit-problems")

    # --- the good file, dropped on the form; submitted; followed live -----------------------
    page.get_by_role("button", name="Remove SST-2.tsv").click()
    transfer = page.evaluate_handle(
        """(text) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], "SST-2.tsv", {type: "text/tab-separated-values"}));
            return dt;
        }""",
        good,
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    assert page.locator("#file-list .file-entry").count() == 1
    assert page.locator("#file-list .has-problems").count() == 0
    page.get_by_role("button", name="Check only").click()
    page.locator("#form-summary.ok-box").wait_for()
    assert "Every check passed" in page.locator("#form-summary").inner_text()
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_url(re.compile(r"/submissions/\d+$"))
    sid = int(page.url.rsplit("/", 1)[1])
    page.evaluate("window.__stayed = true")  # gone if the page reloads
    states = set()
    deadline = time.monotonic() + 240
    while True:
        label = page.locator("#state-label").inner_text()
        states.add(label)
        if label in ("Done", "Failed"):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"stuck at {label}\n{site.log.read_text()[-4000:]}")
        page.wait_for_timeout(250)
    assert label == "Done", page.locator("#panel").inner_text()
    assert page.evaluate("window.__stayed") is True  # followed without a reload
    assert states & {"Queued", "Validating files", "Scoring predictions", "Counting FLOPs"}
    assert page.locator("h1").inner_text() == EVIL_NAME
    assert page.locator(".description").inner_text() == "<script>alert('description')</script>"
    results = page.locator("#results")
    assert "SST-2" in results.inner_text()
    assert page.locator("figure.histogram svg rect").count() > 0
    assert page.locator("table.breakdown").count() >= 2
    assert page.locator(".owner ul.files a").count() == 2  # the owner's files
    page.locator("details.cost").first.evaluate("d => d.open = true")
    # Side-by-side breakdown tables keep their own height: a grid item stretched to the tallest
    # one spread a short table's rows into large empty cells.
    heights = page.evaluate(
        """() => [...document.querySelectorAll('.breakdowns')].map(grid => [
            getComputedStyle(grid).alignItems,
            [...grid.querySelectorAll(':scope > table')].map(t => t.getBoundingClientRect().height)
        ])"""
    )
    assert heights
    assert all(align == "start" for align, _ in heights), heights
    # Its own curve on the plots, drawn when the live panel swapped in the results.
    page.locator("#own-flops-1 .main-svg").first.wait_for()
    assert page.evaluate(
        "(sid) => document.getElementById('own-flops-1').data"
        ".some(t => (t.customdata || []).includes(sid))",
        sid,
    )
    shoot(page, "submission")

    # --- the admin makes the paper entry SST-2's baseline ------------------------------------
    admin_context = chromium.new_context(viewport=DESKTOP)
    admin_page = admin_context.new_page()
    watch.attach(admin_page)
    log_in(admin_page, site, admin_email)
    admin_page.goto(f"{site.base}/admin")
    admin_page.locator("#baseline-SST-2").select_option(str(baseline_id))
    admin_page.locator("form:has(#baseline-SST-2)").get_by_role("button", name="Set").click()
    admin_page.wait_for_url(re.compile(r"/admin$"))
    assert f"Submission {baseline_id} is now the baseline of SST-2" in admin_page.inner_text(
        ".notice"
    )
    shoot(admin_page, "admin")

    # --- the task plot: the entry is drawn, hover and click lead to it -------------------------
    page.goto(f"{site.base}/tasks/SST-2")
    page.locator("#plot-flops .main-svg").first.wait_for()
    drawn = page.evaluate(
        """(sid) => document.getElementById('plot-flops').data
            .filter(t => (t.customdata || []).includes(sid)).map(t => t.text).flat()""",
        sid,
    )
    assert drawn
    assert any("&lt;img src=x" in t for t in drawn), drawn
    assert page.evaluate(
        "document.getElementById('plot-flops').data.some(t => t.name.startsWith('baseline'))"
    )
    # The entry's point, in page pixels (log x axis), hovered then clicked (the plot scrolled
    # into the viewport first: the mouse only reaches what is on screen).
    page.locator("#plot-flops").scroll_into_view_if_needed()
    x, y = page.evaluate(
        """(sid) => {
            const gd = document.getElementById('plot-flops');
            const trace = gd.data.find(t => t.customdata && t.customdata.includes(sid));
            const i = trace.customdata.indexOf(sid);
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const box = gd.getBoundingClientRect();
            return [box.left + xa._offset + xa.l2p(Math.log10(trace.x[i])),
                    box.top + ya._offset + ya.l2p(trace.y[i])];
        }""",
        sid,
    )
    page.mouse.move(x, y)
    hover = page.locator("#plot-flops .hovertext")
    hover.first.wait_for()
    hover_text = hover.first.text_content() or ""
    assert "<img src=x" in hover_text
    assert "FLOPs" in hover_text
    assert "Params" in hover_text
    shoot(page, "task")
    page.mouse.click(x, y)
    page.wait_for_url(re.compile(rf"/submissions/{sid}$"))

    # --- the leaderboard lists it, escaped; search finds it ------------------------------------
    page.goto(f"{site.base}/")
    board = page.locator("#board")
    assert EVIL_NAME in board.inner_text()
    page.get_by_label("Search by name").fill("tiny & static")
    expect(page.locator("#board tbody tr")).to_have_count(1)
    assert EVIL_NAME in page.locator("#board tbody tr").inner_text()
    assert "q=tiny" in page.url
    page.goto(f"{site.base}/")
    page.get_by_role("link", name="Params").click()
    expect(page.locator("th[aria-sort='ascending'] a", has_text="Params")).to_be_visible()
    assert "sort=params" in page.url
    shoot(page, "home")

    # --- a private entry: its owner sees it, nobody else --------------------------------------
    private = api.post(
        "/api/v1/papers",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "name": "alice private entry",
            "paper_url": "https://example.org/p",
            "visibility": "private",
            "points": [{"task": "SST-2", "performance": 99.0, "flops": 1e6}],
        },
    )
    assert private.status_code == 201, private.text
    pid = private.json()["id"]
    page.goto(f"{site.base}/account")
    assert "alice private entry" in page.locator("#submissions").inner_text()
    bob_context = chromium.new_context(viewport=DESKTOP)
    bob = bob_context.new_page()
    watch.attach(bob)
    bob_email = f"bob-{uuid.uuid4().hex[:8]}@example.org"
    made = api.post(
        "/api/v1/users", json={"email": bob_email, "display_name": "Bob", "password": PASSWORD}
    )
    assert made.status_code == 201
    log_in(bob, site, bob_email)
    watch.expected.append((404, f"/submissions/{pid}"))
    response = bob.goto(f"{site.base}/submissions/{pid}")
    assert response is not None
    assert response.status == 404
    assert "Page not found" in bob.inner_text("h1")
    assert "alice private entry" not in bob.content()
    shoot(bob, "error-404")
    for path in ("/", "/tasks/SST-2"):
        bob.goto(f"{site.base}{path}")
        assert "alice private entry" not in bob.content()

    # --- every page at phone width ------------------------------------------------------------
    phone_context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone = phone_context.new_page()
    watch.attach(phone)
    for path, name in (("/register", "register"), ("/login", "login")):
        phone.goto(f"{site.base}{path}")
        no_horizontal_scroll(phone)
        shoot(phone, name)
    log_in(phone, site, email)
    for path, name in (
        ("/", "home"),
        ("/tasks/SST-2", "task"),
        (f"/submissions/{sid}", "submission"),
        ("/submit", "submit"),
        ("/account", "account"),
        ("/about", "about"),
    ):
        phone.goto(f"{site.base}{path}")
        if name == "task":
            phone.locator("#plot-flops .main-svg").first.wait_for()
        no_horizontal_scroll(phone)
        shoot(phone, name)
    page.goto(f"{site.base}/about")
    shoot(page, "about")
    page.goto(f"{site.base}/login")  # logged in: sent on to the account page
    page.get_by_role("button", name="Log out", exact=True).click()
    page.wait_for_url(re.compile(r"/$"))
    page.goto(f"{site.base}/login")
    shoot(page, "login")
    watch.expected.append((404, "/no/such/page"))
    phone.goto(f"{site.base}/no/such/page")
    no_horizontal_scroll(phone)
    shoot(phone, "error-404")
    admin_page.goto(f"{site.base}/admin")
    admin_page.set_viewport_size(PHONE)
    no_horizontal_scroll(admin_page)
    shoot(admin_page, "admin")

    for context in (desktop, admin_context, bob_context, phone_context):
        context.close()
    api.close()
    assert watch.dialogs == [], f"a page ran injected script: {watch.dialogs}"
    assert watch.problems == [], "\n".join(watch.problems)


def test_api_reference_works_with_the_network_blocked(site: Site, chromium: Any) -> None:
    """`/api/docs` loads nothing from outside the server: every other host is refused."""
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(site.base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(f"{site.base}/api/docs")
    # Swagger UI rendered the OpenAPI document: the operations are listed
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=30_000)
    assert page.locator(".swagger-ui .opblock").count() > 10
    expect(page.locator(".swagger-ui .title")).to_contain_text("paretoboard")
    assert outside == []
    context.close()
