"""An upload's way in, shared by the API (`POST /api/v1/submissions`, `/validate`) and the
submit form without JavaScript (`/submit`, `/submit/check`): stage the body, run every check
and the pre-flight, then the `submit` command (`core.submissions.commands`).

No connection is held while the body streams (`release_connection`); nothing here commits: the
request's session dependency commits once, then sends the job the command recorded.
"""

from __future__ import annotations

import pathlib
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from core.errors import InvalidInputError, Problem
from core.models import Task, User
from core.settings import Settings
from core.storage import blob_store
from core.submissions import commands
from core.submissions.files import resolve_prediction_names
from core.submissions.quota import remaining_quota
from core.submissions.schemas import (
    FileSummary,
    QuotaRead,
    TaskSummary,
    ValidationSummary,
    WeightsSummary,
)
from core.submissions.self_reported import costs_from_fields
from core.submissions.service import CheckedSubmission, check_submission
from core.tasks.names import TaskNames
from core.tasks.service import load_test_texts
from core.tokenizers import DEFAULT_TOKENIZER, cached_tokenizer, encode, registered_tokenizers
from web import enqueue
from web.admission import UploadGate, run_upload_work, upload_slot
from web.deps import release_connection
from web.uploads import StagedUpload, draft_from, staged_upload


def _tasks_named(session: Session, staged: StagedUpload) -> list[Task]:
    names = resolve_prediction_names([u.name for u in staged.predictions], TaskNames.load(session))
    tasks: dict[int, Task] = {}
    for named in names:
        if not isinstance(named, Problem):  # a bad name is reported by the full check
            tasks.setdefault(named.task.id, named.task)
    return list(tasks.values())


def _check(
    session: Session, settings: Settings, user: User, staged: StagedUpload, *, dry_run: bool
) -> CheckedSubmission:
    problems = list(staged.problems)
    draft = draft_from(staged.fields, problems)
    costs = costs_from_fields(staged.fields, problems)
    return check_submission(
        session,
        owner_id=user.id,
        draft=draft,
        model=staged.model,
        predictions=staged.predictions,
        tokenizer=staged.tokenizer,
        weights=staged.weights,
        limits=settings.limits,
        tokenizers=registered_tokenizers(settings.storage.tokenizers_dir),
        require_name=not dry_run,
        problems=problems,
        predictions_refused=staged.predictions_refused,
        costs=costs,
    )


PREFLIGHT_FIRST_ROWS = 3  # real test samples per task: the first rows ...
PREFLIGHT_LONGEST_ROWS = 2  # ... and the longest inputs (position limits, length branches)


def _preflight_samples(
    session: Session, settings: Settings, staged: StagedUpload, checked: CheckedSubmission
) -> list[dict[str, Any]]:
    """A handful of real test inputs of each task the submission names, tokenized with its
    tokenizer as the cost job tokenizes them (never labels: the test split holds none)."""
    path: pathlib.Path | None
    if staged.tokenizer is not None:
        path = staged.tokenizer.path
    else:
        path = registered_tokenizers(settings.storage.tokenizers_dir).get(
            checked.tokenizer_name or DEFAULT_TOKENIZER
        )
    if path is None:
        return []
    tok = cached_tokenizer(path, max_tokens=settings.limits.max_tokens)
    samples: list[dict[str, Any]] = []
    for task_id, task_name in dict.fromkeys((p.task_id, p.task_name) for p in checked.predictions):
        task = session.get(Task, task_id)
        if task is None:
            continue
        texts = load_test_texts(session, task)
        longest = sorted(range(len(texts)), key=lambda i: -sum(len(t) for t in texts[i]))
        rows = list(
            dict.fromkeys(
                [*range(min(PREFLIGHT_FIRST_ROWS, len(texts))), *longest[:PREFLIGHT_LONGEST_ROWS]]
            )
        )
        chosen = [texts[i] for i in rows]
        if chosen and len(chosen[0]) == 2:
            encodings = tok.encode_batch([(a, b) for a, b in chosen])
            ids = [e.ids for e in encodings]
            firsts: list[int | None] = [e.type_ids.count(0) for e in encodings]
        else:
            ids = encode(tok, chosen)
            firsts = [None] * len(ids)
        samples += [
            {"task": task_name, "index": row, "ids": list(i), "first": first}
            for row, i, first in zip(rows, ids, firsts, strict=True)
        ]
    return samples


def _preflight_paths(checked: CheckedSubmission) -> list[dict[str, Any]]:
    out = []
    for p in checked.predictions:
        if p.paths:
            out.append(
                {
                    "file": p.upload.name,
                    "task": p.task_name,
                    "modules": [[(c.name, list(c.shape)) for c in path] for _, path in p.paths],
                    "rows": [row for row, _ in p.paths],
                }
            )
        elif p.exit_layers:
            out.append(
                {
                    "file": p.upload.name,
                    "task": p.task_name,
                    "exit_layers": [layer for _, layer in p.exit_layers],
                    "rows": [row for row, _ in p.exit_layers],
                }
            )
    return out


def _refuse_on_preflight(
    session: Session,
    settings: Settings,
    staged: StagedUpload,
    checked: CheckedSubmission,
    *,
    check_only: bool,
) -> dict[str, Any] | None:
    """Run the model in a pre-flight worker's sandbox (captured, then run on a handful of real
    test samples of each task named; every module path the files name matched against its
    graph); 422 when the weights do not match its graph, or (a check) when it cannot be
    captured, fails on a sample or a path does not match. None: no worker answered in time
    (the same is checked when the submission is counted)."""
    assert staged.model is not None
    weights: dict[str, dict[str, tuple[list[int], str]]] = {}
    label = ""
    if checked.weights is not None:
        label = checked.weights.upload.name
        weights[label] = {
            name: (list(shape), dtype)
            for name, (shape, dtype) in checked.weights.manifest.tensors.items()
        }
    # A check sends real samples and the files' paths, when a worker is there to run them
    full = check_only and enqueue.preflight_available(settings)
    samples = _preflight_samples(session, settings, staged, checked) if full else []
    paths = _preflight_paths(checked) if full else []
    answer = enqueue.preflight(
        settings, staged.model.path.read_bytes(), weights, samples=samples, paths=paths
    )
    if answer is None:
        return None
    problems = [
        Problem(str(p)[:2000], file=label or None, column="weights")
        for p in answer.get("problems") or []
    ]
    if problems:
        raise InvalidInputError(
            f"The weights do not match the model's graph ({len(problems)} problem(s)); "
            "nothing was stored",
            problems,
        )
    if not answer.get("captured") and (check_only or not answer.get("stopped")):
        raise InvalidInputError(
            "The model file could not be captured in the pre-flight check; nothing was stored",
            [
                Problem(
                    str(answer.get("error") or "no capture")[:4000],
                    file=staged.model.name,
                    column="model",
                )
            ],
        )
    failed = [
        Problem(f"the model fails on {text}"[:2000], file=staged.model.name, column="model")
        for text in answer.get("sample_problems") or []
    ]
    failed += [
        Problem(
            str(p.get("problem"))[:2000],
            file=str(p.get("file")) if p.get("file") else None,
            line=int(p["line"]) if p.get("line") is not None else None,
            column=str(p.get("column") or "modules"),
        )
        for p in answer.get("path_problems") or []
    ]
    if failed:
        raise InvalidInputError(
            f"The pre-flight check ran the model and found {len(failed)} problem(s); "
            "nothing was stored",
            failed,
        )
    return answer


def _model_check_text(answer: dict[str, Any] | None, checked: CheckedSubmission) -> str:
    if answer is None:
        return (
            "not run: no pre-flight worker answered (the model is captured when the "
            "submission is counted)"
        )
    text = f"captured in the sandbox in {float(answer.get('seconds', 0)):.1f} s"
    ran = answer.get("samples_run") or {}
    if ran:
        text += "; ran on " + ", ".join(f"{n} real {t} test input(s)" for t, n in ran.items())
    if answer.get("paths_checked"):
        text += f"; {answer['paths_checked']} distinct module path(s) match its graph"
    if checked.weights is not None:
        text += "; the weights match its graph"
    return text


def _create(session: Session, settings: Settings, user: User, staged: StagedUpload) -> int:
    checked = _check(session, settings, user, staged, dry_run=False)
    # check_submission refuses a missing model unless the costs are self-reported
    assert staged.model is not None or checked.costs is not None
    if checked.weights is not None:
        _refuse_on_preflight(session, settings, staged, checked, check_only=False)
    submission = commands.submit(
        session,
        store=blob_store(settings),
        owner=user,
        draft=draft_from(staged.fields, []),
        checked=checked,
        model=staged.model,
        tokenizer=staged.tokenizer,
        tasks=_tasks_named(session, staged),
        quota_limit=settings.limits.submissions_per_task_per_day,
    )
    return submission.id


def _typed_cost(checked: CheckedSubmission, task_id: int, point: str) -> dict[str, Any]:
    cost = (checked.costs or {}).get((task_id, point))
    if cost is None:
        return {}
    return {"self_reported_flops": cost.flops, "self_reported_params": cost.params}


def _summary(staged: StagedUpload, checked: CheckedSubmission) -> ValidationSummary:
    points: dict[str, list[str]] = {}
    for p in checked.predictions:
        points.setdefault(p.task_name, []).append(p.point)
    return ValidationSummary(
        valid=True,
        model=staged.model.name if staged.model else None,
        tokenizer=staged.tokenizer.name if staged.tokenizer else checked.tokenizer_name,
        tasks=[TaskSummary(task=t, points=sorted(ps)) for t, ps in points.items()],
        files=[
            FileSummary(
                file=p.upload.name,
                task=p.task_name,
                point=p.point,
                rows=p.rows,
                format=p.format.value,
                **_typed_cost(checked, p.task_id, p.point),
            )
            for p in checked.predictions
        ],
        rows=sum(p.rows for p in checked.predictions),
        weights=(
            None
            if checked.weights is None
            else WeightsSummary(
                file=checked.weights.upload.name,
                size=checked.weights.manifest.size,
                tensors=checked.weights.manifest.tensor_count,
                elements=checked.weights.manifest.element_count,
            )
        ),
    )


async def submit_upload(request: Request, session: Session, settings: Settings, user: User) -> int:
    """Stage the body, check it, store it as a queued submission (flushed); its id."""
    async with upload_slot(request, settings) as gate:  # 503 + Retry-After when all taken
        await run_upload_work(gate, release_connection, session)  # none held while it streams
        async with staged_upload(request, settings) as staged:
            return await run_upload_work(gate, _create, session, settings, user, staged)


async def check_upload(
    request: Request, session: Session, settings: Settings, user: User
) -> ValidationSummary:
    """The same checks as a submission; stores nothing; what was found when valid (503 with
    Retry-After while every upload slot of this process is taken, as for a submission)."""
    async with upload_slot(request, settings) as gate:
        return await _check_staged(request, session, settings, user, gate)


async def _check_staged(
    request: Request, session: Session, settings: Settings, user: User, gate: UploadGate
) -> ValidationSummary:
    await run_upload_work(gate, release_connection, session)  # none held while it streams
    async with staged_upload(request, settings) as staged:
        checked = await run_upload_work(gate, _check, session, settings, user, staged, dry_run=True)
        summary = _summary(staged, checked)
        summary.quota = [
            QuotaRead(
                task=q.task,
                used=q.used,
                limit=q.limit,
                remaining=q.remaining,
                next_slot_at=q.next_slot_at,
            )
            for q in remaining_quota(
                session,
                owner_id=user.id,
                tasks=_tasks_named(session, staged),
                limit=settings.limits.submissions_per_task_per_day,
            )
        ]
        if staged.model is not None:
            answer = await run_upload_work(
                gate, _refuse_on_preflight, session, settings, staged, checked, check_only=True
            )
            summary.model_check = _model_check_text(answer, checked)
        return summary
