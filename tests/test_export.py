"""Moving a leaderboard: `paretoboard export results` on SQLite, `import results` on PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.arrays import pack_array, unpack_array
from core.db.session import make_engine, transaction
from core.errors import InvalidInputError
from core.models import (
    Result,
    ResultCost,
    Submission,
    SubmissionKind,
    SubmissionState,
    Task,
    User,
    Visibility,
)
from core.results_transfer import export_results, import_results
from core.users import service as user_service

pytest_plugins = ["tests.api_helpers"]
PB = Path(sys.executable).with_name("paretoboard")
PASSWORD = "correct horse battery staple"


def _result(session: Session, sub: Submission, task: Task, point: str, perf: float) -> Result:
    result = Result(
        submission_id=sub.id,
        task_id=task.id,
        point=point,
        performance=perf,
        metrics={"accuracy": perf},
        gold_sha256=task.gold_sha256,
    )
    session.add(result)
    session.flush()
    return result


def _count(session: Session, result: Result, task: Task, seed: int) -> np.ndarray:
    flops = np.random.default_rng(seed).integers(10**6, 10**9, size=task.test_size)
    result.cost_status = "counted"
    result.flops_mean = float(flops.mean())
    result.flops_median = float(np.median(flops))
    result.flops_p10, result.flops_p90 = (float(v) for v in np.percentile(flops, [10, 90]))
    result.flops_max = float(flops.max())
    result.macs_mean = result.flops_mean / 2
    result.params = 123_456
    result.device = "cpu"
    result.counter_versions = {"torch": "2.13.0", "fvcore": "0.1.5"}
    session.add(
        ResultCost(
            result_id=result.id,
            n=int(flops.size),
            flops=pack_array(flops),
            per_operator={"linear": float(flops.mean())},
            per_module={"encoder": float(flops.mean())},
            uncounted={"aten::tanh": 10.0},
            mismatches=[{"index": 3, "declared": 9, "tokenized": 8}],
            details={"content_dependent": False, "n_traces": 4},
        )
    )
    return flops


def _populate(session: Session) -> dict[str, np.ndarray]:
    """Finished entries of three kinds of owner, a baseline, and what is never exported."""
    tasks = {t.name: t for t in session.scalars(select(Task))}
    sst2, snli = tasks["SST-2"], tasks["SNLI"]
    alice = user_service.create_user(
        session, email="alice@example.org", display_name="Alice", password=PASSWORD
    )
    bob = user_service.create_user(
        session, email="bob@example.org", display_name="Bob", password=PASSWORD
    )
    measured = Submission(
        owner_id=alice.id,
        name="tiny multi-exit",
        description="two exits",
        paper_url="https://example.org/paper",
        kind=SubmissionKind.MEASURED,
        visibility=Visibility.PUBLIC,
        verified=True,
        tokenizer_name="bert-base-uncased",
        params=123_456,
        state=SubmissionState.DONE,
    )
    private = Submission(
        owner_id=bob.id,
        name="bob's private run",
        kind=SubmissionKind.MEASURED,
        visibility=Visibility.PRIVATE,
        params=99,
        state=SubmissionState.DONE,
    )
    baseline = Submission(
        owner_id=None,
        name="ElasticBERT-base (paper)",
        kind=SubmissionKind.SELF_REPORTED,
        visibility=Visibility.PUBLIC,
        state=SubmissionState.DONE,
    )
    failed = Submission(owner_id=alice.id, name="broken", state=SubmissionState.FAILED)
    session.add_all([measured, private, baseline, failed])
    session.flush()
    arrays = {
        "exit3": _count(session, _result(session, measured, sst2, "exit3", 84.5), sst2, 1),
        "exit12": _count(session, _result(session, measured, sst2, "exit12", 88.25), sst2, 2),
        "snli": _count(session, _result(session, measured, snli, "", 77.0), snli, 3),
        "bob": _count(session, _result(session, private, sst2, "", 50.0), sst2, 4),
    }
    for point, (mflops, perf) in enumerate([(1059, 84.1), (4237, 88.6)]):
        r = _result(session, baseline, sst2, f"exit{point}", perf)
        r.flops_mean = mflops * 1e6
        r.cost_status = "reported"
    _result(session, failed, sst2, "", 10.0)
    sst2.baseline_submission_id = baseline.id
    session.flush()
    return arrays


@pytest.fixture
def sqlite_source(sqlite_seeded_template: Path, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    db = tmp_path / "source.db"
    shutil.copyfile(sqlite_seeded_template, db)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    with transaction(engine) as session:
        arrays = _populate(session)
    engine.dispose()
    return url, arrays


@pytest.fixture
def pg_destination(api_pg_seeded_template: str, pg_databases: Any) -> str:
    """A fresh PostgreSQL database with the ELUE tasks (and Alice's account, not Bob's)."""
    name = f"pb_test_{uuid.uuid4().hex[:12]}"
    with pg_databases.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{api_pg_seeded_template}"'))
    pg_databases.created.append(name)
    url = make_url(pg_databases.admin.url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    with transaction(engine) as session:
        user_service.create_user(
            session, email="Alice@Example.org", display_name="Alice", password=PASSWORD
        )
    engine.dispose()
    return url


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env["PARETOBOARD_DB__URL"] = url
    return subprocess.run(
        [str(PB), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _normalized(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without what differs between installations (ids, export time, source)."""
    names = {s["ref"]: s["name"] for s in doc["submissions"]}
    subs = []
    for sub in doc["submissions"]:
        sub = {k: v for k, v in sub.items() if k != "ref"}
        subs.append(sub)
    tasks = [{**t, "baseline": names.get(t["baseline"])} for t in doc["tasks"]]
    return {"tasks": tasks, "submissions": sorted(subs, key=lambda s: s["name"])}


def test_round_trip_sqlite_to_postgresql(
    sqlite_source: tuple[str, dict[str, Any]], pg_destination: str, tmp_path: Path
) -> None:
    source, arrays = sqlite_source
    out = tmp_path / "results.json"
    exported = _cli(source, "export", "results", "--output", str(out), "--per-sample")
    assert exported.returncode == 0, exported.stderr
    assert "exported 3 submissions, 6 results" in exported.stdout
    doc = json.loads(out.read_text())
    assert doc["format"] == "paretoboard-results"
    assert doc["version"] == 1
    assert "broken" not in {s["name"] for s in doc["submissions"]}  # only finished entries

    imported = _cli(pg_destination, "import", "results", str(out))
    assert imported.returncode == 0, imported.stderr
    assert "imported 3 submissions (6 results); 0 already present" in imported.stdout
    assert (
        "1 imported as operator entries (their owner has no account here): bob's private run"
        in imported.stdout
    )
    assert "baselines set for: SST-2" in imported.stdout

    engine = make_engine(pg_destination)
    with transaction(engine) as session:
        owners = {
            s.name: (session.get(User, s.owner_id).email if s.owner_id else None)  # type: ignore[union-attr]
            for s in session.scalars(select(Submission))
        }
        assert owners == {
            "tiny multi-exit": "alice@example.org",
            "bob's private run": None,
            "ElasticBERT-base (paper)": None,
        }
        private = session.scalars(select(Submission).where(Submission.name.like("bob%"))).one()
        assert private.visibility is Visibility.PRIVATE
        assert private.state is SubmissionState.DONE
        sst2 = session.scalars(select(Task).where(Task.name == "SST-2")).one()
        baseline = session.get(Submission, sst2.baseline_submission_id)
        assert baseline is not None
        assert baseline.kind is SubmissionKind.SELF_REPORTED
        exit3 = session.scalars(select(Result).where(Result.point == "exit3")).one()
        cost = session.get(ResultCost, exit3.id)
        assert cost is not None
        np.testing.assert_array_equal(unpack_array(cost.flops), arrays["exit3"])
        assert cost.mismatches == [{"index": 3, "declared": 9, "tokenized": 8}]
        assert exit3.file_id is None  # files stay with the upload folder's backup
        assert session.scalar(select(func.count()).select_from(ResultCost)) == 4

    # idempotent: nothing new the second time
    again = _cli(pg_destination, "import", "results", str(out))
    assert again.returncode == 0, again.stderr
    assert "imported 0 submissions (0 results); 3 already present" in again.stdout
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 3
        assert session.scalar(select(func.count()).select_from(Result)) == 6
    # and the destination exports the same leaderboard
    back = tmp_path / "back.json"
    assert (
        _cli(pg_destination, "export", "results", "-o", str(back), "--per-sample").returncode == 0
    )
    expected = _normalized(doc)
    for sub in expected["submissions"]:
        if sub["owner"] and sub["owner"]["email"] == "bob@example.org":
            sub["owner"] = None  # no account for Bob at the destination
    assert _normalized(json.loads(back.read_text())) == expected
    engine.dispose()


def test_without_per_sample_or_owners(sqlite_source: tuple[str, dict[str, Any]]) -> None:
    engine = make_engine(sqlite_source[0])
    with transaction(engine) as session:
        doc = export_results(session, per_sample=False, owners=False)
    engine.dispose()
    assert all(s["owner"] is None for s in doc["submissions"])
    assert all(r["cost"] is None for s in doc["submissions"] for r in s["results"])
    counted = [r for s in doc["submissions"] for r in s["results"] if r["point"] == "exit3"]
    assert counted[0]["flops_mean"] > 0  # the summary travels without the arrays


def _doc(sqlite_source: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    engine = make_engine(sqlite_source[0])
    with transaction(engine) as session:
        doc = export_results(session, per_sample=True)
    engine.dispose()
    return doc


def test_refuses_what_does_not_fit(
    sqlite_source: tuple[str, dict[str, Any]], sqlite_templates: dict[str, Path], tmp_path: Path
) -> None:
    doc = _doc(sqlite_source)
    empty = tmp_path / "empty.db"
    shutil.copyfile(sqlite_templates["empty"], empty)
    engine = make_engine(f"sqlite:///{empty}")
    with Session(engine) as session, pytest.raises(InvalidInputError) as missing:
        import_results(session, doc)
    assert {p.problem for p in missing.value.problems} == {
        "task 'SNLI' does not exist here (paretoboard tasks import DIR first)",
        "task 'SST-2' does not exist here (paretoboard tasks import DIR first)",
    }
    with Session(engine) as session, pytest.raises(InvalidInputError) as wrong:
        import_results(session, {"format": "something else", "version": 1})
    assert "format" in str(wrong.value)
    engine.dispose()


def test_refuses_other_gold_and_broken_arrays(
    sqlite_source: tuple[str, dict[str, Any]], sqlite_seeded_template: Path, tmp_path: Path
) -> None:
    doc = _doc(sqlite_source)
    db = tmp_path / "dest.db"
    shutil.copyfile(sqlite_seeded_template, db)
    engine = make_engine(f"sqlite:///{db}")
    other_gold = json.loads(json.dumps(doc))
    other_gold["submissions"][0]["results"][0]["gold_sha256"] = "0" * 64
    with Session(engine) as session, pytest.raises(InvalidInputError) as gold:
        import_results(session, other_gold)
    assert "other gold labels" in str(gold.value)
    broken = json.loads(json.dumps(doc))
    with_cost = next(r for s in broken["submissions"] for r in s["results"] if r["cost"])
    with_cost["cost"]["flops"] = base64.b64encode(b"not an array").decode()
    short = next(
        r for s in broken["submissions"] for r in s["results"] if r["cost"] and r is not with_cost
    )
    short["cost"]["n"] += 1
    with Session(engine) as session, pytest.raises(InvalidInputError) as arrays:
        import_results(session, broken)
    problems = [p.problem for p in arrays.value.problems]
    assert len(problems) == 2
    assert any("unreadable" in p for p in problems)
    assert any("values, not" in p for p in problems)
    with Session(engine) as session:  # nothing was written
        assert session.scalar(select(func.count()).select_from(Submission)) == 0
    engine.dispose()
