"""`/api/v1/tasks`: task metadata (gold labels never leave the server)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from sqlalchemy.orm import Session

from core.db.outbox import outbox
from core.errors import NotFoundError
from core.models import Task
from core.paired import PairedRead, compare
from core.submissions import commands
from core.submissions.manage import submissions_of_task
from core.submissions.schemas import BaselineRead, BaselineSet, RerunReport
from core.tasks import service
from web.after_commit import rerun_report
from web.api.schemas.tasks import TaskRead, TaskSplitRead
from web.auth import AdminUser, OptionalUser
from web.deps import SessionDep, SettingsDep
from web.errors import error_responses
from web.lookups import SubmissionPairDep, TaskDep, TaskName

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


def _splits(session: Session, task: Task) -> list[TaskSplitRead]:
    return [
        TaskSplitRead(
            split=s.split,
            size=s.size,
            labelled=s.labelled,
            url=f"/api/v1/tasks/{task.name}/data/{s.split}",
        )
        for s in service.imported_splits(session, task)
    ]


def _read(task: Task, session: Session) -> TaskRead:
    m = service.manifest_of(task)
    return TaskRead(
        name=task.name,
        display_name=task.display_name,
        family=task.family,
        metric=task.metric,
        label_kind=task.label_kind,
        labels=list(m.labels),
        text_columns=list(m.text_columns),
        test_size=task.test_size,
        description=task.description,
        splits=_splits(session, task),
    )


@router.get("")
def list_tasks(session: SessionDep) -> list[TaskRead]:
    return [_read(t, session) for t in service.list_tasks(session)]


@router.get("/{name}", responses={404: {"description": "Unknown task"}})
def get_task(task: TaskDep, session: SessionDep) -> TaskRead:
    return _read(task, session)


TSV = "text/tab-separated-values"
_ADMIN_ERRORS = error_responses(
    (401, "Not logged in"), (403, "Administrators only"), (404, "Unknown task")
)


def _tsv_field(text: str) -> str:
    # Inputs were imported from TSV, so they hold no tabs or line ends; make sure of it.
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


@router.get(
    "/{name}/inputs",
    response_class=Response,
    responses={
        200: {
            "description": "The public test inputs as TSV: `index` then the text columns",
            "content": {TSV: {"schema": {"type": "string"}}},
        },
        404: {"description": "Unknown task"},
    },
)
def task_inputs(task: TaskDep, session: SessionDep) -> Response:
    """The public test inputs to predict (gold labels never leave the server)."""
    return _split_tsv(session, task, "test")


@router.get(
    "/{name}/data/{split}",
    response_class=Response,
    responses={
        200: {
            "description": "One imported split as TSV: `index`, the text columns, and `label` "
            "where the split was imported with labels (dev); the test split is inputs only",
            "content": {TSV: {"schema": {"type": "string"}}},
        },
        404: {"description": "Unknown task, or a split it does not have"},
    },
)
def task_split(
    task: TaskDep, split: Annotated[str, Path(max_length=16)], session: SessionDep
) -> Response:
    """Download a split the operator imported (`splits` of the task lists them). The test
    split's gold labels are never in any download."""
    offered = {s.split: s for s in service.imported_splits(session, task)}
    if split not in offered:
        raise NotFoundError(
            f"Task {task.name} has no split {split!r} to download "
            f"(imported: {', '.join(offered) or 'none'})"
        )
    return _split_tsv(session, task, split)


def _split_tsv(session: Session, task: Task, split: str) -> Response:
    columns = service.manifest_of(task).text_columns
    rows = service.load_split_rows(session, task, split)
    labelled = split != "test" and any(label is not None for _, label in rows)
    lines = ["\t".join(["index", *columns, *(["label"] if labelled else [])])]
    for i, (texts, label) in enumerate(rows):
        cells = [str(i), *(_tsv_field(t) for t in texts)]
        if labelled:
            cells.append("" if label is None else _tsv_field(label))
        lines.append("\t".join(cells))
    return Response(
        ("\n".join(lines) + "\n").encode("utf-8"),
        media_type=f"{TSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{task.name}.{split}.tsv"'},
    )


@router.put("/{name}/baseline", responses=_ADMIN_ERRORS)
def put_baseline(
    name: TaskName, body: BaselineSet, _admin: AdminUser, session: SessionDep
) -> BaselineRead:
    """Administrators: make a submission's curve on this task its baseline (ELUE score 0)."""
    task = commands.set_baseline(session, task_name=name, submission_id=body.submission_id)
    return BaselineRead(task=task.name, baseline_submission_id=task.baseline_submission_id)


@router.delete("/{name}/baseline", responses=_ADMIN_ERRORS)
def delete_baseline(name: TaskName, _admin: AdminUser, session: SessionDep) -> BaselineRead:
    """Administrators: remove the task's baseline (its entries lose their ELUE scores)."""
    task = commands.clear_baseline(session, task_name=name)
    return BaselineRead(task=task.name, baseline_submission_id=None)


@router.post("/{name}/rerun", response_model=RerunReport, responses=_ADMIN_ERRORS)
def rerun_task(_admin: AdminUser, task: TaskDep, session: SessionDep) -> Response:
    """Administrators: re-run every measured submission with predictions for this task."""
    requeued = commands.rerun(session, submissions_of_task(session, task))
    return rerun_report(requeued, outbox(session))


@router.get(
    "/{name}/paired",
    responses={
        404: {"description": "Unknown task, or a submission not visible to the caller"},
        422: {"description": "An entry without predictions here, or an unknown point"},
    },
)
def paired(
    user: OptionalUser,
    task: TaskDep,
    pair: SubmissionPairDep,
    session: SessionDep,
    settings: SettingsDep,
) -> PairedRead:
    """Paired bootstrap of two measured entries on this task (docs/ranking.md): the difference
    a - b of their mean performance, ELUE task score and compared points, each with its 95%
    interval and `within_noise` when that interval contains 0. `point` names a point both
    entries have; `a_point` / `b_point` pick one each; by default, points sharing a name."""
    return compare(
        session, settings, task, pair.a, pair.b, a_point=pair.a_point, b_point=pair.b_point
    )
