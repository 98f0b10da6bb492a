"""The compare view, entry colours, the owner's forms on a submission page, and the boards'
owner / affiliation / date columns, through TestClient (SQLite only: the page logic does not
depend on the database; the browser module drives the same pages on PostgreSQL).

The browser checks (plots, legend, colours across plots, export buttons) are in
test_browser_compare.py (slow).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InvalidInputError
from core.models import Result, Submission, SubmissionState, Task, Visibility
from tests.api_helpers import Api, ApiUser
from tests.factories import add_points
from tests.test_pages import HTML, browser, csrf_of, paper, set_baseline
from web.views.colours import BASELINE_COLOUR, PALETTE, colour_of, entry_colour
from web.views.compare import (
    MAX_ENTRIES,
    CompareQuery,
    latex_escape,
    parse_compare_query,
)


@pytest.fixture
def api(sqlite_seeded_template: Path, tmp_path: Path) -> Iterator[Api]:
    """The app on a copy of the seeded SQLite template (the five ELUE tasks)."""
    db = tmp_path / "db.sqlite"
    db.write_bytes(sqlite_seeded_template.read_bytes())
    app = Api.start(f"sqlite:///{db}", tmp_path / "data")
    yield app
    app.close()


def _measured(api: Api, owner: ApiUser, name: str, points: list[tuple[float, float]]) -> int:
    """A listed measured entry on SST-2 counted by counter 2.0: (MFLOPs, performance)."""
    with api.db() as session:
        task = session.query(Task).filter_by(name="SST-2").one()
        sub = Submission(
            name=name,
            owner_id=owner.id,
            state=SubmissionState.DONE,
            visibility=Visibility.PUBLIC,
            params=14_000_000,
        )
        session.add(sub)
        session.flush()
        for row in add_points(session, sub, task, points):
            row.counter_version = "2.0"
        return sub.id


# --- pure parts ---------------------------------------------------------------------------------


def test_compare_query_parsing_and_its_errors() -> None:
    query = parse_compare_query("SST-2", ["12,15", "40", " 15 ", ""], "linear", "G")
    assert query == CompareQuery("SST-2", (12, 15, 40), "linear", "G")
    assert query.url() == "/compare?task=SST-2&ids=12%2C15%2C40&scale=linear&unit=G"
    assert parse_compare_query("SST-2", [query.params()["ids"]], "linear", "G") == query
    assert CompareQuery("SST-2", (3,)).url("/compare.csv") == "/compare.csv?task=SST-2&ids=3"
    too_many = [",".join(str(i) for i in range(1, MAX_ENTRIES + 2))]
    with pytest.raises(InvalidInputError) as caught:
        parse_compare_query("SST-2", too_many)
    assert [p.problem for p in caught.value.problems] == [
        "12 entries chosen; compare at most 11 at a time (untick some)"
    ]
    with pytest.raises(InvalidInputError) as caught:
        parse_compare_query("SST-2", ["7,x1,-3"], "cubic", "T")
    problems = [p.problem for p in caught.value.problems]
    assert problems == [
        "'x1' is not an entry id",
        "'-3' is not an entry id",
        "scale must be log or linear, not 'cubic'",
        "unit must be one of 1, K, M, G, not 'T'",
    ]


def test_entry_colours_are_a_stable_function_of_the_id() -> None:
    # Pinned: a colour must not change between releases (shared figures, screenshots).
    assert [entry_colour(i) for i in (1, 2, 3, 12, 40)] == [
        "#98df8a",
        "#9467bd",
        "#f7b6d2",
        "#bcbd22",
        "#ff9896",
    ]
    assert all(entry_colour(i) in PALETTE for i in range(1, 500))
    # Any 11 consecutive ids (entries submitted around the same time) get 11 colours.
    for start in (1, 97, 4_000, 123_456):
        assert len({entry_colour(i) for i in range(start, start + MAX_ENTRIES)}) == MAX_ENTRIES
    assert colour_of(5, is_baseline=True) == BASELINE_COLOUR  # the baseline: black everywhere
    assert colour_of(5, is_baseline=False) == entry_colour(5)
    assert "#7f7f7f" not in PALETTE
    assert "#111111" not in PALETTE


def test_latex_escape() -> None:
    assert latex_escape("a_b & 50% #1 {x} ~ ^ \\ $") == (
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} \$"
    )


# --- pages ------------------------------------------------------------------------------------


def _plot_data(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="plot-data"[^>]*>(.*?)</script>', html)
    assert match, "no plot data in the page"
    data: dict[str, object] = json.loads(match.group(1))
    return data


def test_compare_view_url_table_and_exports(api: Api) -> None:
    admin = api.user(admin=True, name="Admin")
    owner = api.user(name="Ada")
    base = paper(api, admin, "elastic base")
    set_baseline(api, admin, base)
    fast = _measured(api, owner, "Fast_exit & co", [(900.0, 84.0), (300.0, 80.0)])
    slow = _measured(api, owner, "Slow", [(5000.0, 91.0)])
    client = browser(api)

    url = f"/compare?task=SST-2&ids={fast}&ids={slow},{base}&unit=G"
    page = client.get(url)
    assert page.status_code == 200, page.text
    html = page.text
    # The canonical link reproduces the view (comma-separated ids, the chosen unit).
    link = f"/compare?task=SST-2&amp;ids={fast}%2C{slow}%2C{base}&amp;unit=G"
    assert link in html
    assert client.get(link.replace("&amp;", "&")).text.count("<tr data-submission=") == 5
    data = _plot_data(html)
    subs = {s[0]: s for s in data["subs"]}  # type: ignore[attr-defined]
    assert subs[fast][1] == "Fast_exit & co"
    assert subs[fast][6] == entry_colour(fast)
    assert subs[slow][6] == entry_colour(slow)
    assert data["highlight"] == 3
    assert data["others"] is False
    # Table rows: entries in the URL's order, each one's points cheapest first.
    rows = re.findall(r'<tr data-submission="(\d+)">(.*?)</tr>', html)
    assert [int(r[0]) for r in rows] == [fast, fast, slow, base, base]
    assert "0.3</td>" in rows[0][1]
    assert "0.9</td>" in rows[1][1]
    assert "counter version 2.0" in html

    exported = client.get(f"/compare.csv?task=SST-2&ids={fast},{slow}&unit=M")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["submission_id"], r["point"] != "", float(r["flops"])) for r in table] == [
        (str(fast), True, 300.0),
        (str(fast), True, 900.0),
        (str(slow), True, 5000.0),
    ]
    assert table[0]["entry"] == "Fast_exit & co"
    assert float(table[2]["performance"]) == 91.0

    latex = client.get(f"/compare.tex?task=SST-2&ids={fast},{slow}").text
    assert latex.startswith("\\begin{table}")
    assert "\\begin{tabular}{llrrrr}" in latex
    assert "\\caption{" in latex
    assert "counter version 2.0" in latex
    body = latex.split("\\begin{tabular}{llrrrr}\n")[1].split("\\end{tabular}")[0]
    cells = [line for line in body.splitlines() if line.endswith("\\\\")]
    assert len(cells) == 4
    assert all(line.count(" & ") == 5 for line in cells)
    assert "Fast\\_exit \\& co" in latex


def test_compare_view_refuses_too_many_and_names_missing_entries(api: Api) -> None:
    client = browser(api)
    ids = ",".join(str(i) for i in range(1, 13))
    refused = client.get(f"/compare?task=SST-2&ids={ids}")
    assert refused.status_code == 400
    assert "compare at most 11 at a time" in refused.text
    assert client.get(f"/compare.csv?task=SST-2&ids={ids}").status_code == 422
    assert client.get("/compare?task=NOPE&ids=1").status_code == 404
    missing = client.get("/compare?task=SST-2&ids=999")
    assert missing.status_code == 200
    assert "#999" in missing.text
    assert "Not on the SST-2 board" in missing.text


def test_owner_actions_need_the_owner_and_the_csrf_token(api: Api) -> None:
    owner = api.user(name="Owner")
    other = api.user(name="Someone else")
    sid = paper(api, owner, "mine")
    mine = browser(api, owner)
    page = mine.get(f"/submissions/{sid}")
    assert 'id="owner-actions"' in page.text
    assert 'id="withdraw-form"' in page.text
    csrf = csrf_of(page.text)

    # Someone else: no forms on the page, and their posts are refused (403), token or not.
    theirs = browser(api, other)
    assert 'id="owner-actions"' not in theirs.get(f"/submissions/{sid}").text
    their_csrf = csrf_of(theirs.get("/account").text)
    for action, data in (
        ("edit", {"name": "stolen"}),
        ("visibility", {"visibility": "private"}),
        ("withdraw", {"confirm": "yes"}),
    ):
        refused = theirs.post(
            f"/submissions/{sid}/{action}", data={**data, "csrf_token": their_csrf}
        )
        assert refused.status_code == 403, action
    # The owner without the CSRF token: refused.
    assert mine.post(f"/submissions/{sid}/edit", data={"name": "x"}).status_code == 403

    renamed = mine.post(
        f"/submissions/{sid}/edit",
        data={
            "name": "mine, renamed",
            "description": "two\r\nlines",
            "paper_url": "https://example.org/p2",
            "code_url": "https://example.org/code",
            "csrf_token": csrf,
        },
    )
    assert renamed.status_code == 303
    bad = mine.post(
        f"/submissions/{sid}/edit", data={"paper_url": "", "code_url": "ftp:x", "csrf_token": csrf}
    )
    assert bad.status_code == 303
    assert "Not done" in mine.get(f"/submissions/{sid}").text
    private = mine.post(
        f"/submissions/{sid}/visibility", data={"visibility": "private", "csrf_token": csrf}
    )
    assert private.status_code == 303
    with api.db() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert (sub.name, sub.description, sub.paper_url, sub.code_url, sub.visibility) == (
            "mine, renamed",
            "two\nlines",
            "https://example.org/p2",
            "https://example.org/code",
            Visibility.PRIVATE,
        )
    unconfirmed = mine.post(f"/submissions/{sid}/withdraw", data={"csrf_token": csrf})
    assert unconfirmed.status_code == 303
    with api.db() as session:
        assert session.get(Submission, sid).state is not SubmissionState.WITHDRAWN  # type: ignore[union-attr]
    withdrawn = mine.post(
        f"/submissions/{sid}/withdraw", data={"confirm": "yes", "csrf_token": csrf}
    )
    assert (withdrawn.status_code, withdrawn.headers["location"]) == (303, "/account")
    with api.db() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert sub.state is SubmissionState.WITHDRAWN
        assert session.query(Result).filter_by(submission_id=sid).count() == 0


def test_task_ranks_start_at_one_and_boards_show_owner_affiliation_date(api: Api) -> None:
    admin = api.user(admin=True, name="Admin")
    owner = api.user(name="Grace")
    base = paper(api, admin, "elastic base")
    set_baseline(api, admin, base)
    below = _measured(api, owner, "below the baseline", [(1200.0, 80.0)])
    client = browser(api, owner)
    assert "Uni X" not in client.get("/tasks/SST-2").text  # the board is cached from here on
    csrf = csrf_of(client.get("/account").text)
    saved = client.post("/account/profile", data={"affiliation": "Uni X", "csrf_token": csrf})
    assert saved.status_code == 303
    assert 'value="Uni X"' in client.get("/account").text

    task = client.get("/tasks/SST-2").text
    measured = task.split('id="measured"')[1].split("</table>")[0]
    assert re.findall(r'<td class="num">(\d+)</td>\s*<th scope="row">', measured) == ["1"]
    assert f'value="{below}" form="compare-pick"' in measured
    assert "Grace" in measured
    assert "Uni X" in measured
    home = client.get("/").text
    assert "Grace" in home
    assert "Uni X" in home
    assert "Affiliation" in home
    exported = client.get("/api/v1/leaderboard?format=csv").text
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(exported))}
    assert rows["below the baseline"]["owner"] == "Grace"
    assert rows["below the baseline"]["affiliation"] == "Uni X"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", rows["elastic base"]["submitted_at"]
    )
    refused = client.post("/account/profile", data={"affiliation": "x" * 201, "csrf_token": csrf})
    assert refused.status_code == 303
    assert "at most 200 characters" in client.get("/account").text


def test_submission_page_plots_its_own_curve_cheapest_first(api: Api) -> None:
    owner = api.user()
    sid = _measured(api, owner, "early exit", [(4237.0, 91.0), (1059.0, 85.0), (2118.0, 89.0)])
    with api.db() as session:
        for row in session.query(Result).filter_by(submission_id=sid):
            row.point = {4237e6: "exit12", 1059e6: "exit3", 2118e6: "exit6"}[row.flops_mean]
    html = browser(api).get(f"/submissions/{sid}", headers=HTML).text
    match = re.search(r'<script type="application/json" id="own-data-1">(.*?)</script>', html)
    assert match, "no own plot on the page"
    data = json.loads(match.group(1))
    assert data["subs"][0][0] == sid
    assert data["subs"][0][6] == entry_colour(sid)
    own = [p for p in data["points"] if p[0] == 0]
    assert [p[11] for p in own] == ["exit3", "exit6", "exit12"]
    assert 'href="/compare?task=SST-2&amp;ids=' in html
