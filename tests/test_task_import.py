"""Importing tasks into the database: real ELUE data, idempotency, and --replace."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import ConflictError, NotFoundError, TaskDataError
from core.models import Result, Submission, SubmissionFile, TaskExample
from core.models.submissions import FileRole
from core.scoring import apply_metrics, rescorer, score_file
from core.storage import BlobStore, LocalBlobStore
from core.tasks import service
from core.tasks.files import read_task_folder
from core.tasks.manifest import ELUE_MANIFESTS
from tests.helpers import noisy_predictions, raw_gold, write_predictions

COUNTS = {"SST-2": 2210, "SNLI": 9824, "SciTail": 2126, "MRPC": 1725, "STS-B": 1379}


def test_real_tasks_imported_with_counts(seeded_session: Session, elue_dir: Path) -> None:
    tasks = service.list_tasks(seeded_session)
    assert {t.name: t.test_size for t in tasks} == COUNTS
    # Display order follows ELUE's families: sentiment, NLI, similarity.
    assert [t.name for t in tasks] == ["SST-2", "SNLI", "SciTail", "MRPC", "STS-B"]
    for task in tasks:
        gold = service.load_gold(seeded_session, task)
        texts = service.load_test_texts(seeded_session, task)
        assert len(gold) == len(texts) == COUNTS[task.name]
        manifest = service.manifest_of(task)
        # Gold aligns with the inputs: same labels as read independently from test_full.tsv.
        expected = raw_gold(elue_dir, task.name)
        if manifest.labels:
            assert [manifest.labels[c] for c in gold] == expected
        else:
            np.testing.assert_allclose(gold, [float(x) for x in expected])
        assert all(len(t) == len(manifest.text_columns) for t in texts)


def test_public_inputs_match_test_tsv(seeded_session: Session, elue_dir: Path) -> None:
    task = service.get_task(seeded_session, "sst-2")  # case-insensitive lookup
    texts = service.load_test_texts(seeded_session, task)
    lines = (elue_dir / "SST-2" / "test.tsv").read_text(encoding="utf-8-sig").splitlines()[1:]
    assert texts[0] == (lines[0].split("\t")[1],)
    assert texts[-1] == (lines[2209].split("\t")[1],)
    dev = seeded_session.scalar(
        select(func.count()).where(TaskExample.task_id == task.id, TaskExample.split == "dev")
    )
    assert dev == task.dev_size > 0


def test_reimport_is_idempotent(seeded_session: Session, elue_dir: Path) -> None:
    before = seeded_session.scalar(select(func.count()).select_from(TaskExample))
    outcomes = [service.import_task(seeded_session, d) for d in service.read_task_folders(elue_dir)]
    assert {o.action.value for o in outcomes} == {"unchanged"}
    assert seeded_session.scalar(select(func.count()).select_from(TaskExample)) == before


def test_unknown_task_is_not_found(seeded_session: Session) -> None:
    with pytest.raises(NotFoundError, match="SST-2"):
        service.get_task(seeded_session, "QNLI")


def test_import_reports_every_broken_folder(tmp_path: Path, elue_dir: Path) -> None:
    shutil.copytree(elue_dir / "SST-2", tmp_path / "SST-2")
    bad = tmp_path / "Mystery"
    bad.mkdir()
    (bad / "test.tsv").write_text("index\tsentence\n0\thi\n")
    with pytest.raises(TaskDataError) as info:
        service.read_task_folders(tmp_path)
    assert any("task.json" in p.problem for p in info.value.problems)


def _scored_result(session: Session, store: BlobStore, task_name: str, preds_path: Path) -> Result:
    task = service.get_task(session, task_name)
    sub = Submission(owner_id=None, name="replace-test")
    session.add(sub)
    session.flush()
    sha, size = store.put_file(preds_path)
    file = SubmissionFile(
        submission_id=sub.id,
        role=FileRole.PREDICTIONS,
        original_name=preds_path.name,
        sha256=sha,
        size=size,
        task_id=task.id,
    )
    session.add(file)
    session.flush()
    scored = score_file(session, task_name, preds_path, max_bytes=10**8, max_problems=50)
    result = Result(submission_id=sub.id, task_id=task.id, file_id=file.id, point="")
    apply_metrics(result, scored.metrics, task.gold_sha256)
    session.add(result)
    session.flush()
    return result


def test_changed_gold_needs_replace_and_rescores(
    session: Session, tmp_path: Path, elue_dir: Path
) -> None:
    folder = tmp_path / "SST-2"
    shutil.copytree(elue_dir / "SST-2", folder)
    service.import_task(session, read_task_folder(folder))
    gold = raw_gold(elue_dir, "SST-2")
    preds = write_predictions(tmp_path / "SST-2.tsv", gold)  # a perfect file
    store = LocalBlobStore(tmp_path / "blobs")
    result = _scored_result(session, store, "SST-2", preds)
    assert result.performance == pytest.approx(100.0)

    # Flip the gold of the first 221 rows (10%) in test_full.tsv: label is the last column.
    lines = (folder / "test_full.tsv").read_text(encoding="utf-8").split("\n")
    for i in range(1, 222):
        text, label = lines[i].rsplit("\t", 1)
        lines[i] = f"{text}\t{1 - int(label)}"
    (folder / "test_full.tsv").write_text("\n".join(lines), encoding="utf-8")
    changed = read_task_folder(folder)
    old_gold = service.load_gold(session, service.get_task(session, "SST-2")).copy()

    rescore = rescorer(store, max_bytes=10**8, max_problems=50)
    with pytest.raises(ConflictError, match="--replace"):
        service.import_task(session, changed, rescore=rescore)
    task = service.get_task(session, "SST-2")
    np.testing.assert_array_equal(service.load_gold(session, task), old_gold)  # nothing changed

    outcome = service.import_task(session, changed, replace=True, rescore=rescore)
    assert outcome.action.value == "replaced"
    assert outcome.rescored == 1
    session.refresh(result)
    assert result.performance == pytest.approx(100.0 * (2210 - 221) / 2210)
    assert result.gold_sha256 == changed.gold_sha256


def test_manifest_change_without_row_change_updates(
    session: Session, tmp_path: Path, elue_dir: Path
) -> None:
    folder = tmp_path / "SST-2"
    shutil.copytree(elue_dir / "SST-2", folder)
    service.import_task(session, read_task_folder(folder))
    manifest = ELUE_MANIFESTS["SST-2"].model_copy(update={"description": "new words"})
    outcome = service.import_task(session, read_task_folder(folder, manifest))
    assert outcome.action.value == "updated"
    assert service.get_task(session, "SST-2").description == "new words"


@pytest.mark.parametrize("task_name", sorted(COUNTS))
def test_noisy_predictions_roundtrip(
    seeded_session: Session, elue_dir: Path, task_name: str, tmp_path: Path
) -> None:
    gold = raw_gold(elue_dir, task_name)
    preds = noisy_predictions(gold, task_name, seed=7)
    path = write_predictions(tmp_path / f"{task_name}.tsv", preds)
    scored = score_file(seeded_session, task_name, path, max_bytes=10**8, max_problems=50)
    assert scored.parsed.n == COUNTS[task_name]
    assert 0 < scored.metrics.performance < 100
