"""Scoring prediction files against the stored gold (no user code involved)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import PredictionFileError
from core.metrics import MetricResult, compute_metrics
from core.models import Result, SubmissionFile, Task
from core.predictions import ParsedPredictions, parse_prediction_file, parse_predictions
from core.storage import BlobStore
from core.tasks.service import Rescorer, get_task, load_gold, manifest_of


@dataclass(frozen=True, slots=True)
class ScoredFile:
    task: str
    parsed: ParsedPredictions
    metrics: MetricResult


def score_parsed(session: Session, task: Task, parsed: ParsedPredictions) -> MetricResult:
    """The task metric of already-parsed predictions against the hidden gold."""
    return compute_metrics(manifest_of(task), load_gold(session, task), parsed.labels)


def score_file(
    session: Session, task_name: str, path: Path, *, max_bytes: int, max_problems: int
) -> ScoredFile:
    """Parse one prediction file in full and score it; PredictionFileError lists every problem."""
    task = get_task(session, task_name)
    parsed = parse_prediction_file(
        path,
        manifest=manifest_of(task),
        n_rows=task.test_size,
        file_name=path.name,
        max_bytes=max_bytes,
        max_problems=max_problems,
    )
    return ScoredFile(task.name, parsed, score_parsed(session, task, parsed))


def apply_metrics(result: Result, metrics: MetricResult, gold_sha256: str) -> None:
    """Write a metric onto a result row."""
    result.performance = metrics.performance
    result.metrics = dict(metrics.components)
    result.gold_sha256 = gold_sha256


def rescorer(store: BlobStore, *, max_bytes: int, max_problems: int) -> Rescorer:
    """A function that re-scores every stored result of a task from its stored prediction file."""

    def rescore(session: Session, task: Task) -> int:
        manifest = manifest_of(task)
        gold = load_gold(session, task)
        rows = session.execute(
            select(Result, SubmissionFile)
            .join(SubmissionFile, Result.file_id == SubmissionFile.id)
            .where(Result.task_id == task.id)
        ).all()
        for result, file in rows:
            try:
                parsed = parse_predictions(
                    store.read_bytes(file.sha256),
                    manifest=manifest,
                    n_rows=task.test_size,
                    file_name=file.original_name,
                    max_bytes=max_bytes,
                    max_problems=max_problems,
                )
            except PredictionFileError as exc:
                # The file no longer fits the task's new inputs: the point loses its score.
                result.performance = None
                result.metrics = {"error": str(exc)[:2000]}
                result.gold_sha256 = task.gold_sha256
                continue
            apply_metrics(result, compute_metrics(manifest, gold, parsed.labels), task.gold_sha256)
        session.flush()
        return len(rows)

    return rescore
