"""Stages 1 and 2 of an evaluation: validate the stored prediction files, then score them.

No user code runs here; gold labels are read here and never leave this process.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import PredictionFileError, Problem
from core.metrics import compute_metrics
from core.models import (
    FileRole,
    Result,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionState,
    Task,
)
from core.parsed import read_parsed
from core.predictions import ParsedPredictions
from core.scoring import BootstrapConfig, apply_metrics, forget_uncertainty, record_uncertainty
from core.settings import Settings
from core.storage import BlobStore
from core.submissions.state import set_state
from core.tasks.service import load_gold, manifest_of


def prediction_files(session: Session, submission: Submission) -> list[tuple[SubmissionFile, Task]]:
    """The submission's prediction files with their tasks, in a stable order."""
    rows = session.execute(
        select(SubmissionFile, Task)
        .join(Task, SubmissionFile.task_id == Task.id)
        .where(
            SubmissionFile.submission_id == submission.id,
            SubmissionFile.role == FileRole.PREDICTIONS,
        )
        .order_by(Task.position, SubmissionFile.point, SubmissionFile.id)
    )
    return [(f, t) for f, t in rows]


def parse_stored(
    store: BlobStore, file: SubmissionFile, task: Task, settings: Settings
) -> ParsedPredictions:
    """A stored prediction file parsed against its task: its parsed form kept at upload, or
    parsed now (raises PredictionFileError) for a file stored without one (`core.parsed`)."""
    return read_parsed(
        store,
        file.sha256,
        manifest=manifest_of(task),
        n_rows=task.test_size,
        file_name=file.original_name,
        max_bytes=settings.limits.prediction_file_bytes,
        max_problems=settings.limits.max_problems,
    )


def validate(
    session: Session, store: BlobStore, submission: Submission, settings: Settings
) -> bool:
    """Stage 1: every stored file is present and still parses; False (and FAILED) otherwise."""
    set_state(submission, SubmissionState.VALIDATING, "Checking the prediction files")
    problems: list[Problem] = []
    files = session.scalars(
        select(SubmissionFile).where(SubmissionFile.submission_id == submission.id)
    ).all()
    missing = [f.original_name for f in files if not store.exists(f.sha256)]
    if missing:
        set_state(
            submission,
            SubmissionState.FAILED,
            f"Stored files are missing on this installation: {', '.join(missing)}",
            failed_stage="validating",
            fault="service",
        )
        return False
    pairs = prediction_files(session, submission)
    if not pairs:
        problems.append(Problem("the submission has no prediction files"))
    for file, task in pairs:
        try:
            parse_stored(store, file, task, settings)
        except PredictionFileError as exc:
            problems.extend(exc.problems)
    if submission.kind is SubmissionKind.MEASURED and not any(
        f.role is FileRole.MODEL for f in files
    ):
        problems.append(Problem("the submission has no model file"))
    if problems:
        detail = "\n".join(str(p) for p in problems)
        set_state(
            submission,
            SubmissionState.FAILED,
            f"{len(problems)} problem(s) in the submitted files",
            failed_stage="validating",
            error_detail=detail,
            fault="user",
        )
        return False
    return True


def score(session: Session, store: BlobStore, submission: Submission, settings: Settings) -> None:
    """Stage 2: one Result per prediction file, upserted by (task, point): re-runs never duplicate."""
    set_state(
        submission, SubmissionState.SCORING, "Scoring predictions against the hidden gold labels"
    )
    existing = {
        (r.task_id, r.point): r
        for r in session.scalars(select(Result).where(Result.submission_id == submission.id))
    }
    kept: set[tuple[int, str]] = set()
    gold_cache: dict[int, np.ndarray] = {}
    by_task: dict[int, tuple[Task, list[tuple[Result, ParsedPredictions]]]] = {}
    for file, task in prediction_files(session, submission):
        parsed = parse_stored(store, file, task, settings)
        if task.id not in gold_cache:
            gold_cache[task.id] = load_gold(session, task)
        metrics = compute_metrics(manifest_of(task), gold_cache[task.id], parsed.labels)
        key = (task.id, file.point or "")
        result = existing.get(key)
        if result is None:
            result = Result(submission_id=submission.id, task_id=task.id, point=key[1])
            session.add(result)
        result.file_id = file.id
        apply_metrics(result, metrics, task.gold_sha256)
        kept.add(key)
        by_task.setdefault(task.id, (task, []))[1].append((result, parsed))
    for key, stale in existing.items():
        if key not in kept:
            session.delete(stale)
    session.flush()
    # Intervals of every point and of each task's points jointly (docs/ranking.md).
    config = BootstrapConfig(settings.scoring.bootstrap_resamples, settings.scoring.bootstrap_seed)
    for task_id, (task, scored) in by_task.items():
        record_uncertainty(session, task, gold_cache[task_id], scored, config)
    forget_uncertainty(session, submission.id, set(by_task))
    session.flush()
