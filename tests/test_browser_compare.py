"""The compare view, a submission's own plot and the owner's forms in a real browser (Debian's
Chromium through Playwright, the same live stack as test_browser.py: uvicorn, a Celery worker,
Redis, PostgreSQL). Slow: one scenario, run with `-m slow`.

Picks entries on the task board, checks the view's URL reproduces it, that every entry has one
colour on both plots and in the table and is named in the legend, drawn above the baseline and
the front; exports both figures (SVG, PNG) and the table (CSV, LaTeX) and parses the files;
then the owner renames, unpublishes, publishes and withdraws an entry from its page.
Screenshots: test-artifacts/screenshots/compare-*.png and submission-plot-*.png.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from core.models import Result, Submission, SubmissionState, Task, UserRole, Visibility
from core.users import service as user_service
from tests import test_browser
from tests.factories import add_points
from tests.test_browser import DESKTOP, PASSWORD, Site, Watch, log_in, make_admin, shoot
from web.views.colours import entry_colour

# The live stack and the browser of test_browser.py (module-scoped fixtures: a stack of its own).
site = test_browser.site
chromium = test_browser.chromium

pytest_plugins = ["tests.api_helpers"]
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TRACES = """(id) => document.getElementById(id).data.map(t => ({
    name: t.name, colour: t.line && t.line.color, marker: t.marker && t.marker.color,
    x: t.x, ids: t.customdata, text: t.text}))"""


def _owner(site: Site) -> tuple[int, str]:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.org"
    with site.db() as session:
        user = user_service.create_user(
            session, email=email, display_name="Ada", password=PASSWORD, role=UserRole.USER
        )
        user.affiliation = "Uni X"
        return user.id, email


def _entry(site: Site, owner_id: int, name: str, points: dict[str, tuple[float, float]]) -> int:
    """A listed measured entry on SST-2: {point: (MFLOPs, performance)}, counter 2.0."""
    with site.db() as session:
        task = session.query(Task).filter_by(name="SST-2").one()
        sub = Submission(
            name=name,
            owner_id=owner_id,
            state=SubmissionState.DONE,
            visibility=Visibility.PUBLIC,
            params=14_000_000,
        )
        session.add(sub)
        session.flush()
        rows = add_points(session, sub, task, list(points.values()))
        for row, point in zip(rows, points, strict=True):
            row.point = point
            row.counter_version = "2.0"
        return sub.id


def _download(page: Any, selector: str, folder: Path) -> Path:
    with page.expect_download() as info:
        page.click(selector)
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_compare_view_submission_plot_and_owner_actions(
    site: Site, chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    watch = Watch()
    admin_email, admin_token = make_admin(site)
    api = httpx.Client(base_url=site.base, timeout=30)
    admin_headers = {"Authorization": f"Bearer {admin_token}"}
    made = api.post(
        "/api/v1/papers",
        headers=admin_headers,
        json={
            "name": "ElasticBERT-base",
            "paper_url": "https://arxiv.org/abs/2110.07038",
            "params": 109_000_000,
            "points": [
                {"task": "SST-2", "point": f"exit{k}", "performance": p, "flops": f}
                for k, p, f in ((3, 83.0, 1.1e9), (6, 88.0, 2.2e9), (12, 92.0, 4.3e9))
            ],
        },
    )
    assert made.status_code == 201, made.text
    baseline = made.json()["id"]
    assert (
        api.put(
            "/api/v1/tasks/SST-2/baseline", headers=admin_headers, json={"submission_id": baseline}
        ).status_code
        == 200
    )
    owner_id, owner_email = _owner(site)
    # An early-exit entry just above the baseline (its curve must stay visible over it).
    near = _entry(
        site,
        owner_id,
        "Early exit",
        {"exit12": (4237.0, 92.2), "exit3": (1059.0, 83.3), "exit6": (2118.0, 88.1)},
    )
    small = _entry(site, owner_id, "Small <b>DAN</b>", {"a": (40.0, 80.0), "b": (90.0, 82.5)})
    other = _entry(site, owner_id, "Other", {"x": (3000.0, 86.0)})
    chosen = [near, small, baseline]

    context = chromium.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    watch.attach(page)

    # --- pick entries on the task board -----------------------------------------------------
    page.goto(f"{site.base}/tasks/SST-2")
    measured = page.locator("#measured tbody tr")
    assert measured.first.locator("td.num").first.inner_text() == "1"  # ranks start at 1
    expect(page.locator("#measured")).to_contain_text("Uni X")
    for sid in chosen:
        page.locator(f'input[name=ids][value="{sid}"]').check()
    page.click("#compare-selected")
    page.wait_for_url(re.compile(r"/compare\?"))
    page.wait_for_selector("body[data-plots-ready=true]")
    flops = page.evaluate(TRACES, "plot-flops")
    params = page.evaluate(TRACES, "plot-params")

    names = [t["name"] for t in flops]
    # Baseline and front below, the entries above them (drawn later = on top).
    assert names.index("Pareto front") < names.index("Early exit")
    (baseline_trace,) = [n for n in names if n.startswith("baseline: ElasticBERT-base")]
    assert names.index(baseline_trace) < names.index("Early exit")
    legend = page.locator("#plot-flops .legendtext").all_text_contents()
    assert {"Early exit", "Small <b>DAN</b>", "Pareto front"} <= set(legend), legend
    # One colour per entry: the same on both plots, in the table, and the server's choice.
    for sid, name in ((near, "Early exit"), (small, "Small &lt;b&gt;DAN&lt;/b&gt;")):
        on_flops = next(t for t in flops if t["name"] == name)
        on_params = next(t for t in params if t["name"] == name)
        assert on_flops["colour"] == on_params["colour"] == entry_colour(sid)
        assert on_flops["marker"] == on_params["marker"] == entry_colour(sid)
        swatch = page.locator(f'#compare-table tr[data-submission="{sid}"] .swatch').first
        rgb = swatch.evaluate("e => getComputedStyle(e).backgroundColor")
        hexed = "#" + "".join(f"{int(v):02x}" for v in re.findall(r"\d+", rgb)[:3])
        assert hexed == entry_colour(sid)
    early = next(t for t in flops if t["name"] == "Early exit")
    assert early["x"] == sorted(early["x"])  # cheapest first: exit3, exit6, exit12
    assert [re.search(r"exit\d+", t).group(0) for t in early["text"]] == [  # type: ignore[union-attr]
        "exit3",
        "exit6",
        "exit12",
    ]
    assert other not in {i for t in flops for i in (t["ids"] or [])}  # not picked, not drawn
    shoot(page, "compare")

    # --- the link reproduces the view --------------------------------------------------------
    link = page.locator("#compare-link").get_attribute("href")
    assert link is not None
    assert "ids=" in link
    again = context.new_page()
    watch.attach(again)
    again.goto(site.base + link)
    again.wait_for_selector("body[data-plots-ready=true]")
    assert again.evaluate(TRACES, "plot-flops") == flops
    assert again.evaluate(TRACES, "plot-params") == params
    again.close()

    # --- exports: figures through Plotly, the table from the server --------------------------
    svg = _download(page, 'button[data-export="plot-flops"][data-format="svg"]', tmp_path)
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "Early exit" in svg.read_text()
    png = _download(page, 'button[data-export="plot-params"][data-format="png"]', tmp_path)
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (900, 560)
    table = list(csv.DictReader(io.StringIO(_download(page, "#export-csv", tmp_path).read_text())))
    assert [int(r["submission_id"]) for r in table] == [near] * 3 + [small] * 2 + [baseline] * 3
    latex = _download(page, "#export-latex", tmp_path).read_text()
    assert "\\begin{tabular}" in latex
    assert "counter version 2.0" in latex

    # --- linear axis, GFLOPs: a new URL ---------------------------------------------------------
    page.check('input[name=scale][value="linear"]')
    page.select_option("#unit", "G")
    page.click("#compare-apply")
    page.wait_for_url(re.compile(r"scale=linear.*unit=G"))
    page.wait_for_selector("body[data-plots-ready=true]")
    assert page.evaluate("document.getElementById('plot-flops')._fullLayout.xaxis.type") == (
        "linear"
    )
    early_g = next(t for t in page.evaluate(TRACES, "plot-flops") if t["name"] == "Early exit")
    assert early_g["x"] == pytest.approx([1.059, 2.118, 4.237])

    # --- the owner's page: its own plot, then rename, unpublish, publish, withdraw -----------
    log_in(page, site, owner_email)
    page.goto(f"{site.base}/submissions/{near}")
    page.locator("#own-flops-1 .main-svg").first.wait_for()
    own = page.evaluate(TRACES, "own-flops-1")
    mine = next(t for t in own if t["name"] == "Early exit")
    assert mine["colour"] == entry_colour(near)
    assert mine["x"] == sorted(mine["x"])
    assert any(t["name"].startswith("baseline") for t in own)
    assert any(t["name"] == "Pareto front" for t in own)
    shoot(page, "submission-plot")

    page.click("#edit-details summary")
    page.fill("#edit-name", "Early exit v2")
    page.fill("#edit-code", "https://example.org/code")
    page.click("#edit-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Early exit v2")
    expect(page.locator(".notice")).to_contain_text("Saved.")
    page.click("#visibility-form button[value=private]")
    expect(page.locator("#visibility-now")).to_have_text("private")
    assert "Early exit v2" not in httpx.get(f"{site.base}/tasks/SST-2").text
    page.click("#visibility-form button[value=public]")
    expect(page.locator("#visibility-now")).to_have_text("public")
    page.click("#withdraw-button")  # the box is not ticked: the browser keeps the form
    assert page.url.endswith(f"/submissions/{near}#owner-actions") or page.url.endswith(
        f"/submissions/{near}"
    )
    page.check("#withdraw-confirm")
    page.click("#withdraw-button")
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator(".notice")).to_contain_text(f"Submission {near} was withdrawn.")
    with site.db() as session:
        row = session.get(Submission, near)
        assert row is not None
        assert row.state is SubmissionState.WITHDRAWN
        assert session.query(Result).filter_by(submission_id=near).count() == 0

    context.close()
    api.close()
    assert watch.dialogs == [], watch.dialogs
    assert watch.problems == [], "\n".join(watch.problems)
    _ = admin_email
