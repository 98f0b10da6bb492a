"""Fair queues: uploaded tokenizers are vetted and run bounded, holding nothing; each user's
share of the cost queue is bounded, with the queue position and a wait estimate shown.

The Celery run (real Redis, score and cost workers) is in test_fair_queue_e2e.py (slow).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from core.db.session import engine_for, make_engine, transaction
from core.models import CostQueueState, FileRole, Submission, SubmissionFile, SubmissionState
from core.settings import LimitsSettings, Settings, StorageSettings
from core.storage import LocalBlobStore
from core.submissions import cost_queue
from core.submissions.service import SubmissionDraft, UploadedFile, create_submission
from core.submissions.state import set_state
from core.tokenizer_rules import check_tokenizer, check_tokenizer_file, regex_problem
from core.tokenizers import registered_tokenizers
from core.users import service as user_service
from server import enqueue
from tests.helpers import noisy_predictions, raw_gold, write_predictions
from tests.submission_helpers import TINY_MODEL, footprint, predictions_bytes
from worker import pipeline
from worker.attempts import Record
from worker.cost_messages import CostRequest
from worker.reconcile import reconcile

if TYPE_CHECKING:
    from tests.api_helpers import Api, ApiUser

pytest_plugins = ["tests.api_helpers"]

BERT = Path(registered_tokenizers(Settings().storage.tokenizers_dir)["bert-base-uncased"])
GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"""
    r"""[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def tokenizer_with(*patterns: str) -> dict[str, Any]:
    """bert-base-uncased with `Split` pre-tokenizers on `patterns` before its own."""
    data: dict[str, Any] = copy.deepcopy(_bert())
    splits = [
        {"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False}
        for p in patterns
    ]
    data["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [*splits, {"type": "BertPreTokenizer"}],
    }
    return data


_BERT_JSON: dict[str, Any] = {}


def _bert() -> dict[str, Any]:
    if not _BERT_JSON:
        _BERT_JSON.update(json.loads(BERT.read_text()))
    return _BERT_JSON


# ---------------------------------------------------------------------------------------------
# The rules an uploaded tokenizer.json must follow


def test_registered_and_well_known_tokenizers_pass() -> None:
    assert check_tokenizer_file(BERT, "tokenizer.json") == []
    assert regex_problem(GPT2) is None
    assert regex_problem(LLAMA3) is None
    assert check_tokenizer(tokenizer_with(GPT2, LLAMA3, r"\s+", r"\p{N}{1,3}"), "t.json") == []


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(\w+\s?)+$", "nested quantifiers"),
        (r"(?:a*)*b", "nested quantifiers"),
        (r"(a|ab)*c", "repeated group holds an alternation"),
        (r"(?:x|y){2,}z", "repeated group holds an alternation"),
        (r".*.*.*\b\B", "more than 2 unbounded quantifiers"),
        (r"(.)\1", "backreference \\1"),
        (r"(?<n>a)\k<n>", "backreference \\k"),
        (r"(?<n>a|\g<n>b)", "subexpression call"),
        (r"(?~abc)", "absent operator"),
        (r"a{1000}", "counted repetition above 100"),
        ("a" * 401, "401 characters"),
        (r"(a", "unbalanced parentheses"),
    ],
)
def test_backtracking_patterns_refused_with_the_reason(pattern: str, reason: str) -> None:
    problems = check_tokenizer(tokenizer_with(pattern), "tok.json")
    assert len(problems) == 1, problems
    assert problems[0].file == "tok.json"
    assert "pre_tokenizer.pretokenizers[0].pattern" in problems[0].problem
    assert reason in problems[0].problem


def test_unvetted_parts_refused() -> None:
    data = copy.deepcopy(_bert())
    data["model"] = {"type": "Custom"}
    data["normalizer"] = {"type": "PythonNormalizer"}
    data["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [{"type": "Whitespace"}] * 20,
    }
    data["extra"] = 1
    problems = [p.problem for p in check_tokenizer(data, "tok.json")]
    assert any(p.startswith("extra: unknown key") for p in problems), problems
    assert any(p.startswith("model.type: 'Custom' is not allowed") for p in problems), problems
    assert any(p.startswith("normalizer.type: 'PythonNormalizer'") for p in problems), problems
    assert any("(at most 16)" in p for p in problems), problems
    replace = copy.deepcopy(_bert())
    replace["normalizer"] = {
        "type": "Replace",
        "pattern": {"Regex": r"(\s+)+"},
        "content": " ",
    }
    assert "normalizer.pattern: regex" in check_tokenizer(replace, "t.json")[0].problem


@pytest.fixture
def no_queue(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """The web app's sends, recorded instead of sent (no broker in these tests)."""
    sent: list[tuple[int, str]] = []

    def send(_settings: Any, submission_id: int, job_id: str) -> bool:
        sent.append((submission_id, job_id))
        return True

    monkeypatch.setattr(enqueue, "send_score", send)
    return sent


def test_backtracking_tokenizer_refused_at_upload(
    seeded_api: Api, no_queue: list[tuple[int, str]]
) -> None:
    alice = seeded_api.user()
    with seeded_api.db() as session:
        before = footprint(session, seeded_api.settings.storage.data_dir)
    response = seeded_api.client.post(
        "/api/v1/submissions",
        headers=alice.headers,
        data={"name": "catastrophic"},
        files=[
            ("model", ("model.py", TINY_MODEL.read_bytes())),
            ("predictions", ("SST-2.tsv", predictions_bytes("SST-2"))),
            ("tokenizer", ("my-tokenizer.json", json.dumps(tokenizer_with(r"(\w+\s?)+$")))),
        ],
    )
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert [d["file"] for d in details] == ["my-tokenizer.json"]
    assert "nested quantifiers" in details[0]["problem"]
    with seeded_api.db() as session:
        assert footprint(session, seeded_api.settings.storage.data_dir) == before
    assert no_queue == []


# ---------------------------------------------------------------------------------------------
# Tokenizing runs in a bounded child process, with no transaction open


@dataclass
class Env:
    settings: Settings
    tmp: Path
    preds: Path

    @property
    def engine(self) -> Any:
        return engine_for(self.settings.database_url)

    def submit(self, name: str, *, owner: int | None = None, tokenizer: Path | None = None) -> int:
        with transaction(self.engine) as session:
            sub = create_submission(
                session,
                LocalBlobStore(self.settings.storage.uploads_dir),
                owner_id=owner,
                draft=SubmissionDraft(name=name),
                model=UploadedFile(TINY_MODEL.name, TINY_MODEL),
                predictions=[UploadedFile("SST-2.tsv", self.preds)],
                tokenizer=None if tokenizer is None else UploadedFile(tokenizer.name, tokenizer),
                limits=self.settings.limits,
                tokenizers=registered_tokenizers(self.settings.storage.tokenizers_dir),
            )
            job_id = pipeline.queue_submission(sub)
            sid = sub.id
        assert pipeline.run_scoring(self.engine, self.settings, sid, job_id) == "continue"
        return sid

    def row(self, sid: int) -> Submission:
        with transaction(self.engine) as session:
            sub = session.get(Submission, sid)
            assert sub is not None
            return sub


@pytest.fixture
def env(tmp_path: Path, sqlite_seeded_template: Path, elue_dir: Path) -> Iterator[Env]:
    data = tmp_path / "var"
    data.mkdir()
    shutil.copyfile(sqlite_seeded_template, data / "paretoboard.db")
    settings = Settings(
        storage=StorageSettings(data_dir=data),
        limits=LimitsSettings(tokenizer_seconds=4),
    )
    gold = raw_gold(elue_dir, "SST-2")
    preds = write_predictions(tmp_path / "SST-2.tsv", noisy_predictions(gold, "SST-2", seed=3))
    yield Env(settings, tmp_path, preds)
    engine_for(settings.database_url).dispose()


def _tokenizer_children() -> list[int]:
    """Our child processes that run `worker.tokenize_job`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == os.getpid() and b"worker.tokenize_job" in cmdline:
            found.append(int(proc.name))
    return found


def test_slow_tokenizer_fails_alone_and_blocks_no_write(env: Env) -> None:
    # Ten Split patterns within the rules (two unbounded quantifiers each) that backtrack
    # polynomially: about 45 s on SST-2's test inputs, past the 4 s limit set here.
    slow = env.tmp / "slow-tokenizer.json"
    slow.write_text(json.dumps(tokenizer_with(*[r".*.*\b\B"] * 10)))
    with transaction(env.engine) as session:
        alice = user_service.create_user(
            session, email="alice@example.org", display_name="Alice", password="pw-alice-123456"
        ).id
    slow_id = env.submit("slow", owner=alice, tokenizer=slow)
    fine_id = env.submit("fine")
    job_id = env.row(slow_id).job_id
    assert job_id is not None

    result: list[CostRequest | None] = []
    worker = threading.Thread(
        target=lambda: result.append(
            pipeline.prepare_counting(env.engine, env.settings, slow_id, job_id)
        )
    )
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not _tokenizer_children():
            assert worker.is_alive(), "prepare_counting ended without a tokenizer child"
            assert time.monotonic() < deadline, "no tokenizer child"
            time.sleep(0.05)
        # Another user's writes on the same SQLite database go through meanwhile, on an
        # engine that waits at most 1 s for a lock (the service's waits 30 s).
        other = make_engine(env.settings.database_url)
        try:
            with transaction(other) as session:
                session.connection().exec_driver_sql("PRAGMA busy_timeout=1000")
                bob = user_service.create_user(
                    session, email="bob@example.org", display_name="Bob", password="pw-bob-1234567"
                )
                user_service.create_token(session, user=bob, name="laptop")
        finally:
            other.dispose()
        assert _tokenizer_children(), "the tokenizer ended before the write: nothing was shown"
    finally:
        worker.join(timeout=120)
    assert result == [None]
    failed = env.row(slow_id)
    assert failed.state is SubmissionState.FAILED
    assert failed.fault == "user"
    assert failed.failed_stage == "counting"
    assert "the uploaded tokenizer file 'slow-tokenizer.json'" in failed.state_message
    assert "longer than the limit of 4 s" in failed.state_message
    assert _tokenizer_children() == []
    # The other submission is counted as usual.
    fine_job = env.row(fine_id).job_id
    assert fine_job is not None
    request = pipeline.prepare_counting(env.engine, env.settings, fine_id, fine_job)
    assert request is not None
    assert request.submission_id == fine_id
    assert env.row(fine_id).cost_queue is CostQueueState.SENT


@pytest.mark.slow
def test_tokenizer_that_panics_fails_alone_as_the_users_fault(env: Env) -> None:
    # A file stored before these rules existed: it passes nothing today, but may still be run.
    ok = env.tmp / "old-tokenizer.json"
    ok.write_text(json.dumps(tokenizer_with(r"\s+")))
    sid = env.submit("old", tokenizer=ok)
    store = LocalBlobStore(env.settings.storage.uploads_dir)
    bad = env.tmp / "bad.json"
    bad.write_text(json.dumps(tokenizer_with(r"(\w+\s?)+$")))  # past Oniguruma's retry limit
    with transaction(env.engine) as session:
        row = session.scalars(
            select(SubmissionFile).where(
                SubmissionFile.submission_id == sid, SubmissionFile.role == FileRole.TOKENIZER
            )
        ).one()
        row.sha256 = store.put_file(bad)[0]
    job_id = env.row(sid).job_id
    assert job_id is not None
    # Oniguruma gives up on a text after 10M backtracking steps: a panic, well past 4 s.
    patient = env.settings.model_copy(update={"limits": LimitsSettings(tokenizer_seconds=120)})
    assert pipeline.prepare_counting(env.engine, patient, sid, job_id) is None
    failed = env.row(sid)
    assert failed.state is SubmissionState.FAILED
    assert failed.fault == "user"
    assert failed.state_message.startswith(
        "The uploaded tokenizer file 'old-tokenizer.json' failed on the SST-2 test inputs"
    ), failed.state_message
    assert "retry-limit-in-match" in failed.state_message


# ---------------------------------------------------------------------------------------------
# Each user's share of the cost queue


def _counting(api: Api, user: ApiUser, name: str) -> tuple[int, str]:
    """A submission through the API, scored: (id, job id), waiting for its cost job."""
    response = api.client.post(
        "/api/v1/submissions",
        headers=user.headers,
        data={"name": name},
        files=[
            ("model", ("model.py", TINY_MODEL.read_bytes())),
            ("predictions", ("SST-2.tsv", predictions_bytes("SST-2"))),
        ],
    )
    assert response.status_code == 202, response.text
    sid = int(response.json()["id"])
    with api.db() as session:
        job = session.get(Submission, sid).job_id  # type: ignore[union-attr]
    assert job is not None
    engine = engine_for(api.settings.database_url)
    assert pipeline.run_scoring(engine, api.settings, sid, job) == "continue"
    return sid, job


def test_each_users_share_is_bounded_and_the_page_shows_the_place(
    seeded_api: Api, no_queue: list[tuple[int, str]]
) -> None:
    api, settings = seeded_api, seeded_api.settings
    assert settings.limits.cost_jobs_per_user == 2
    engine = engine_for(settings.database_url)
    alice, bob = api.user(), api.user()
    a = [_counting(api, alice, f"a{i}") for i in range(3)]
    b = _counting(api, bob, "b0")
    sent = [pipeline.prepare_counting(engine, settings, sid, job) for sid, job in [*a, b]]
    assert [r is not None for r in sent] == [True, True, False, True]
    # A repeated `count` message for a sent job sends nothing twice.
    assert pipeline.prepare_counting(engine, settings, *a[0]) is None

    def read(sid: int, user: ApiUser = alice) -> dict[str, Any]:
        body: dict[str, Any] = api.client.get(
            f"/api/v1/submissions/{sid}", headers=user.headers
        ).json()
        return body

    waiting = read(a[2][0])
    assert waiting["state"] == "counting"
    assert waiting["state_message"].startswith("Waiting for a place in the cost queue")
    assert waiting["cost_queue"] == {
        "state": "waiting",
        "ahead": 3,  # every sent job
        "estimated_wait_seconds": None,  # no cost job has finished yet
        "recent_jobs": 0,
        "jobs_per_user": 2,
    }
    assert read(b[0], bob)["cost_queue"]["ahead"] == 2  # alice's two sent before it
    assert read(b[0], bob)["queue_position"] == 2
    assert read(a[0][0])["cost_queue"]["ahead"] == 0
    # A waiting submission is not stuck: the reconciler leaves it alone, though no broker
    # record names it and it is past any age (the sent ones wait in the broker's queue).
    broker = dict((a[0], a[1], b))

    def records(ids: list[int]) -> dict[int, Record | None]:
        now = time.time()
        return {
            i: Record(broker[i], "cost", "queued", now, now, 0, None) if i in broker else None
            for i in ids
        }

    resent = reconcile(
        engine,
        settings.model_copy(
            update={"limits": settings.limits.model_copy(update={"stuck_after_seconds": -60})}
        ),
        send_score=lambda *_: None,
        send_count=lambda *_: None,
        records=records,
    )
    assert resent == []
    with api.db() as session:
        assert cost_queue.releasable(session, per_user=2) == []  # alice has 2 sent
        # Alice's first cost job ends after 30 s on its worker.
        first = session.get(Submission, a[0][0])
        assert first is not None
        first.cost_seconds = 30.0
        set_state(first, SubmissionState.DONE, "Evaluated")
    page = api.client.get(f"/submissions/{b[0]}", headers=bob.headers)
    assert page.status_code == 200
    assert "1 cost job ahead in the cost queue; estimated wait about 1 min 00 s" in page.text
    assert read(b[0], bob)["cost_queue"]["estimated_wait_seconds"] == 60.0  # 30 s x (1 + 1)
    with api.db() as session:
        released = cost_queue.releasable(session, per_user=2)
    assert released == [a[2]]
    assert pipeline.prepare_counting(engine, settings, *a[2]) is not None
    assert read(a[2][0])["cost_queue"]["state"] == "sent"
    assert read(a[2][0])["cost_queue"]["ahead"] == 2  # alice's second and bob's
