"""Small row factories for leaderboard tests: tasks, submissions, and their points (flushed)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from core.models import Result, Submission, SubmissionKind, SubmissionState, Task, Visibility
from core.tasks.manifest import ELUE_MANIFESTS

_names = itertools.count(1)
_points = itertools.count(1)

# ELUE's published SST-2 baseline (ElasticBERT-base exits 3/4/6/12): (MFLOPs, performance).
SST2_BASELINE = [(1059, 84.1), (1412, 85.7), (2118, 87.0), (4237, 88.6)]
MFLOPS = 1e6


def make_task(session: Session, name: str, *, position: int | None = None) -> Task:
    """A task row (no examples or gold); ELUE names get their real family and metric."""
    manifest = ELUE_MANIFESTS.get(name)
    family = manifest.family.value if manifest else "nli"
    sha = hashlib.sha256(name.encode()).hexdigest()
    task = Task(
        name=name,
        display_name=manifest.display_name if manifest else name,
        family=family,
        metric=manifest.metric.value if manifest else "accuracy",
        label_kind=manifest.label_kind.value if manifest else "classification",
        manifest=manifest.model_dump(mode="json") if manifest else {},
        position=position if position is not None else list(ELUE_MANIFESTS).index(name),
        test_size=10,
        test_sha256=sha,
        gold_sha256=sha,
    )
    session.add(task)
    session.flush()
    return task


def make_submission(
    session: Session,
    name: str | None = None,
    *,
    kind: SubmissionKind = SubmissionKind.MEASURED,
    visibility: Visibility = Visibility.PUBLIC,
    hidden: bool = False,
    state: SubmissionState = SubmissionState.DONE,
    params: int | None = None,
    verified: bool = False,
) -> Submission:
    sub = Submission(
        name=name or f"submission-{next(_names)}",
        kind=kind,
        visibility=visibility,
        hidden=hidden,
        state=state,
        params=params,
        verified=verified,
    )
    session.add(sub)
    session.flush()
    return sub


def add_points(
    session: Session,
    submission: Submission,
    task: Task,
    points: Sequence[tuple[float | None, float | None]],
    *,
    params: int | None = -1,
) -> list[Result]:
    """One result per (MFLOPs, performance); `params` defaults to the submission's count."""
    rows = []
    for mflops, performance in points:
        row = Result(
            submission_id=submission.id,
            task_id=task.id,
            point=f"p{next(_points)}",
            performance=performance,
            metrics={"accuracy": performance} if performance is not None else {},
            flops_mean=None if mflops is None else mflops * MFLOPS,
            flops_p10=None if mflops is None else mflops * MFLOPS * 0.9,
            flops_p90=None if mflops is None else mflops * MFLOPS * 1.1,
            params=submission.params if params == -1 else params,
            cost_status="counted" if mflops is not None else "pending",
            # a verified entry's points are verified (the platform reproduced them)
            verify_status="verified" if submission.verified and mflops is not None else None,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def make_entry(
    session: Session,
    name: str | None,
    points: Mapping[Task, Sequence[tuple[float | None, float | None]]],
    **kwargs: object,
) -> Submission:
    """A submission with points on several tasks: {task: [(MFLOPs, performance), ...]}."""
    sub = make_submission(session, name, **kwargs)  # type: ignore[arg-type]
    for task, task_points in points.items():
        add_points(session, sub, task, task_points)
    return sub
