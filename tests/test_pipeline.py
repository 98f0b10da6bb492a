"""The evaluation pipeline in process, with the real sandbox: states, results, costs, failures."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score
from sqlalchemy import Engine, func, select, update

from core.arrays import unpack_array
from core.db.session import make_engine, transaction
from core.models import Result, ResultCost, Submission, SubmissionState
from core.settings import REPO_ROOT, LimitsSettings, Settings, StorageSettings
from core.storage import LocalBlobStore
from core.submissions.service import SubmissionDraft, UploadedFile, create_submission
from core.submissions.state import new_job_id
from core.tokenizers import registered_tokenizers
from tests.helpers import noisy_predictions, raw_gold, write_predictions
from worker import pipeline
from worker.reconcile import reconcile

MODELS = Path(__file__).parent / "models"
EXAMPLES = REPO_ROOT / "examples"


@dataclass
class Env:
    settings: Settings
    engine: Engine
    tmp: Path

    def submit(self, model: Path, predictions: dict[str, Path], name: str = "sub") -> int:
        with transaction(self.engine) as session:
            sub = create_submission(
                session,
                LocalBlobStore(self.settings.storage.uploads_dir),
                owner_id=None,
                draft=SubmissionDraft(name=name),
                model=UploadedFile(model.name, model),
                predictions=[UploadedFile(n, p) for n, p in predictions.items()],
                limits=self.settings.limits,
                tokenizers=registered_tokenizers(self.settings.storage.tokenizers_dir),
            )
            sub.job_id = new_job_id()
            return sub.id

    def submission(self, sid: int) -> Submission:
        with transaction(self.engine) as session:
            sub = session.get(Submission, sid)
            assert sub is not None
            return sub


@pytest.fixture
def env(tmp_path: Path, sqlite_seeded_template: Path, sandbox_jobs_dir: Path) -> Iterator[Env]:
    data = tmp_path / "var"
    data.mkdir()
    shutil.copyfile(sqlite_seeded_template, data / "paretoboard.db")
    settings = Settings(
        storage=StorageSettings(data_dir=data, jobs_dir=sandbox_jobs_dir),
        limits=LimitsSettings(sandbox_wall_seconds=240, sandbox_memory_bytes=4 * 1024**3),
    )
    engine = make_engine(settings.database_url)
    yield Env(settings, engine, tmp_path)
    engine.dispose()


def _sst2_predictions(env: Env, elue_dir: Path, seed: int = 1) -> tuple[Path, list[str], list[str]]:
    gold = raw_gold(elue_dir, "SST-2")
    preds = noisy_predictions(gold, "SST-2", seed=seed)
    return write_predictions(env.tmp / "SST-2.tsv", preds), gold, preds


def test_static_model_goes_to_done(env: Env, elue_dir: Path) -> None:
    path, gold, preds = _sst2_predictions(env, elue_dir)
    sid = env.submit(MODELS / "tiny_static.py", {"SST-2.tsv": path})
    pipeline.evaluate(env.engine, env.settings, sid)
    sub = env.submission(sid)
    assert sub.state is SubmissionState.DONE, (sub.state_message, sub.error_detail)
    assert [e["state"] for e in sub.timeline] == [
        "queued",
        "queued",
        "validating",
        "scoring",
        "counting",
        "counting",
        "done",
    ]
    assert sub.params == 30522 * 16 + 16 * 16 + 16 + 16 * 2 + 2
    with transaction(env.engine) as session:
        result = session.scalars(select(Result).where(Result.submission_id == sid)).one()
        cost = session.get(ResultCost, result.id)
        assert cost is not None
        assert result.performance == pytest.approx(accuracy_score(gold, preds) * 100)
        flops = unpack_array(cost.flops)
        assert flops.shape == (2210,)
        lengths = np.array([len(ids) for ids in _tokenized(elue_dir, "SST-2")], dtype=np.int64)
        # Ranking FLOPs: proj 2 x 16x16 MACs + 16 bias adds per token, tanh 16 and the mean
        # 16 per token; out 2 x 16x2 MACs + 2 bias adds once.
        np.testing.assert_array_equal(flops, 560 * lengths + 66)
        # ELUE convention: the products alone, 2 x MACs (no LayerNorm here).
        assert cost.flops_elue is not None
        np.testing.assert_array_equal(unpack_array(cost.flops_elue), 2 * (256 * lengths + 32))
        assert result.counter_version is not None
        assert result.rule_hash is not None
        assert not result.cost_incomplete
        assert result.flops_mean == pytest.approx(flops.mean())
        assert result.flops_max == flops.max()
        assert result.cost_status == "counted"
        assert result.device == "cpu"
        assert set(result.counter_versions) == {"counter", "rules", "torch", "fvcore"}
        assert cost.details["content_dependent"] is False
        # One graph, symbolic in the length, for every sample (no per-length counts).
        assert cost.details["n_traces"] == 1
        assert cost.details["polynomial"] == "560*L + 66"
        # Every operator has a rule: tanh and the mean are costed, nothing is left uncounted.
        assert cost.uncounted == {}
        assert cost.per_operator["aten.tanh"] == pytest.approx(16 * lengths.mean())
        assert cost.per_operator["aten.addmm"] == pytest.approx((528 * lengths + 66).mean())


def _tokenized(elue_dir: Path, task: str) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(
        str(REPO_ROOT.parent / "shared/data/tokenizers/bert-base-uncased/tokenizer.json")
    )
    tok.no_padding()
    tok.enable_truncation(512)
    lines = (elue_dir / task / "test.tsv").read_text(encoding="utf-8-sig").splitlines()[1:]
    return [tok.encode(line.split("\t")[1]).ids for line in lines]


@pytest.mark.slow  # 10-30 s; the default run keeps the suite under 15 min
def test_rerun_and_redelivery_never_duplicate(env: Env, elue_dir: Path) -> None:
    path, _, _ = _sst2_predictions(env, elue_dir)
    sid = env.submit(MODELS / "tiny_static.py", {"SST-2.tsv": path, "SST-2.b.tsv": path})
    job_id = env.submission(sid).job_id
    assert job_id is not None
    assert pipeline.run_scoring(env.engine, env.settings, sid, job_id) == pipeline.Outcome.CONTINUE
    # A re-delivered scoring message for the same job does nothing once counting started.
    assert pipeline.run_scoring(env.engine, env.settings, sid, job_id) == pipeline.Outcome.STOP
    pipeline.run_counting(env.engine, env.settings, sid, job_id)
    first = env.submission(sid)
    assert first.state is SubmissionState.DONE
    # Re-delivered counting message: nothing happens.
    pipeline.run_counting(env.engine, env.settings, sid, job_id)
    assert env.submission(sid).timeline == first.timeline
    # A full re-run upserts: still one result per file, one cost row per result.
    pipeline.evaluate(env.engine, env.settings, sid)
    with transaction(env.engine) as session:
        assert session.scalar(select(func.count()).where(Result.submission_id == sid)) == 2
        assert session.scalar(select(func.count()).select_from(ResultCost)) == 2
    assert env.submission(sid).state is SubmissionState.DONE


def test_superseded_job_does_nothing(env: Env, elue_dir: Path) -> None:
    path, _, _ = _sst2_predictions(env, elue_dir)
    sid = env.submit(MODELS / "tiny_static.py", {"SST-2.tsv": path})
    assert (
        pipeline.run_scoring(env.engine, env.settings, sid, "not-the-job") == pipeline.Outcome.STOP
    )
    assert env.submission(sid).state is SubmissionState.QUEUED


def test_model_error_fails_with_traceback(env: Env, elue_dir: Path) -> None:
    path, _, _ = _sst2_predictions(env, elue_dir)
    sid = env.submit(MODELS / "raises_on_import.py", {"SST-2.tsv": path})
    pipeline.evaluate(env.engine, env.settings, sid)
    sub = env.submission(sid)
    assert sub.state is SubmissionState.FAILED
    assert sub.failed_stage == "counting"
    assert sub.fault == "user"
    assert sub.error_detail is not None
    assert "boom while building the model" in sub.error_detail
    assert "raises_on_import.py" in sub.error_detail or "model.py" in sub.error_detail
    with transaction(env.engine) as session:  # scores were kept, costs not written
        result = session.scalars(select(Result).where(Result.submission_id == sid)).one()
        assert result.performance is not None
        assert result.cost_status == "pending"


def test_sandboxed_model_cannot_read_gold_or_database(env: Env, elue_dir: Path) -> None:
    path, _, _ = _sst2_predictions(env, elue_dir)
    sid = env.submit(MODELS / "steal_files.py", {"SST-2.tsv": path})
    pipeline.evaluate(env.engine, env.settings, sid)
    sub = env.submission(sid)
    assert sub.state is SubmissionState.FAILED
    detail = sub.error_detail or ""
    assert "stolen:" in detail
    gold_file = "/work/shared/data/elue/SST-2/test_full.tsv"
    assert f"{gold_file}: FileNotFoundError" in detail
    assert "/etc/shadow: FileNotFoundError" in detail or "/etc/shadow: PermissionError" in detail
    assert "PARETOBOARD" not in detail
    assert "sentence\\tlabel" not in detail  # no gold header leaked


def test_reconciler_requeues_then_gives_up(env: Env, elue_dir: Path) -> None:
    path, _, _ = _sst2_predictions(env, elue_dir)
    sid = env.submit(MODELS / "tiny_static.py", {"SST-2.tsv": path})
    sent: list[tuple[str, int, str]] = []

    def score(s: int, j: str) -> None:
        sent.append(("score", s, j))

    def count(s: int, j: str) -> None:
        sent.append(("count", s, j))

    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with transaction(env.engine) as session:
        session.execute(update(Submission).where(Submission.id == sid).values(state_changed_at=old))
    assert reconcile(env.engine, env.settings, send_score=score, send_count=count) != []
    assert sent[0][:2] == ("score", sid)
    new_job = env.submission(sid).job_id
    assert sent[0][2] == new_job
    # Nothing is stuck right after: fresh rows are left alone.
    assert reconcile(env.engine, env.settings, send_score=score, send_count=count) == []

    # A submission stuck in counting too many times fails as the service's fault.
    with transaction(env.engine) as session:
        session.execute(
            update(Submission)
            .where(Submission.id == sid)
            .values(
                state=SubmissionState.COUNTING,
                state_changed_at=old,
                attempts=env.settings.limits.max_attempts,
            )
        )
    reconcile(env.engine, env.settings, send_score=score, send_count=count)
    sub = env.submission(sid)
    assert sub.state is SubmissionState.FAILED
    assert sub.fault == "service"


def test_lying_module_paths_fail_with_every_problem_by_line(env: Env, elue_dir: Path) -> None:
    """An early-exit file whose paths skip layers or shrink them is refused, line by line."""
    ids = _tokenized(elue_dir, "SST-2")
    gold = raw_gold(elue_dir, "SST-2")
    lines = ["index\tpred\tmodules"]
    for i, sample in enumerate(ids):
        n = len(sample)
        path = f"({n}),emb; ({n},64),layer_1; (64),exit_1"
        if i == 3:
            path = f"({n}),emb; (64),exit_4"  # skips every layer the exit depends on
        if i == 7:
            path = f"({n}),emb; (1,64),layer_1; (64),exit_1"  # a one-token layer
        lines.append(f"{i}\t{gold[i]}\t{path}")
    tsv = env.tmp / "SST-2.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sid = env.submit(MODELS / "cost" / "elastic_small.py", {"SST-2.tsv": tsv})
    pipeline.evaluate(env.engine, env.settings, sid)
    sub = env.submission(sid)
    assert sub.state is SubmissionState.FAILED
    assert sub.fault == "user"
    assert "2 module path(s) do not match the model" in sub.state_message
    detail = sub.error_detail or ""
    assert "- SST-2.tsv, line 5: the path skips layer_1, layer_2, layer_3, layer_4" in detail
    assert "- SST-2.tsv, line 9: layer_1 is declared with input shape (1, 64) but" in detail
    with transaction(env.engine) as session:
        result = session.scalars(select(Result).where(Result.submission_id == sid)).one()
        assert result.cost_status == "pending"  # nothing was counted, nothing stored
        assert result.flops_mean is None


def test_nul_bytes_in_the_models_output_are_stored_readable(env: Env, elue_dir: Path) -> None:
    """PostgreSQL refuses NUL in text: the log and the error are cleaned before storing."""
    path, _gold, _preds = _sst2_predictions(env, elue_dir)
    sid = env.submit(MODELS / "cost" / "nul_in_error.py", {"SST-2.tsv": path})
    pipeline.evaluate(env.engine, env.settings, sid)
    sub = env.submission(sid)
    assert sub.state is SubmissionState.FAILED
    assert sub.fault == "user"
    assert "\x00" not in (sub.sandbox_log or "")
    assert "\x00" not in (sub.error_detail or "")
    assert "broken \ufffd model" in (sub.error_detail or "")
