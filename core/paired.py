"""Paired bootstrap of two measured entries on one task, from their stored prediction files.

The API (`GET /api/v1/tasks/{task}/paired`) answers with differences and their intervals only:
neither gold labels nor per-sample correctness leave this module.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InvalidInputError, Problem
from core.models import Result, Submission, SubmissionFile, SubmissionKind, SubmissionState, Task
from core.parsed import read_parsed
from core.settings import Settings
from core.storage import blob_store
from core.submissions.queries import baseline_curve
from core.tasks.service import load_gold, manifest_of
from core.uncertainty import CONFIDENCE, METHOD, Difference, paired_bootstrap, task_rng


class DifferenceRead(BaseModel):
    difference: float = Field(description="a minus b (x100 like the performances)")
    ci_low: float = Field(description="95% paired bootstrap interval of the difference")
    ci_high: float
    within_noise: bool = Field(description="The interval contains 0: the test set cannot tell")


class PairedPointRead(DifferenceRead):
    a_point: str
    b_point: str
    a_performance: float
    b_performance: float


class PairedRead(BaseModel):
    task: str
    a: int = Field(description="Submission id of entry a")
    b: int
    n_samples: int
    confidence: float
    method: str
    n_resamples: int
    seed: int
    mean_performance: DifferenceRead = Field(
        description="Mean performance over a's points minus the mean over b's points"
    )
    score: DifferenceRead | None = Field(
        description="ELUE task score of a minus b (the mean performance difference shifted by "
        "the fixed baseline terms); null when the task has no baseline"
    )
    points: list[PairedPointRead] = Field(
        description="The compared point pairs: the points given, else those sharing a name"
    )


def _points(session: Session, submission: Submission, task: Task) -> list[tuple[Result, str]]:
    """The submission's scored points on the task with their prediction blobs."""
    rows = session.execute(
        select(Result, SubmissionFile.sha256)
        .join(SubmissionFile, SubmissionFile.id == Result.file_id)
        .where(
            Result.submission_id == submission.id,
            Result.task_id == task.id,
            Result.performance.is_not(None),
        )
        .order_by(Result.flops_mean, Result.point)
    ).all()
    return [(r, sha) for r, sha in rows]


def _check_entry(name: str, submission: Submission, points: list[tuple[Result, str]]) -> None:
    problems: list[Problem] = []
    if submission.kind is not SubmissionKind.MEASURED:
        problems.append(
            Problem(
                f"submission {submission.id} is self-reported (its costs were typed in, not "
                "counted): paired comparisons take platform-counted entries only",
                name,
            )
        )
    elif submission.state is not SubmissionState.DONE:
        problems.append(Problem(f"submission {submission.id} is {submission.state.value}", name))
    elif not points:
        problems.append(
            Problem(f"submission {submission.id} has no scored point on this task", name)
        )
    if problems:
        raise InvalidInputError("These entries cannot be compared", problems)


def _read(d: Difference, shift: float = 0.0) -> DifferenceRead:
    return DifferenceRead(
        difference=d.difference + shift,
        ci_low=d.interval.low + shift,
        ci_high=d.interval.high + shift,
        within_noise=d.interval.shifted(shift).contains(0.0),
    )


def compare(
    session: Session,
    settings: Settings,
    task: Task,
    a: Submission,
    b: Submission,
    *,
    a_point: str | None = None,
    b_point: str | None = None,
) -> PairedRead:
    """Paired bootstrap of `a` against `b` on `task` (both visible to the caller: checked by
    the route). `a_point`/`b_point` pick one pair; without them, points sharing a name pair."""
    a_rows, b_rows = _points(session, a, task), _points(session, b, task)
    _check_entry("a", a, a_rows)
    _check_entry("b", b, b_rows)
    a_names = [r.point for r, _ in a_rows]
    b_names = [r.point for r, _ in b_rows]
    problems: list[Problem] = []
    if a_point is not None and a_point not in a_names:
        problems.append(Problem(f"submission {a.id} has no point {a_point!r} here", "a_point"))
    if b_point is not None and b_point not in b_names:
        problems.append(Problem(f"submission {b.id} has no point {b_point!r} here", "b_point"))
    if problems:
        raise InvalidInputError("Unknown point", problems)
    if a_point is not None or b_point is not None:
        pairs = [
            (a_names.index(pa), b_names.index(pb))
            for pa in ([a_point] if a_point is not None else a_names)
            for pb in ([b_point] if b_point is not None else b_names)
        ]
    else:
        pairs = [(i, b_names.index(name)) for i, name in enumerate(a_names) if name in b_names]

    store = blob_store(settings)
    manifest = manifest_of(task)

    def labels(sha: str, name: str) -> np.ndarray:
        parsed = read_parsed(
            store,
            sha,
            manifest=manifest,
            n_rows=task.test_size,
            file_name=name,
            max_bytes=settings.limits.prediction_file_bytes,
            max_problems=settings.limits.max_problems,
        )
        return parsed.labels

    try:
        a_preds = [labels(sha, r.point) for r, sha in a_rows]
        b_preds = [labels(sha, r.point) for r, sha in b_rows]
    except OSError as exc:  # a stored file gone from this installation (nothing to resample)
        raise InvalidInputError(
            "The stored predictions of these entries are not available on this installation",
            [Problem(str(exc.filename or exc)[:200], "predictions")],
        ) from exc
    gold = load_gold(session, task)
    cfg = settings.scoring
    mean, per_pair = paired_bootstrap(
        manifest,
        gold,
        a_preds,
        b_preds,
        pairs,
        n_resamples=cfg.bootstrap_resamples,
        rng=task_rng(cfg.bootstrap_seed, task.name),
    )
    score = None
    curve = baseline_curve(session, task)
    flops = [r.flops_mean for r, _ in a_rows + b_rows]
    complete = not any(r.cost_incomplete for r, _ in a_rows + b_rows)
    if curve is not None and complete and all(f for f in flops):
        base_a = sum(curve.at(r.flops_mean or 0.0) for r, _ in a_rows) / len(a_rows)
        base_b = sum(curve.at(r.flops_mean or 0.0) for r, _ in b_rows) / len(b_rows)
        score = _read(mean, shift=base_b - base_a)
    return PairedRead(
        task=task.name,
        a=a.id,
        b=b.id,
        n_samples=task.test_size,
        confidence=CONFIDENCE,
        method=METHOD,
        n_resamples=cfg.bootstrap_resamples,
        seed=cfg.bootstrap_seed,
        mean_performance=_read(mean),
        score=score,
        points=[
            PairedPointRead(
                a_point=a_names[i],
                b_point=b_names[j],
                a_performance=float(a_rows[i][0].performance or 0.0),
                b_performance=float(b_rows[j][0].performance or 0.0),
                **_read(d).model_dump(),
            )
            for (i, j), d in zip(pairs, per_pair, strict=True)
        ],
    )
