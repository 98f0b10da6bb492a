"""Results as one JSON document, to move a leaderboard between installations.

`export_results` writes every finished submission (measured or self-reported, with its public
metadata, kind, parameters and visibility) with its results: metrics, cost summaries, and
optionally the per-sample FLOPs arrays (base64 of `core.arrays.pack_array`) with the cost
breakdowns. Files (predictions, model code) are not part of it: the upload folder's backup is.

`import_results` is idempotent: tasks are matched by name (they must exist, scored against the
same gold labels); a submission already present (same owner, name and kind) is left as it is;
owners are matched by email when the export has them and such an account exists here, and
the entry is operator-owned otherwise. A task's baseline is set when the destination has none.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.arrays import unpack_array
from core.costs import CostRows, write_result_costs
from core.db.base import utcnow
from core.errors import InvalidInputError, Problem
from core.models import (
    Result,
    ResultCost,
    Submission,
    SubmissionKind,
    SubmissionState,
    Task,
    User,
    Visibility,
)
from core.ranking.score import baseline_delta
from core.submissions.queries import baseline_curve

FORMAT = "paretoboard-results"
VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OwnerExport(_Model):
    email: str = Field(max_length=320)
    display_name: str = Field("", max_length=100)


class CostExport(_Model):
    n: int = Field(ge=0)
    flops: str  # base64 of core.arrays.pack_array(per-sample FLOPs)
    per_module: dict[str, Any] = Field(default_factory=dict)
    per_operator: dict[str, Any] = Field(default_factory=dict)
    uncounted: dict[str, Any] = Field(default_factory=dict)
    mismatches: list[Any] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class ResultExport(_Model):
    task: str
    point: str = ""
    performance: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    # performance minus the task's baseline curve at this point's FLOPs, computed on export
    # (`core.ranking.score.baseline_delta`); read by nothing on import
    baseline_delta: float | None = None
    gold_sha256: str | None = None
    cost_status: str = "pending"
    flops_mean: float | None = None
    flops_median: float | None = None
    flops_p10: float | None = None
    flops_p90: float | None = None
    flops_max: float | None = None
    macs_mean: float | None = None
    params: int | None = None
    counter_versions: dict[str, Any] = Field(default_factory=dict)
    device: str | None = None
    cost: CostExport | None = None
    ci_low: float | None = None  # 95% bootstrap interval of performance (docs/ranking.md)
    ci_high: float | None = None


class SubmissionExport(_Model):
    ref: str  # the source installation's id, for references inside the file (baselines)
    name: str = Field(max_length=200)
    description: str = ""
    paper_url: str | None = None
    code_url: str | None = None
    kind: SubmissionKind
    visibility: Visibility
    hidden: bool = False
    verified: bool = False
    tokenizer_name: str | None = None
    params: int | None = None
    owner: OwnerExport | None = None
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    results: list[ResultExport] = Field(default_factory=list)


class TaskExport(_Model):
    name: str
    display_name: str = ""
    metric: str = ""
    test_sha256: str | None = None
    gold_sha256: str | None = None
    baseline: str | None = None  # a submission's `ref`


class ResultsExport(_Model):
    format: Literal["paretoboard-results"]
    version: Literal[1]
    exported_at: dt.datetime | None = None
    source: str = ""
    tasks: list[TaskExport] = Field(default_factory=list)
    submissions: list[SubmissionExport] = Field(default_factory=list)


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    # Their owner's email has no account here: imported as operator entries.
    owners_not_found: list[str] = field(default_factory=list)
    baselines_set: list[str] = field(default_factory=list)
    results: int = 0


_RESULT_FIELDS = (
    "point",
    "performance",
    "metrics",
    "gold_sha256",
    "cost_status",
    "flops_mean",
    "flops_median",
    "flops_p10",
    "flops_p90",
    "flops_max",
    "macs_mean",
    "params",
    "counter_versions",
    "device",
    "ci_low",
    "ci_high",
)
_SUBMISSION_FIELDS = (
    "name",
    "description",
    "paper_url",
    "code_url",
    "kind",
    "visibility",
    "hidden",
    "verified",
    "tokenizer_name",
    "params",
)


def export_results(
    session: Session, *, per_sample: bool = False, owners: bool = True, source: str = ""
) -> dict[str, Any]:
    """Every finished submission with its results, as a JSON-ready document."""
    tasks = session.scalars(select(Task).order_by(Task.position, Task.name)).all()
    task_names = {t.id: t.name for t in tasks}
    curves = {t.id: baseline_curve(session, t) for t in tasks}
    subs = session.scalars(
        select(Submission).where(Submission.state == SubmissionState.DONE).order_by(Submission.id)
    ).all()
    emails: dict[int, OwnerExport] = {}
    if owners:
        owner_ids = {s.owner_id for s in subs if s.owner_id is not None}
        for user in session.scalars(select(User).where(User.id.in_(owner_ids))):
            emails[user.id] = OwnerExport(email=user.email, display_name=user.display_name)
    results_of: dict[int, list[Result]] = {}
    for result in session.scalars(
        select(Result)
        .where(Result.submission_id.in_([s.id for s in subs]))
        .order_by(Result.submission_id, Result.task_id, Result.point)
    ):
        results_of.setdefault(result.submission_id, []).append(result)
    costs: dict[int, ResultCost] = {}
    if per_sample:
        ids = [r.id for rs in results_of.values() for r in rs]
        costs = {
            c.result_id: c
            for c in session.scalars(select(ResultCost).where(ResultCost.result_id.in_(ids)))
        }
    exported = [
        SubmissionExport(
            ref=str(sub.id),
            **{name: getattr(sub, name) for name in _SUBMISSION_FIELDS},
            owner=emails.get(sub.owner_id) if sub.owner_id is not None else None,
            created_at=_utc(sub.created_at),
            finished_at=_utc(sub.finished_at),
            results=[
                ResultExport(
                    task=task_names[r.task_id],
                    **{name: getattr(r, name) for name in _RESULT_FIELDS},
                    baseline_delta=baseline_delta(
                        r.performance, r.flops_mean, curves[r.task_id], incomplete=r.cost_incomplete
                    ),
                    cost=_cost_export(costs.get(r.id)),
                )
                for r in results_of.get(sub.id, [])
            ],
        )
        for sub in subs
    ]
    doc = ResultsExport(
        format=FORMAT,
        version=VERSION,
        exported_at=utcnow(),
        source=source,
        tasks=[
            TaskExport(
                name=t.name,
                display_name=t.display_name,
                metric=t.metric,
                test_sha256=t.test_sha256,
                gold_sha256=t.gold_sha256,
                baseline=str(t.baseline_submission_id) if t.baseline_submission_id else None,
            )
            for t in tasks
        ],
        submissions=exported,
    )
    return doc.model_dump(mode="json")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Aware UTC (SQLite gives back naive datetimes that were stored as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _cost_export(cost: ResultCost | None) -> CostExport | None:
    if cost is None:
        return None
    return CostExport(
        n=cost.n,
        flops=base64.b64encode(cost.flops).decode("ascii"),
        per_module=cost.per_module,
        per_operator=cost.per_operator,
        uncounted=cost.uncounted,
        mismatches=cost.mismatches,
        details=cost.details,
    )


def parse_export(data: Any) -> ResultsExport:
    """Validate a document (InvalidInputError listing every problem)."""
    try:
        return ResultsExport.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
            for err in exc.errors()[:50]
        ]
        raise InvalidInputError(
            "not a paretoboard results export (format paretoboard-results, version 1)", problems
        ) from exc


def import_results(session: Session, data: Any) -> ImportReport:
    """Add the document's submissions and results that are not here yet (flushes, no commit)."""
    doc = parse_export(data)
    tasks = {t.name: t for t in session.scalars(select(Task))}
    _check_tasks(doc, tasks)
    flops = _decode_costs(doc)
    users = {u.email.lower(): u.id for u in session.scalars(select(User))}
    report = ImportReport()
    ids: dict[str, int] = {}
    for sub in doc.submissions:
        owner_id = users.get(sub.owner.email.lower()) if sub.owner else None
        existing = session.scalar(
            select(Submission).where(
                Submission.name == sub.name,
                Submission.kind == sub.kind,
                Submission.owner_id.is_(None)
                if owner_id is None
                else Submission.owner_id == owner_id,
            )
        )
        if existing is not None:
            ids[sub.ref] = existing.id
            report.already_present.append(sub.name)
            continue
        row = _new_submission(sub, owner_id, doc.source)
        session.add(row)
        session.flush()
        ids[sub.ref] = row.id
        report.created.append(sub.name)
        if sub.owner is not None and owner_id is None:
            report.owners_not_found.append(sub.name)
        for i, res in enumerate(sub.results):
            result = Result(
                submission_id=row.id,
                task_id=tasks[res.task].id,
                file_id=None,
                **{name: getattr(res, name) for name in _RESULT_FIELDS},
            )
            session.add(result)
            report.results += 1
            if res.cost is not None:
                session.flush()
                write_result_costs(
                    session,
                    result,
                    CostRows(
                        flops=flops[(sub.ref, i)],
                        per_operator=res.cost.per_operator,
                        per_module=res.cost.per_module,
                        uncounted=res.cost.uncounted,
                        mismatches=res.cost.mismatches,
                        details=res.cost.details,
                    ),
                )
    for entry in doc.tasks:
        task = tasks.get(entry.name)
        if task is None or entry.baseline is None or entry.baseline not in ids:
            continue
        if task.baseline_submission_id is None:
            task.baseline_submission_id = ids[entry.baseline]
            report.baselines_set.append(task.name)
    session.flush()
    return report


def _new_submission(sub: SubmissionExport, owner_id: int | None, source: str) -> Submission:
    now = utcnow()
    message = f"Imported from {source}" if source else "Imported"
    return Submission(
        owner_id=owner_id,
        **{name: getattr(sub, name) for name in _SUBMISSION_FIELDS},
        state=SubmissionState.DONE,
        state_message=message,
        timeline=[{"state": "done", "at": now.isoformat(), "message": message}],
        created_at=sub.created_at or now,
        state_changed_at=now,
        finished_at=sub.finished_at,
    )


def _check_tasks(doc: ResultsExport, tasks: dict[str, Task]) -> None:
    """Every result's task exists here, with the gold labels it was scored against."""
    problems: list[Problem] = []
    missing = sorted({r.task for s in doc.submissions for r in s.results} - set(tasks))
    problems += [
        Problem(f"task {name!r} does not exist here (paretoboard tasks import DIR first)")
        for name in missing
    ]
    for sub in doc.submissions:
        for res in sub.results:
            task = tasks.get(res.task)
            if task is not None and res.gold_sha256 and res.gold_sha256 != task.gold_sha256:
                problems.append(
                    Problem(
                        f"submission {sub.name!r}: its {res.task} result was scored against "
                        "other gold labels than this installation's"
                    )
                )
    if problems:
        raise InvalidInputError("the results do not fit this installation's tasks", problems)


def _decode_costs(doc: ResultsExport) -> dict[tuple[str, int], np.ndarray]:
    """Per-sample arrays, checked (numeric, no pickle, the stated length) before any insert."""
    out: dict[tuple[str, int], np.ndarray] = {}
    problems: list[Problem] = []
    for sub in doc.submissions:
        for i, res in enumerate(sub.results):
            if res.cost is None:
                continue
            where = f"submission {sub.name!r}, {res.task} {res.point!r}".rstrip(" '")
            try:
                raw = base64.b64decode(res.cost.flops, validate=True)
                values = unpack_array(raw)
            except (binascii.Error, ValueError, zlib.error) as exc:
                problems.append(Problem(f"{where}: per-sample FLOPs unreadable: {exc}"))
                continue
            if values.ndim != 1 or values.size != res.cost.n or values.dtype == np.object_:
                problems.append(
                    Problem(
                        f"{where}: per-sample FLOPs have {values.size} values, not {res.cost.n}"
                    )
                )
                continue
            out[(sub.ref, i)] = values
    if problems:
        raise InvalidInputError("invalid per-sample costs in the export", problems)
    return out
