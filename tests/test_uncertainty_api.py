"""Intervals, curve summaries, exit diagnostics and the paired bootstrap through the API and
pages, on real ELUE gold scored by the real scoring stage."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select

from core.arrays import unpack_array
from core.leaderboard import set_task_baseline
from core.leaderboard.cache import cache
from core.models import (
    FileRole,
    Result,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionState,
    SubmissionUncertainty,
    TaskUncertainty,
    Visibility,
)
from core.scoring import BootstrapConfig, backfill_uncertainty
from core.settings import REPO_ROOT
from core.storage import LocalBlobStore
from core.tasks.service import get_task
from core.uncertainty import combine_tasks
from tests.api_helpers import Api
from tests.conftest import ELUE_DIR
from tests.factories import MFLOPS, SST2_BASELINE, make_entry
from tests.helpers import noisy_predictions, raw_gold
from tests.processes import free_port, stop, uvicorn_command
from worker import scoring_stage

pytest_plugins = ["tests.api_helpers"]

CHROMIUM = Path("/usr/bin/chromium")  # as tests/test_browser.py
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]


@dataclass
class Scored:
    a: int  # two early-exit points ("fast" with exit layers, "slow")
    b: int  # "fast" only, predictions nearly a's
    private: int  # another user's private entry


def _file(task: str, seed: int, *, exits: bool = False, flip: int = 0) -> bytes:
    preds = noisy_predictions(raw_gold(ELUE_DIR, task), task, seed=seed)
    for i in range(flip):  # a few samples changed: nearly the same predictions
        preds[i] = "1" if preds[i] == "0" else "0"
    if exits:
        rows = [f"{i}\t{p}\t{1 + i % 3 * 5}" for i, p in enumerate(preds)]  # layers 1, 6, 11
        return ("index\tprediction\texit_layer\n" + "\n".join(rows) + "\n").encode()
    return (
        "index\tprediction\n" + "\n".join(f"{i}\t{p}" for i, p in enumerate(preds)) + "\n"
    ).encode()


def _scored(
    api: Api, name: str, files: dict[str, bytes], mflops: dict[str, float], **kw: object
) -> int:
    store = LocalBlobStore(api.settings.storage.uploads_dir)
    with api.db() as session:
        task = get_task(session, "SST-2")
        sub = Submission(  # validated: scoring follows validation (core.submissions.states)
            name=name, kind=SubmissionKind.MEASURED, state=SubmissionState.VALIDATING, **kw
        )
        session.add(sub)
        session.flush()
        for point, data in files.items():
            sha, size = store.put_bytes(data)
            session.add(
                SubmissionFile(
                    submission_id=sub.id,
                    role=FileRole.PREDICTIONS,
                    original_name=f"SST-2.{point}.tsv",
                    sha256=sha,
                    size=size,
                    task_id=task.id,
                    point=point,
                )
            )
        session.flush()
        scoring_stage.score(session, store, sub, api.settings)
        for result in session.scalars(select(Result).where(Result.submission_id == sub.id)):
            result.flops_mean = mflops[result.point] * MFLOPS
            result.cost_status = "counted"
        sub.state = SubmissionState.DONE
        return sub.id


@pytest.fixture
def scored(seeded_api: Api) -> Iterator[tuple[Api, Scored]]:
    api = seeded_api
    cache.clear()
    other = api.user()
    a = _scored(
        api,
        "A",
        {"fast": _file("SST-2", 1, exits=True), "slow": _file("SST-2", 2)},
        {"fast": 1000.0, "slow": 4000.0},
    )
    b = _scored(api, "B", {"fast": _file("SST-2", 1, flip=3)}, {"fast": 1100.0})
    private = _scored(
        api,
        "P",
        {"fast": _file("SST-2", 5)},
        {"fast": 900.0},
        owner_id=other.id,
        visibility=Visibility.PRIVATE,
    )
    with api.db() as session:
        task = get_task(session, "SST-2")
        base = make_entry(session, "Base", {task: SST2_BASELINE}, kind=SubmissionKind.SELF_REPORTED)
        set_task_baseline(session, task_name="SST-2", submission_id=base.id)
    yield api, Scored(a, b, private)
    cache.clear()


def test_intervals_curves_and_diagnostics_through_the_api(scored: tuple[Api, Scored]) -> None:
    api, ids = scored
    with api.db() as session:
        joint = session.get(TaskUncertainty, (ids.a, get_task(session, "SST-2").id))
        assert joint is not None
        assert joint.n_resamples == api.settings.scoring.bootstrap_resamples
        assert set(joint.diagnostics) == {"fast"}
        assert sum(joint.diagnostics["fast"]["counts"]) == 2210
        assert joint.diagnostics["fast"]["layers"] == [1, 6, 11]

    board = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    points = [p for p in board["points"] if p["submission_id"] == ids.a]
    assert len(points) == 2
    for p in points:
        assert p["ci_low"] < p["performance"] < p["ci_high"]
    entry = next(s for s in board["submissions"] if s["submission_id"] == ids.a)
    assert entry["score_ci_low"] < entry["score"] < entry["score_ci_high"]
    assert entry["curve"]["window_low"] == pytest.approx(1059 * MFLOPS)
    assert entry["curve"]["window_high"] == pytest.approx(4000 * MFLOPS)
    base = next(s for s in board["submissions"] if s["is_baseline"])
    assert base["score_ci_low"] is None  # self-reported: no predictions, no interval

    rows = list(
        csv.DictReader(
            io.StringIO(api.client.get("/api/v1/tasks/SST-2/leaderboard?format=csv").text)
        )
    )
    row = next(r for r in rows if r["submission_id"] == str(ids.a))
    assert float(row["performance_ci_low"]) < float(row["performance"])
    assert float(row["task_score_ci_high"]) > float(row["task_score"])

    overall = api.client.get("/api/v1/leaderboard").json()
    a_entry = next(e for e in overall["entries"] if e["submission_id"] == ids.a)
    assert a_entry["score_ci_low"] < a_entry["score"] < a_entry["score_ci_high"]  # one task
    assert a_entry["task_score_intervals"]["SST-2"] == pytest.approx(
        [entry["score_ci_low"], entry["score_ci_high"]]
    )

    read = api.client.get(f"/api/v1/submissions/{ids.a}").json()
    (task,) = read["results"]
    assert task["score"] == pytest.approx(entry["score"])
    assert task["score_ci_low"] == pytest.approx(entry["score_ci_low"])
    assert task["exit_diagnostics"]["fast"]["counts"] == joint.diagnostics["fast"]["counts"]

    page = api.client.get(f"/submissions/{ids.a}").text
    assert 'class="exit-diagnostics"' in page
    assert f"[{points[0]['ci_low']:.2f}, {points[0]['ci_high']:.2f}]" in page
    assert "over 1.06 GFLOPs to 4 GFLOPs" in page
    task_page = api.client.get("/tasks/SST-2").text
    assert 'class="ci"' in task_page
    assert 'class="curve-summary"' in task_page


def test_paired_bootstrap_endpoint(scored: tuple[Api, Scored]) -> None:
    api, ids = scored
    near = api.client.get(f"/api/v1/tasks/SST-2/paired?a={ids.a}&b={ids.b}").json()
    (pair,) = near["points"]  # only "fast" is shared
    assert (pair["a_point"], pair["b_point"]) == ("fast", "fast")
    assert pair["within_noise"] is True
    assert pair["ci_low"] <= 0 <= pair["ci_high"]
    assert near["score"] is not None
    assert near["n_resamples"] == api.settings.scoring.bootstrap_resamples
    assert "gold" not in str(near)

    # a's two points differ by several points of accuracy: clearly not noise.
    far = api.client.get(
        f"/api/v1/tasks/SST-2/paired?a={ids.a}&b={ids.a}&a_point=fast&b_point=slow"
    ).json()
    (pair,) = far["points"]
    assert pair["difference"] == pytest.approx(pair["a_performance"] - pair["b_performance"])
    assert pair["within_noise"] is (pair["ci_low"] <= 0 <= pair["ci_high"])

    hidden = api.client.get(f"/api/v1/tasks/SST-2/paired?a={ids.a}&b={ids.private}")
    assert hidden.status_code == 404
    unknown = api.client.get(f"/api/v1/tasks/SST-2/paired?a={ids.a}&b={ids.b}&point=nope")
    assert unknown.status_code == 422
    assert "nope" in unknown.text

    # a self-reported entry has predictions, but its costs are typed in: refused, and said so
    board = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    base = next(s for s in board["submissions"] if s["is_baseline"])
    typed = api.client.get(f"/api/v1/tasks/SST-2/paired?a={ids.a}&b={base['submission_id']}")
    assert typed.status_code == 422
    assert "platform-counted entries only" in typed.text
    assert "no predictions" not in typed.text


def test_overall_interval_from_the_stored_summary_equals_the_replicates(
    scored: tuple[Api, Scored],
) -> None:
    """The overall board reads `submission_uncertainty` (no replicates); its interval is the
    one the replicates give with the baseline terms, and without the row (e.g. covered tasks
    differ) the board falls back to the replicates with the same result."""
    api, ids = scored
    with api.db() as session:
        task = get_task(session, "SST-2")
        joint = session.get(TaskUncertainty, (ids.a, task.id))
        summary = session.get(SubmissionUncertainty, ids.a)
        assert joint is not None
        assert joint.replicates is not None
        assert summary is not None
        assert summary.tasks == {str(task.id): joint.result_ids}
        replicates = unpack_array(joint.replicates)
    board = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    entry = next(s for s in board["submissions"] if s["submission_id"] == ids.a)
    shift = entry["score"] - joint.mean_performance
    expected = combine_tasks([replicates], [shift])
    overall = api.client.get("/api/v1/leaderboard").json()
    a_entry = next(e for e in overall["entries"] if e["submission_id"] == ids.a)
    assert (a_entry["score_ci_low"], a_entry["score_ci_high"]) == pytest.approx(
        (expected.low, expected.high)
    )
    with api.db() as session:
        session.execute(
            delete(SubmissionUncertainty).where(SubmissionUncertainty.submission_id == ids.a)
        )
    cache.clear()
    again = api.client.get("/api/v1/leaderboard").json()
    a_entry = next(e for e in again["entries"] if e["submission_id"] == ids.a)
    assert (a_entry["score_ci_low"], a_entry["score_ci_high"]) == pytest.approx(
        (expected.low, expected.high)
    )


def test_compare_view_shows_paired_differences_against_a_reference(
    scored: tuple[Api, Scored],
) -> None:
    """The compare view runs the same paired bootstrap as the API against a reference entry:
    B (nearly A's predictions) is "within noise" of A; the table, CSV and LaTeX carry the
    same-point difference; a reference outside the chosen entries is refused."""
    api, ids = scored
    api_pair = api.client.get(f"/api/v1/tasks/SST-2/paired?a={ids.b}&b={ids.a}").json()
    page = api.client.get(f"/compare?task=SST-2&ids={ids.a},{ids.b}")
    assert page.status_code == 200
    paired = page.text.split('id="compare-paired"', 1)[1].split("</table>", 1)[0]
    row = paired.split(f'data-submission="{ids.b}"', 1)[1].split("</tr>", 1)[0]
    score_cell, perf_cell = row.split('<td class="num">')[1:3]
    assert "within noise" in perf_cell  # the same accuracy within the test set's noise
    # the task score also counts the baseline at each entry's own FLOPs: B's one cheap point
    score = api_pair["score"]
    verdict = (
        "within noise"
        if score["within_noise"]
        else ("above" if score["difference"] > 0 else "below")
    )
    assert f'">{verdict}</span>' in score_cell
    assert f"{api_pair['mean_performance']['ci_low']:+.2f}".replace("-", "\u2212") in row
    assert f'data-submission="{ids.a}"' not in paired  # the reference is not compared to itself

    rows = list(
        csv.DictReader(
            io.StringIO(api.client.get(f"/compare.csv?task=SST-2&ids={ids.a},{ids.b}").text)
        )
    )
    b_fast = next(r for r in rows if r["submission_id"] == str(ids.b))
    (same,) = api_pair["points"]
    assert float(b_fast["vs_ref"]) == pytest.approx(same["difference"])
    assert float(b_fast["vs_ref_ci_low"]) == pytest.approx(same["ci_low"])
    assert b_fast["vs_ref_within_noise"] == "True"
    a_slow = next(r for r in rows if r["submission_id"] == str(ids.a) and r["point"] == "slow")
    assert a_slow["vs_ref"] == ""  # the reference itself

    latex = api.client.get(f"/compare.tex?task=SST-2&ids={ids.a},{ids.b}").text
    assert "paired bootstrap over the test samples" in latex
    assert r"\begin{tabular}{llrrrrr}" in latex

    # B as the reference: A is compared with B instead.
    swapped = api.client.get(f"/compare?task=SST-2&ids={ids.a},{ids.b}&ref={ids.b}").text
    paired = swapped.split('id="compare-paired"', 1)[1].split("</table>", 1)[0]
    assert f'data-submission="{ids.a}"' in paired
    refused = api.client.get(f"/compare?task=SST-2&ids={ids.a}&ref={ids.b}")
    assert refused.status_code == 400
    assert "not among the chosen entries" in refused.text


def test_rows_without_intervals_show_a_dash_until_backfilled(scored: tuple[Api, Scored]) -> None:
    api, ids = scored
    with api.db() as session:  # as rows scored before migration 0013
        for result in session.scalars(select(Result).where(Result.submission_id == ids.a)):
            result.ci_low = result.ci_high = None
        session.execute(delete(TaskUncertainty).where(TaskUncertainty.submission_id == ids.a))
    board = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    entry = next(s for s in board["submissions"] if s["submission_id"] == ids.a)
    assert entry["score"] is not None
    assert entry["score_ci_low"] is None
    page = api.client.get(f"/submissions/{ids.a}").text
    assert '<span class="ci" title="95% bootstrap interval' in page
    assert "[" not in page.split('class="ci"', 1)[1].split("</span>", 1)[0]  # a dash, no interval

    config = BootstrapConfig(
        api.settings.scoring.bootstrap_resamples, api.settings.scoring.bootstrap_seed
    )
    store = LocalBlobStore(api.settings.storage.uploads_dir)
    limits = {"max_bytes": 10**8, "max_problems": 50}
    with api.db() as session:
        report = backfill_uncertainty(session, store, config, **limits)
    assert (report.groups, report.results, report.skipped) == (1, 2, [])
    with api.db() as session:
        again = backfill_uncertainty(session, store, config, **limits)
    assert (again.groups, again.results) == (0, 0)  # idempotent
    board = api.client.get("/api/v1/tasks/SST-2/leaderboard").json()
    entry = next(s for s in board["submissions"] if s["submission_id"] == ids.a)
    assert entry["score_ci_low"] < entry["score"] < entry["score_ci_high"]


@pytest.mark.slow  # a browser and a server process: seconds, not milliseconds
def test_intervals_and_exit_plots_in_a_browser(scored: tuple[Api, Scored], tmp_path: Path) -> None:
    """Chromium draws the exit-layer plots with the served Plotly bundle and shows the
    intervals and the curve summary, without console errors."""
    from playwright.sync_api import expect, sync_playwright

    api, ids = scored
    if not api.settings.database_url.startswith("sqlite"):
        pytest.skip("one backend is enough for the browser check")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_MODE="test",
        PARETOBOARD_DB__URL=api.settings.database_url,
        PARETOBOARD_STORAGE__DATA_DIR=str(api.settings.storage.data_dir),
    )
    port = free_port()
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        uvicorn_command(port, "--log-level", "warning"),
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    problems: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{base}/submissions/{ids.a}")
            figure = page.locator(".exit-diagnostics")
            expect(figure).to_have_attribute("data-drawn", "true", timeout=30_000)
            assert figure.locator(".js-plotly-plot").count() == 2
            expect(page.locator("#results .ci").first).to_contain_text("[")
            expect(page.locator(".curve-line")).to_contain_text("GFLOPs")
            page.goto(f"{base}/tasks/SST-2")
            expect(page.locator("#measured .curve-summary").first).to_be_visible()
            browser.close()
    finally:
        stop(proc)
    assert problems == []
