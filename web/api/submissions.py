"""`/api/v1/submissions`: upload, dry-run check, read, list, edit, withdraw, and admin actions.

Writes commit explicitly before anything leaves the transaction: a job is sent to the queue only
once its row is committed (a worker must find it), and blobs are collected only after the
withdrawal is committed.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.session import engine_for, transaction
from core.errors import ConflictError, InvalidInputError, Problem
from core.models import SubmissionKind, SubmissionState, Task, User
from core.settings import Settings
from core.storage import blob_store
from core.submissions import manage, queries
from core.submissions.access import (
    get_owned_submission_or_raise,
    get_visible_submission_or_raise,
)
from core.submissions.blobs import blob_lock, collect_blobs
from core.submissions.files import resolve_prediction_names
from core.submissions.quota import check_quota, remaining_quota
from core.submissions.schemas import (
    CostsRead,
    FileSummary,
    QuotaRead,
    RerunReport,
    SubmissionCreated,
    SubmissionPage,
    SubmissionRead,
    SubmissionUpdate,
    TaskSummary,
    ValidationSummary,
    WeightsSummary,
)
from core.submissions.self_reported import costs_from_fields
from core.submissions.service import CheckedSubmission, check_submission, store_submission
from core.tasks.names import TaskNames
from core.tasks.service import get_task, load_test_texts
from core.tokenizers import DEFAULT_TOKENIZER, cached_tokenizer, encode, registered_tokenizers
from server import enqueue
from web.auth import AdminUser, OptionalUser, UnauthenticatedError, WriterUser
from web.deps import SessionDep, SettingsDep, release_connection
from web.uploads import MULTIPART_BODY, StagedUpload, draft_from, staged_upload

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/submissions", tags=["submissions"])

SubmissionId = Annotated[int, Path(ge=1, le=2**62)]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not logged in"},
    404: {"description": "No such submission, or not visible to the caller"},
    422: {"description": "Every problem found, each with file, line and column"},
}


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


def _drop_blobs(settings: Settings, shas: list[str]) -> None:
    """Remove the blobs a failed upload stored, unless a committed submission uses them too
    (what cannot be removed now, the database being away, goes at the next clean-up)."""
    if not shas:
        return
    try:
        with transaction(engine_for(settings.database_url)) as fresh:
            collect_blobs(fresh, blob_store(settings), shas)
    except Exception as exc:
        log.warning("could not remove the blobs of a failed upload yet: %s", exc)


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


def _create(
    session: Session, settings: Settings, user: User, staged: StagedUpload
) -> tuple[int, str]:
    checked = _check(session, settings, user, staged, dry_run=False)
    # check_submission refuses a missing model unless the costs are self-reported
    assert staged.model is not None or checked.costs is not None
    if checked.weights is not None:
        _refuse_on_preflight(session, settings, staged, checked, check_only=False)
    # One submission at a time per user (PostgreSQL row lock), so two uploads cannot both take
    # the last slot of the quota.
    session.get(User, user.id, with_for_update=True)
    check_quota(
        session,
        owner_id=user.id,
        tasks=_tasks_named(session, staged),
        limit=settings.limits.submissions_per_task_per_day,
    )
    store = blob_store(settings)
    try:
        # On PostgreSQL the lock ends with the commit below; an error rolls the session back
        # (ending it) before the clean-up, which takes it exclusively.
        with blob_lock(session, exclusive=False):
            try:
                submission = store_submission(
                    session,
                    store,
                    owner_id=user.id,
                    draft=draft_from(staged.fields, []),
                    checked=checked,
                    model=staged.model,
                    tokenizer=staged.tokenizer,
                )
                job_id = enqueue.assign_job(submission)
                session.commit()
            except IntegrityError as exc:  # a concurrent upload took the same name
                raise ConflictError(
                    "The submission could not be stored, nothing was stored: you already have "
                    "a submission with this name (names are unique per owner, ignoring case "
                    "and spacing)"
                ) from exc
    except BaseException:
        _drop_blobs(settings, store.written)  # a full disk, the database away: no orphans
        raise
    return submission.id, job_id


@router.post(
    "",
    status_code=202,
    summary="Submit prediction files and a model file for evaluation",
    openapi_extra=MULTIPART_BODY,
    responses={**ERRORS, 413: {"description": "Request too large"}, 429: {"description": "Quota"}},
)
async def create_submission(
    request: Request, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> SubmissionCreated:
    """Everything checkable without running code is checked first; 422 lists every problem."""
    await run_in_threadpool(release_connection, session)  # none held while the body streams
    async with staged_upload(request, settings) as staged:
        submission_id, job_id = await run_in_threadpool(_create, session, settings, user, staged)
    queued = await run_in_threadpool(enqueue.send_score, settings, submission_id, job_id)
    return SubmissionCreated(
        id=submission_id,
        url=queries.page_url(submission_id),
        api_url=queries.api_url(submission_id),
        state=SubmissionState.QUEUED,
        queued=queued,
    )


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


@router.post(
    "/validate",
    summary="Check a submission without storing it (uses no quota)",
    openapi_extra=MULTIPART_BODY,
    responses={**ERRORS, 413: {"description": "Request too large"}},
)
async def validate_submission(
    request: Request, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> ValidationSummary:
    """The same checks as a submission; stores nothing; 200 with what was found when valid."""
    await run_in_threadpool(release_connection, session)  # none held while the body streams
    async with staged_upload(request, settings) as staged:
        checked = await run_in_threadpool(_check, session, settings, user, staged, dry_run=True)
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
            answer = await run_in_threadpool(
                _refuse_on_preflight, session, settings, staged, checked, check_only=True
            )
            summary.model_check = _model_check_text(answer, checked)
        return summary


@router.get(
    "",
    summary="List submissions: your own (owner=me) or the public ones",
    responses={401: ERRORS[401], 404: {"description": "Unknown task"}},
)
def list_submissions(
    user: OptionalUser,
    session: SessionDep,
    owner: Literal["me"] | None = None,
    task: Annotated[str | None, Query(max_length=64)] = None,
    kind: SubmissionKind | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SubmissionPage:
    if owner == "me" and user is None:
        raise UnauthenticatedError("owner=me needs a logged-in caller or an API token")
    return queries.list_submissions(
        session,
        owner=user if owner == "me" else None,
        task=get_task(session, task) if task else None,
        kind=kind,
        page=page,
        per_page=per_page,
    )


@router.get("/{submission_id}", responses=ERRORS)
def get_submission(
    submission_id: SubmissionId, user: OptionalUser, session: SessionDep
) -> SubmissionRead:
    """State, stage, queue position, timings, results; error detail and log for the owner."""
    submission = get_visible_submission_or_raise(session, submission_id, user)
    return queries.read_submission(session, submission, user)


@router.get("/{submission_id}/costs/{result_id}", responses=ERRORS)
def get_costs(
    submission_id: SubmissionId,
    result_id: Annotated[int, Path(ge=1, le=2**62)],
    user: OptionalUser,
    session: SessionDep,
) -> CostsRead:
    """Per-sample FLOPs of one result, with the per-operator and per-module breakdowns."""
    submission = get_visible_submission_or_raise(session, submission_id, user)
    return queries.read_costs(session, submission, result_id)


@router.patch(
    "/{submission_id}",
    responses={
        **ERRORS,
        400: {"description": "Unreadable body"},
        403: {"description": "Not the owner"},
    },
)
def update_submission(
    submission_id: SubmissionId, changes: SubmissionUpdate, user: WriterUser, session: SessionDep
) -> SubmissionRead:
    """The owner renames, re-describes, or changes the visibility of a submission."""
    submission = get_owned_submission_or_raise(session, submission_id, user)
    manage.update_submission(session, submission, changes)
    read = queries.read_submission(session, submission, user)
    session.commit()
    return read


@router.delete(
    "/{submission_id}",
    status_code=204,
    response_class=Response,
    responses={**ERRORS, 403: {"description": "Not the owner"}, 409: {"description": "Baseline"}},
)
def withdraw_submission(
    submission_id: SubmissionId, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """The owner withdraws a submission: results and files removed, the quota slot kept."""
    submission = get_owned_submission_or_raise(session, submission_id, user)
    shas = manage.withdraw_submission(session, submission)
    session.commit()
    try:
        with transaction(engine_for(settings.database_url)) as fresh:
            collect_blobs(fresh, blob_store(settings), shas)
    except Exception:  # the withdrawal stands; an unreferenced blob is only wasted space
        log.exception("submission %s: could not remove its unreferenced blobs", submission_id)
    return Response(status_code=204)


@router.post("/{submission_id}/rerun", responses={**ERRORS, 409: {"description": "Not runnable"}})
def rerun_submission(
    submission_id: SubmissionId, _admin: AdminUser, session: SessionDep, settings: SettingsDep
) -> RerunReport:
    """Administrators: run the whole pipeline again for one submission."""
    submission = get_visible_submission_or_raise(session, submission_id, _admin, for_update=True)
    return enqueue.rerun(session, settings, [submission])


def _set_hidden(session: Session, submission_id: int, admin: User, hidden: bool) -> SubmissionRead:
    submission = get_visible_submission_or_raise(session, submission_id, admin, for_update=True)
    manage.set_hidden(submission, hidden)
    session.flush()
    read = queries.read_submission(session, submission, admin)
    session.commit()
    return read


@router.post("/{submission_id}/hide", responses=ERRORS)
def hide_submission(
    submission_id: SubmissionId, admin: AdminUser, session: SessionDep
) -> SubmissionRead:
    """Administrators: take a submission off every public listing (its owner still sees it)."""
    return _set_hidden(session, submission_id, admin, True)


@router.post("/{submission_id}/unhide", responses=ERRORS)
def unhide_submission(
    submission_id: SubmissionId, admin: AdminUser, session: SessionDep
) -> SubmissionRead:
    """Administrators: list a hidden submission again."""
    return _set_hidden(session, submission_id, admin, False)
