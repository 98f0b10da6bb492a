"""Each prediction file parsed once per submission, each task tokenized once: the upload keeps the
parsed form and the counting stage the token counts; stored without them, everything parses and
tokenizes again as before (`core.parsed`, `worker.counting_stage.keep_token_counts`)."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select

from core import predictions
from core.db.session import make_engine, transaction
from core.errors import PredictionFileError
from core.models import Result, Submission, SubmissionFile, SubmissionState, Task
from core.paired import compare
from core.parsed import decode_parsed, encode_parsed, read_parsed
from core.predictions import parse_predictions
from core.settings import LimitsSettings, Settings, StorageSettings
from core.storage import DERIVED, LocalBlobStore
from core.submissions.service import SubmissionDraft, UploadedFile, create_submission
from core.submissions.state import new_job_id
from core.tasks.manifest import LabelKind, TaskManifest
from core.tokenizers import registered_tokenizers
from tests.helpers import noisy_predictions, raw_gold, write_predictions
from worker import counting_stage, pipeline
from worker.cost_output import CostOutput, EntryOutput
from worker.counting_stage import CostJob, SandboxRun

MODEL = Path(__file__).parent / "models" / "tiny_static.py"
TASKS = ("SST-2", "MRPC")


@dataclass
class Env:
    settings: Settings
    engine: Engine
    tmp: Path
    parses: Counter[str]
    tokenized: Counter[int]

    @property
    def store(self) -> LocalBlobStore:
        return LocalBlobStore(self.settings.storage.uploads_dir)

    def submit(self, elue_dir: Path, name: str, seed: int = 1) -> int:
        files = []
        for task in TASKS:
            preds = noisy_predictions(raw_gold(elue_dir, task), task, seed=seed)
            path = write_predictions(self.tmp / f"{name}-{task}.tsv", preds)
            files.append(UploadedFile(f"{task}.tsv", path))
        with transaction(self.engine) as session:
            sub = create_submission(
                session,
                self.store,
                owner_id=None,
                draft=SubmissionDraft(name=name),
                model=UploadedFile(MODEL.name, MODEL),
                predictions=files,
                limits=self.settings.limits,
                tokenizers=registered_tokenizers(self.settings.storage.tokenizers_dir),
            )
            sub.job_id = new_job_id()
            return sub.id

    def evaluate(self, sid: int) -> Submission:
        with transaction(self.engine) as session:
            sub = session.get(Submission, sid)
            assert sub is not None
            assert sub.job_id is not None
            job_id = sub.job_id
        assert pipeline.run_scoring(self.engine, self.settings, sid, job_id) == "continue"
        pipeline.run_counting(self.engine, self.settings, sid, job_id, runner=fake_runner)
        with transaction(self.engine) as session:
            done = session.get(Submission, sid)
            assert done is not None
            assert done.state is SubmissionState.DONE, (done.state_message, done.error_detail)
            return done


def fake_runner(model: bytes, job: CostJob, settings: Settings, *, device: str) -> SandboxRun:
    """A count of 10 FLOPs per token (no sandbox: this is about parsing and tokenizing)."""
    entries = {
        e["key"]: EntryOutput(
            per_sample_flops=[10 * n for n in e["lengths"]],
            per_sample_flops_without_norm=[10 * n for n in e["lengths"]],
            per_operator={},
            per_module={},
            uncounted={},
            n_counts=1,
            all_agree=True,
            disagreements=[],
            seconds=0.0,
            content_dependent=False,
            per_sample_counted=False,
            n_traces=1,
        )
        for e in job.entries
    }
    return SandboxRun(CostOutput(ok=True, params=1, device=device, entries=entries), "", None)


@pytest.fixture
def env(
    tmp_path: Path, sqlite_seeded_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    data = tmp_path / "var"
    data.mkdir()
    shutil.copyfile(sqlite_seeded_template, data / "paretoboard.db")
    settings = Settings(storage=StorageSettings(data_dir=data), limits=LimitsSettings())
    engine = make_engine(settings.database_url)
    parses: Counter[str] = Counter()
    tokenized: Counter[int] = Counter()
    parse = predictions._Parser.parse
    tokenize = counting_stage.tokenize

    def counting_parse(self: Any, data: bytes) -> Any:
        parses[self.file] += 1
        return parse(self, data)

    def counting_tokenize(request: Any, **kwargs: Any) -> Any:
        tokenized.update(request.task_names.values())
        return tokenize(request, **kwargs)

    monkeypatch.setattr(predictions._Parser, "parse", counting_parse)
    monkeypatch.setattr(counting_stage, "tokenize", counting_tokenize)
    yield Env(settings, engine, tmp_path, parses, tokenized)
    engine.dispose()


def _results(env: Env, sid: int) -> list[tuple[str, float | None, float | None]]:
    with transaction(env.engine) as session:
        rows = session.execute(
            select(Task.name, Result.performance, Result.flops_mean)
            .join(Task, Task.id == Result.task_id)
            .where(Result.submission_id == sid)
            .order_by(Task.name)
        ).all()
        return [(name, perf, flops) for name, perf, flops in rows]


def test_one_submission_parses_each_file_once_and_tokenizes_each_task_once(
    env: Env, elue_dir: Path
) -> None:
    """Upload, validate, score, count, finish and a paired comparison: one parse per file (the
    upload's) and one tokenization per task (the counting stage's)."""
    first = env.submit(elue_dir, "first")
    env.evaluate(first)
    assert env.parses == {f"{task}.tsv": 1 for task in TASKS}
    assert env.tokenized == dict.fromkeys(TASKS, 1)
    second = env.submit(elue_dir, "second", seed=2)
    env.evaluate(second)
    with transaction(env.engine) as session:
        task = session.scalars(select(Task).where(Task.name == "SST-2")).one()
        a, b = session.get(Submission, first), session.get(Submission, second)
        assert a is not None
        assert b is not None
        paired = compare(session, env.settings, task, a, b)
    assert paired.points
    assert paired.mean_performance is not None
    assert env.parses == {f"{task}.tsv": 2 for task in TASKS}  # one per upload, no more
    assert env.tokenized == dict.fromkeys(TASKS, 2)  # one per submission


def test_a_submission_stored_without_parsed_forms_parses_and_tokenizes_again(
    env: Env, elue_dir: Path
) -> None:
    """Stored before the parsed forms and token counts were kept: the same results, parsed once
    more (then kept), and tokenized again to finish."""
    kept = env.submit(elue_dir, "kept")
    env.evaluate(kept)
    old = env.submit(elue_dir, "old")
    shutil.rmtree(env.store.root / DERIVED)
    env.parses.clear()
    env.tokenized.clear()
    env.evaluate(old)
    assert env.parses == {f"{task}.tsv": 1 for task in TASKS}  # validating parses, then kept
    assert env.tokenized == dict.fromkeys(TASKS, 1)  # the counts were kept again
    assert _results(env, old) == _results(env, kept)

    shutil.rmtree(env.store.root / DERIVED)
    env.parses.clear()
    env.tokenized.clear()
    with transaction(env.engine) as session:
        sub = session.get(Submission, old)
        assert sub is not None
        job_id = pipeline.queue_submission(sub)
    assert pipeline.run_scoring(env.engine, env.settings, old, job_id) == "continue"
    request = pipeline.prepare_counting(env.engine, env.settings, old, job_id, fair=False)
    assert request is not None
    for path in (env.store.root / DERIVED).rglob("*.tokens-*"):
        path.unlink()  # a job prepared before the counts were kept
    report = pipeline.execute_counting(env.settings, request, runner=fake_runner)
    pipeline.finish_counting(env.engine, env.settings, report)
    with transaction(env.engine) as session:
        done = session.get(Submission, old)
        assert done is not None
        assert done.state is SubmissionState.DONE, done.error_detail
    assert env.tokenized == dict.fromkeys(TASKS, 2)  # prepared, then finished
    assert _results(env, old) == _results(env, kept)


def test_an_unreadable_parsed_form_is_parsed_again(env: Env, elue_dir: Path) -> None:
    sid = env.submit(elue_dir, "garbled")
    forms = sorted((env.store.root / DERIVED).rglob("*.parsed-*"))
    assert len(forms) == len(TASKS)
    for path in forms:
        path.write_bytes(b"not an npz")
    env.parses.clear()
    env.evaluate(sid)
    assert env.parses == {f"{task}.tsv": 1 for task in TASKS}


def test_a_stored_file_that_no_longer_parses_fails_with_the_parsers_messages(
    env: Env, elue_dir: Path
) -> None:
    """A lowered size limit: refused again with the parser's own message, not read from the
    parsed form."""
    sid = env.submit(elue_dir, "big")
    with transaction(env.engine) as session:
        file = session.scalars(
            select(SubmissionFile).where(
                SubmissionFile.submission_id == sid, SubmissionFile.original_name == "SST-2.tsv"
            )
        ).one()
        task = session.scalars(select(Task).where(Task.name == "SST-2")).one()
        manifest = TaskManifest.model_validate(task.manifest)
        sha, n_rows = file.sha256, task.test_size
    with pytest.raises(PredictionFileError) as stored:
        read_parsed(
            env.store,
            sha,
            manifest=manifest,
            n_rows=n_rows,
            file_name="SST-2.tsv",
            max_bytes=100,
            max_problems=5,
        )
    with pytest.raises(PredictionFileError) as parsed:
        parse_predictions(
            env.store.read_bytes(sha),
            manifest=manifest,
            n_rows=n_rows,
            file_name="SST-2.tsv",
            max_bytes=100,
            max_problems=5,
        )
    assert str(stored.value) == str(parsed.value)
    assert stored.value.problems == parsed.value.problems
    env.store.path(sha).unlink()
    with pytest.raises(FileNotFoundError):
        read_parsed(
            env.store,
            sha,
            manifest=manifest,
            n_rows=n_rows,
            file_name="SST-2.tsv",
            max_bytes=10**8,
            max_problems=5,
        )


@pytest.mark.parametrize(
    ("kind", "labels", "text"),
    [
        (
            LabelKind.CLASSIFICATION,
            ["neg", "pos"],
            "index\tprediction\tmodules\n1\tpos\t(3),emb; (3,8),layer_1; (8,),exit_1\n"
            "0\tneg\t(2),emb; (2,8),layer_1; (8),exit_1\n2\tneg\t(2),emb\n",
        ),
        (
            LabelKind.CLASSIFICATION,
            ["0", "1"],
            "index\tpred\texit_layer\n0\t1\t3\n1\t0\t1\n2\t1\t12\n",
        ),
        (LabelKind.REGRESSION, [], "index\tprediction\n0\t0.1\n1\t4.75\n2\t-0.000001\n"),
    ],
)
def test_the_parsed_form_reads_back_as_parsed(
    kind: LabelKind, labels: list[str], text: str
) -> None:
    manifest = TaskManifest.model_validate(
        {
            "name": "T",
            "display_name": "T",
            "family": "similarity" if kind is LabelKind.REGRESSION else "sentiment",
            "metric": "pearson_spearman" if kind is LabelKind.REGRESSION else "accuracy",
            "label_kind": kind.value,
            "labels": labels,
            "text_columns": ["sentence"],
        }
    )
    parsed = parse_predictions(text.encode(), manifest=manifest, n_rows=3, file_name="f.tsv")
    back = decode_parsed(encode_parsed(parsed), manifest=manifest, n_rows=3, file_name="g.tsv")
    assert back.file == "g.tsv"
    assert back.format is parsed.format
    assert back.modules == parsed.modules
    np.testing.assert_array_equal(back.labels, parsed.labels)
    assert back.labels.dtype == parsed.labels.dtype
    assert (back.exit_layers is None) == (parsed.exit_layers is None)
    if parsed.exit_layers is not None:
        np.testing.assert_array_equal(back.exit_layers, parsed.exit_layers)
    with pytest.raises(ValueError, match="do not fit"):
        decode_parsed(encode_parsed(parsed), manifest=manifest, n_rows=4, file_name="g.tsv")
