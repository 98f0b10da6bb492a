"""Scoring prediction files against the stored gold (no user code involved)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.arrays import pack_array, unpack_array
from core.errors import PredictionFileError
from core.metrics import MetricResult, compute_metrics
from core.models import Result, SubmissionFile, SubmissionUncertainty, Task, TaskUncertainty
from core.parsed import read_parsed
from core.predictions import ParsedPredictions, parse_prediction_file
from core.storage import BlobStore
from core.tasks.service import Rescorer, get_task, load_gold, manifest_of
from core.uncertainty import METHOD, bootstrap_points, combine_tasks, exit_diagnostics, task_rng


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


@dataclass(frozen=True, slots=True)
class BootstrapConfig:
    """How intervals are resampled (settings.scoring)."""

    n_resamples: int
    seed: int


def record_uncertainty(
    session: Session,
    task: Task,
    gold: np.ndarray,
    scored: Sequence[tuple[Result, ParsedPredictions]],
    config: BootstrapConfig,
) -> None:
    """Bootstrap intervals of a submission's points on one task (resampled jointly) onto the
    results, and the task's joint interval and exit-layer diagnostics into `task_uncertainty`
    (flushes). `scored`: one submission's scored results on `task` with their predictions."""
    if not scored:
        return
    session.flush()  # result ids
    submission_id = scored[0][0].submission_id
    manifest = manifest_of(task)
    boot = bootstrap_points(
        manifest,
        gold,
        [parsed.labels for _, parsed in scored],
        n_resamples=config.n_resamples,
        rng=task_rng(config.seed, task.name),
    )
    for index, (result, _) in enumerate(scored):
        result.ci_low = boot.points[index].low if boot is not None else None
        result.ci_high = boot.points[index].high if boot is not None else None
    diagnostics = {
        result.point: exit_diagnostics(manifest, gold, parsed.labels, parsed.exit_layers)
        for result, parsed in scored
        if parsed.exit_layers is not None
    }
    performances = [r.performance for r, _ in scored if r.performance is not None]
    row = session.get(TaskUncertainty, (submission_id, task.id))
    if row is None:
        row = TaskUncertainty(submission_id=submission_id, task_id=task.id)
        session.add(row)
    row.result_ids = [r.id for r, _ in scored]
    row.mean_performance = float(np.mean(performances)) if performances else 0.0
    row.ci_low = boot.mean.low if boot is not None else None
    row.ci_high = boot.mean.high if boot is not None else None
    # float32 (7 significant digits, far below the intervals' resolution) halves what the
    # overall board reads per entry and task (about 3 KB for 1000 resamples).
    row.replicates = pack_array(boot.replicates.astype(np.float32)) if boot is not None else None
    row.method = METHOD
    row.n_resamples = config.n_resamples
    row.seed = config.seed
    row.diagnostics = diagnostics
    session.flush()
    refresh_overall_uncertainty(session, submission_id)


def refresh_overall_uncertainty(session: Session, submission_id: int) -> None:
    """Keep `submission_uncertainty` in step with the submission's task rows (flushes): the
    interval of the mean over tasks of their replicates, or no row without any."""
    rows = session.scalars(
        select(TaskUncertainty)
        .where(
            TaskUncertainty.submission_id == submission_id,
            TaskUncertainty.replicates.is_not(None),
        )
        .order_by(TaskUncertainty.task_id)
    ).all()
    overall = session.get(SubmissionUncertainty, submission_id)
    if not rows:
        if overall is not None:
            session.delete(overall)
            session.flush()
        return
    interval = combine_tasks(
        [unpack_array(r.replicates) for r in rows if r.replicates is not None], [0.0] * len(rows)
    )
    if overall is None:
        overall = SubmissionUncertainty(submission_id=submission_id)
        session.add(overall)
    overall.tasks = {str(r.task_id): [int(i) for i in r.result_ids] for r in rows}
    overall.ci_low = interval.low
    overall.ci_high = interval.high
    session.flush()


def forget_uncertainty(session: Session, submission_id: int, keep_task_ids: set[int]) -> None:
    """Drop a submission's task rows for tasks it no longer has points on (as objects, so that
    the board version is bumped only when the submission is listed)."""
    stale = session.scalars(
        select(TaskUncertainty).where(
            TaskUncertainty.submission_id == submission_id,
            TaskUncertainty.task_id.not_in(keep_task_ids),
        )
    ).all()
    for row in stale:
        session.delete(row)
    session.flush()
    refresh_overall_uncertainty(session, submission_id)


def rescorer(
    store: BlobStore,
    *,
    max_bytes: int,
    max_problems: int,
    bootstrap: BootstrapConfig | None = None,
) -> Rescorer:
    """A function that re-scores every stored result of a task from its stored prediction file."""

    def rescore(session: Session, task: Task) -> int:
        manifest = manifest_of(task)
        gold = load_gold(session, task)
        rows = session.execute(
            select(Result, SubmissionFile)
            .join(SubmissionFile, Result.file_id == SubmissionFile.id)
            .where(Result.task_id == task.id)
        ).all()
        by_submission: dict[int, list[tuple[Result, ParsedPredictions]]] = {}
        for result, file in rows:
            try:
                parsed = read_parsed(
                    store,
                    file.sha256,
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
                result.ci_low = result.ci_high = None
                continue
            apply_metrics(result, compute_metrics(manifest, gold, parsed.labels), task.gold_sha256)
            by_submission.setdefault(result.submission_id, []).append((result, parsed))
        if bootstrap is not None:
            for scored in by_submission.values():
                record_uncertainty(session, task, gold, scored, bootstrap)
        session.flush()
        return len(rows)

    return rescore


@dataclass(frozen=True, slots=True)
class BackfillReport:
    groups: int  # (submission, task) pairs given intervals
    results: int
    skipped: list[str]  # why a pair could not be done (a stored file gone or no longer valid)


def backfill_uncertainty(
    session: Session,
    store: BlobStore,
    config: BootstrapConfig,
    *,
    max_bytes: int,
    max_problems: int,
    everything: bool = False,
) -> BackfillReport:
    """Intervals and diagnostics for scored results that have none (rows scored before
    migration 0013, or imported); `everything`: recompute all. Performances are not touched.
    Idempotent: a second run finds nothing to do. Flushes."""
    rows = session.execute(
        select(Result, SubmissionFile, Task)
        .join(SubmissionFile, Result.file_id == SubmissionFile.id)
        .join(Task, Task.id == Result.task_id)
        .where(Result.performance.is_not(None))
        .order_by(Result.submission_id, Task.id, Result.flops_mean, Result.point)
    ).all()
    done = {
        (r.submission_id, r.task_id)
        for r in session.scalars(select(TaskUncertainty))
        if r.ci_low is not None or r.replicates is not None
    }
    groups: dict[tuple[int, int], list[tuple[Result, SubmissionFile, Task]]] = {}
    for result, file, task in rows:
        groups.setdefault((result.submission_id, task.id), []).append((result, file, task))
    todo = {
        key: members
        for key, members in groups.items()
        if everything or key not in done or any(r.ci_low is None for r, _, _ in members)
    }
    skipped: list[str] = []
    n_results = 0
    gold_cache: dict[int, np.ndarray] = {}
    for (submission_id, task_id), members in todo.items():
        task = members[0][2]
        try:
            scored = [
                (
                    result,
                    read_parsed(
                        store,
                        file.sha256,
                        manifest=manifest_of(task),
                        n_rows=task.test_size,
                        file_name=file.original_name,
                        max_bytes=max_bytes,
                        max_problems=max_problems,
                    ),
                )
                for result, file, _ in members
            ]
        except (OSError, PredictionFileError) as exc:
            skipped.append(f"submission {submission_id} on {task.name}: {str(exc)[:200]}")
            continue
        if task_id not in gold_cache:
            gold_cache[task_id] = load_gold(session, task)
        record_uncertainty(session, task, gold_cache[task_id], scored, config)
        n_results += len(scored)
    return BackfillReport(groups=len(todo) - len(skipped), results=n_results, skipped=skipped)
