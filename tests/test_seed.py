"""`paretoboard seed`: the published baseline, the example submissions, idempotency, no test gold."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, func, select

from core.arrays import unpack_array
from core.cost_counter import COUNTER_VERSION
from core.db.session import make_engine, transaction
from core.models import (
    FileRole,
    Result,
    ResultCost,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionState,
    Task,
    TaskExample,
    User,
    Visibility,
)
from core.seed import baseline as seed_baseline
from core.seed.baseline import (
    BASELINE_NAME,
    CODE_URL,
    PAPER_URL,
    CountedFlops,
    FlopsRequest,
    read_baselines,
)
from core.seed.dan import load_dan_class
from core.seed.examples import DAN_FILE, DAN_NAME, SEED_EMAIL, TaskData
from core.seed.run import SeedReport, default_trainer, seed
from core.settings import REPO_ROOT, LimitsSettings, Settings, StorageSettings
from core.storage import sha256_bytes
from core.tasks import service as task_service
from core.users.service import authenticate

TABLES = (Submission, Result, ResultCost, SubmissionFile, User)
DAN_TASKS = {"SST-2", "SciTail", "MRPC", "STS-B"}  # SNLI has 3 labels, examples/dan.py 2 outputs


@dataclass
class Env:
    settings: Settings
    engine: Engine
    baselines: Path
    sent: list[tuple[int, str]] = field(default_factory=list)
    count_calls: list[list[FlopsRequest]] = field(default_factory=list)

    def send(self, submission_id: int, job_id: str) -> str:
        self.sent.append((submission_id, job_id))
        return "queued (test)"

    def fake_count(self, requests: Sequence[FlopsRequest]) -> dict[FlopsRequest, CountedFlops]:
        """Stand-in for the sandbox: k x 1e9 + index FLOPs per sample (the wiring, not the count)."""
        self.count_calls.append(list(requests))
        out = {}
        with transaction(self.engine) as session:
            for r in requests:
                task = task_service.get_task(session, r.task)
                flops = [r.exit_layer * 10**9 + i for i in range(task.test_size)]
                out[r] = CountedFlops(
                    per_sample_flops=flops,
                    per_sample_flops_without_norm=flops,
                    model_sha256="0" * 64,
                    tokenizer="bert-base-uncased",
                    test_sha256=task.test_sha256,
                    method="fake (test)",
                    device="cpu",
                    versions={"torch": "test"},
                    per_sample_flops_elue=[f // 2 for f in flops],
                    counter_version=COUNTER_VERSION,
                    rule_hash="f" * 64,
                )
        return out

    def counts(self) -> dict[str, int]:
        with transaction(self.engine) as session:
            return {
                t.__tablename__: int(session.scalar(select(func.count()).select_from(t)) or 0)
                for t in TABLES
            }

    def run(self, **kwargs: Any) -> SeedReport:
        options: dict[str, Any] = {
            "baselines": self.baselines,
            "count_flops": self.fake_count,
            "send": self.send,
            "echo": lambda line: None,
        }
        options.update(kwargs)
        return seed(self.engine, self.settings, **options)


@pytest.fixture
def env(
    tmp_path: Path, sqlite_seeded_template: Path, sandbox_jobs_dir: Path, elue_dir: Path
) -> Iterator[Env]:
    data = tmp_path / "var"
    data.mkdir()
    shutil.copyfile(sqlite_seeded_template, data / "paretoboard.db")
    settings = Settings(
        storage=StorageSettings(data_dir=data, jobs_dir=sandbox_jobs_dir),
        limits=LimitsSettings(sandbox_wall_seconds=600, sandbox_memory_bytes=4 * 1024**3),
    )
    engine = make_engine(settings.database_url)
    yield Env(settings, engine, elue_dir / "baselines.json")
    engine.dispose()


def _baseline(session: Any) -> Submission:
    sub = session.scalar(select(Submission).where(Submission.name == BASELINE_NAME))
    assert sub is not None
    return sub


def _points(session: Any, submission_id: int) -> dict[tuple[str, str], Result]:
    rows = session.execute(
        select(Result, Task.name)
        .join(Task, Task.id == Result.task_id)
        .where(Result.submission_id == submission_id)
    ).all()
    return {(name, r.point): r for r, name in rows}


def test_seed_fresh_database_then_nothing_changes(
    env: Env, elue_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seed never reads test gold: no statement touches task_gold, load_gold is never called.
    gold_reads: list[str] = []

    @event.listens_for(env.engine, "before_cursor_execute")
    def _watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "task_gold" in statement.lower():
            gold_reads.append(statement)

    def no_gold(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the seed read test gold")

    monkeypatch.setattr(task_service, "load_gold", no_gold)
    seen: list[TaskData] = []
    real_trainer = default_trainer(env.settings)

    def trainer(data: TaskData) -> Any:
        seen.append(data)
        return real_trainer(data)

    report = env.run(trainer=trainer)
    assert gold_reads == []

    published = json.loads((elue_dir / "baselines.json").read_text())
    assert report.baseline is not None
    assert report.baseline.skipped_tasks == ["IMDb"]
    with transaction(env.engine) as session:
        sub = _baseline(session)
        assert sub.owner_id is None
        assert sub.kind is SubmissionKind.SELF_REPORTED
        assert sub.visibility is Visibility.PUBLIC
        assert sub.state is SubmissionState.DONE
        assert (sub.paper_url, sub.code_url) == (PAPER_URL, CODE_URL)
        assert sub.params == 109_000_000
        points = _points(session, sub.id)
        tasks = {t.name: t for t in session.scalars(select(Task))}
        expected = {
            (task, f"{p['layers']}L"): p
            for task, body in published["tasks"].items()
            if task in tasks
            for p in body["points"]
        }
        assert set(points) == set(expected)
        for (task, name), p in expected.items():
            r = points[(task, name)]
            assert r.performance == p["score"]
            assert r.params == {12: 109_000_000, 6: 67_000_000}.get(
                p["layers"], seed_baseline.computed_params(p["layers"])
            )
            assert r.metrics["performance_source"] == "published"
            assert r.metrics["exit_layer"] == str(p["layers"])
            assert all(isinstance(v, str) for v in r.metrics.values())
            # Every task's points are counted here, SST-2 included (like with like); what
            # ELUE published for SST-2 stays as a note.
            if p.get("mflops") is not None:
                assert f"{p['mflops']:,.0f} MFLOPs" in r.metrics["published_flops_note"]
            else:
                assert "published_flops_note" not in r.metrics
            n = tasks[task].test_size
            assert r.cost_status == "counted"
            assert r.metrics["flops_source"] == "counted"
            assert r.metrics["flops_test_sha256"] == tasks[task].test_sha256
            assert f"exit at layer {p['layers']}" in r.metrics["flops_note"]
            assert r.flops_mean == pytest.approx(p["layers"] * 1e9 + (n - 1) / 2)
            assert r.flops_elue_mean == pytest.approx(
                (p["layers"] * 1e9 + (n - 1) / 2) / 2, rel=1e-9
            )
            assert r.counter_version == COUNTER_VERSION
            cost = session.get(ResultCost, r.id)
            assert cost is not None
            assert unpack_array(cost.flops).shape == (n,)
            assert cost.flops_elue is not None
        # Every task's baseline is the published entry.
        assert {t.baseline_submission_id for t in tasks.values()} == {sub.id}

        # The DAN example: measured, queued, owned by a seed account that cannot log in.
        user = session.scalar(select(User).where(User.email == SEED_EMAIL))
        assert user is not None
        assert not user.is_active
        assert authenticate(session, email=SEED_EMAIL, password=user.password_hash) is None
        dan = session.scalar(
            select(Submission).where(Submission.owner_id == user.id, Submission.name == DAN_NAME)
        )
        assert dan is not None
        assert dan.kind is SubmissionKind.MEASURED
        assert dan.state is SubmissionState.QUEUED
        assert env.sent == [(dan.id, dan.job_id)]
        files = session.scalars(
            select(SubmissionFile).where(SubmissionFile.submission_id == dan.id)
        ).all()
        model = [f for f in files if f.role is FileRole.MODEL]
        assert [f.sha256 for f in model] == [sha256_bytes(DAN_FILE.read_bytes())]
        assert {f.original_name for f in files if f.role is FileRole.PREDICTIONS} == {
            f"{t}.tsv" for t in DAN_TASKS
        }
        assert "SNLI" in dan.description

        # The trainer got each task's dev rows (as stored, split "dev") and test inputs only.
        for data in seen:
            task = tasks[data.name]
            dev = session.execute(
                select(TaskExample.text_a, TaskExample.text_b, TaskExample.label)
                .where(TaskExample.task_id == task.id, TaskExample.split == "dev")
                .order_by(TaskExample.idx)
            ).all()
            assert len(data.dev_texts) == len(dev) == task.dev_size > 0
            assert data.dev_labels == [label for _, _, label in dev]
            assert data.test_inputs == task_service.load_test_texts(session, task)
        assert {d.name for d in seen} == set(tasks)

    # Second run: nothing new, nothing sent, nothing counted.
    before = env.counts()
    again = env.run(trainer=trainer)
    assert env.counts() == before
    assert len(env.sent) == 1
    assert len(env.count_calls) == 1
    assert again.baseline is not None
    assert not again.baseline.created
    assert again.baseline.points_created == again.baseline.points_updated == []
    assert again.baseline.to_count == []
    assert again.baseline.designated == []
    assert again.examples[0].job_id is None
    assert again.examples[0].existing_state == "queued"


def test_seed_keeps_operator_choices_and_follows_data_changes(env: Env, tmp_path: Path) -> None:
    env.run(examples=False, count_flops=None)
    with transaction(env.engine) as session:
        sub = _baseline(session)
        tasks = {t.name: t for t in session.scalars(select(Task))}
        # Without counts no task can have the baseline (SST-2's published FLOPs are a note).
        assert tasks["SST-2"].baseline_submission_id is None
        assert tasks["MRPC"].baseline_submission_id is None
        assert _points(session, sub.id)[("MRPC", "12L")].cost_status == "pending"
        other = Submission(owner_id=None, name="operator's pick", kind=SubmissionKind.SELF_REPORTED)
        session.add(other)
        session.flush()
        tasks["MRPC"].baseline_submission_id = other.id

    changed = json.loads(env.baselines.read_text())
    changed["tasks"]["STS-B"]["points"][0]["score"] = 80.0
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(changed))
    report = env.run(examples=False, baselines=path)
    assert report.baseline is not None
    assert report.baseline.points_updated == ["STS-B/6L"]
    assert report.baseline.kept == ["MRPC"]
    with transaction(env.engine) as session:
        sub = _baseline(session)
        tasks = {t.name: t for t in session.scalars(select(Task))}
        assert tasks["MRPC"].baseline_submission_id != sub.id
        assert tasks["STS-B"].baseline_submission_id == sub.id
        points = _points(session, sub.id)
        assert points[("STS-B", "6L")].performance == 80.0
        assert points[("MRPC", "12L")].cost_status == "counted"
        # Counted on inputs that have since changed: the next seed counts again.
        stale = points[("SNLI", "6L")]
        stale.metrics = {**stale.metrics, "flops_test_sha256": "0" * 64}
    report = env.run(examples=False, baselines=path)
    assert report.baseline is not None
    assert report.baseline.to_count == [FlopsRequest("SNLI", 6)]
    assert report.counted == ["SNLI/6L"]
    # Counted by another counter version: the next seed (or `paretoboard recount`) counts again.
    with transaction(env.engine) as session:
        points = _points(session, _baseline(session).id)
        points[("SST-2", "4L")].counter_version = "1.0"
    report = env.run(examples=False, baselines=path)
    assert report.baseline is not None
    assert report.baseline.to_count == [FlopsRequest("SST-2", 4)]


def test_read_baselines_refuses_a_broken_file(tmp_path: Path) -> None:
    from core.errors import InvalidInputError

    bad = tmp_path / "baselines.json"
    bad.write_text('{"params_millions": {"12": 109}, "tasks": {"SST-2": {"points": [{}]}}}')
    with pytest.raises(InvalidInputError):
        read_baselines(bad)


def test_trained_dan_is_the_example_file_model(elue_dir: Path) -> None:
    """Batched prediction equals examples/dan.py's own forward, sample by sample."""
    import torch

    from core.seed.dan import dan_logits

    cls = load_dan_class()
    torch.manual_seed(0)
    model: Any = cls().eval()
    ids = [[101, 2023, 2003, 102], [101, 102], [101, 7592, 2088, 999, 102]]
    with torch.no_grad():
        batched = dan_logits(model, ids)
        one_by_one = torch.cat([model(torch.tensor([x]))[0] for x in ids])
    torch.testing.assert_close(batched, one_by_one)
    source = (REPO_ROOT / "examples" / "dan.py").read_text()
    assert "class DAN(nn.Module)" in source


def test_dan_evaluates_to_done_through_the_pipeline(env: Env) -> None:
    """The seeded DAN, evaluated in process (scoring + sandboxed counting) like any submission.

    Held-out dev accuracy on SST-2 is about 67 and test accuracy 69.1 here (2 labels: chance is
    50): a bag of word pieces learned from 1,101 dev sentences.
    """
    from worker import pipeline

    def evaluate_here(submission_id: int, job_id: str) -> str:
        pipeline.evaluate(env.engine, env.settings, submission_id)
        return "evaluated"

    report = env.run(baselines=None, count_flops=None, send=evaluate_here)
    sid = report.examples[0].submission_id
    with transaction(env.engine) as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert sub.state is SubmissionState.DONE, (sub.state_message, sub.error_detail)
        points = _points(session, sub.id)
        assert {task for task, _ in points} == DAN_TASKS
        assert points[("SST-2", "")].performance is not None
        assert points[("SST-2", "")].performance > 65
        # examples/dan.py, ELUE convention: 2 x (2 x 300 x 300 + 300 x 2) at any length; the
        # FLOPs add the averaging (300 per token), the biases, the ReLUs and the score: 300 L + 362,414.
        assert {r.flops_elue_mean for r in points.values()} == {361_200}
        for r in points.values():
            assert r.flops_mean is not None
            assert r.flops_mean > 362_414 + 300 * 2
        assert sub.params == 9_337_802
        # Verified: each task's trained weights went in with the predictions, and the
        # platform's run of the counted graph gives every submitted prediction.
        assert sub.verification is not None
        assert sub.verification["status"] == "verified", sub.verification
        assert sub.verified
        for key, r in points.items():
            assert r.verify_status == "verified", (key, r.verification)
            assert r.verify_agreement is not None
            assert r.verify_agreement >= 0.995
            assert r.verification is not None
            assert r.verification["n"] > 1000


@pytest.mark.slow
def test_baseline_flops_counted_in_the_sandbox(env: Env) -> None:
    """The real capture and trusted count of every baseline point, against ELUE's closed form."""
    from worker.seed_costs import count_baseline_flops

    def count(requests: Sequence[FlopsRequest]) -> dict[FlopsRequest, CountedFlops]:
        return count_baseline_flops(env.engine, env.settings, requests, device="cpu")

    report = env.run(examples=False, count_flops=count)
    assert report.baseline is not None
    published = json.loads(env.baselines.read_text())["tasks"]
    assert sorted(report.counted) == sorted(
        f"{t}/{p['layers']}L"
        for t in ("SST-2", "MRPC", "SNLI", "STS-B", "SciTail")
        for p in published[t]["points"]
    )
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(
        str(REPO_ROOT.parent / "shared/data/tokenizers/bert-base-uncased/tokenizer.json")
    )
    tok.no_padding()
    tok.enable_truncation(512)
    with transaction(env.engine) as session:
        task = task_service.get_task(session, "SNLI")
        texts = task_service.load_test_texts(session, task)
        points = _points(session, _baseline(session).id)
        twelve, six = points[("SNLI", "12L")], points[("SNLI", "6L")]
        cost = session.get(ResultCost, twelve.id)
        assert cost is not None
        assert cost.flops_elue is not None
        per_sample_elue = unpack_array(cost.flops_elue)
        per_sample = unpack_array(cost.flops)
        assert {t.baseline_submission_id for t in session.scalars(select(Task))} == {
            _baseline(session).id
        }
    lengths = np.array([len(e.ids) for e in tok.encode_batch(texts)], dtype=np.int64)

    def elue(k: int) -> np.ndarray:
        # per layer: products 2 x (7,077,888 L + 1,536 L^2) and 2 LayerNorms (10 per element);
        # per exit head: 2 x (768^2 + 768 x 2); the embeddings' LayerNorm once.
        layer = 2 * (7_077_888 * lengths + 1_536 * lengths**2) + 2 * 10 * 768 * lengths
        return k * (layer + 2 * (768 * 768 + 768 * 2)) + 10 * 768 * lengths

    np.testing.assert_array_equal(per_sample_elue, elue(12))
    assert six.flops_elue_mean == pytest.approx(elue(6).mean())
    assert np.all(per_sample > per_sample_elue)  # the FLOPs axis counts everything
    assert twelve.flops_mean == pytest.approx(per_sample.mean())
    assert not twelve.cost_incomplete
    # Sanity: about 4.7 GFLOPs per SNLI sample at 12 layers (27 tokens on average).
    assert 4.0e9 < twelve.flops_mean < 5.5e9


def test_seed_command(env: Env) -> None:
    """`paretoboard seed` as run.sh runs it (here without examples and counting): idempotent,
    and a second seed started while one runs does nothing."""
    import fcntl
    import os
    import subprocess
    import sys

    data = env.settings.storage.data_dir
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    cli_env["PARETOBOARD_STORAGE__DATA_DIR"] = str(data)
    args = [
        str(Path(sys.executable).with_name("paretoboard")),
        "seed",
        "--baselines",
        str(env.baselines),
        "--no-examples",
        "--no-count",
    ]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env=cli_env, capture_output=True, text=True, timeout=120, check=False
        )

    first = run()
    assert first.returncode == 0, first.stderr
    # --no-count: the points wait for their count, so no task has the baseline yet.
    assert "baseline: points added" in first.stdout
    assert "IMDb is published but not imported here; skipped" in first.stdout
    assert "seed: done" in first.stdout
    second = run()
    assert second.returncode == 0, second.stderr
    assert "seed: nothing to do" in second.stdout
    with (data / "seed.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = run()
    assert busy.returncode == 0, busy.stderr
    assert "another seed is running" in busy.stdout
