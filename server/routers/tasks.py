"""`/api/v1/tasks`: task metadata (gold labels never leave the server)."""

from __future__ import annotations

from fastapi import APIRouter

from core.models import Task
from core.tasks import service
from server.deps import SessionDep
from server.schemas import TaskRead

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


def _read(task: Task) -> TaskRead:
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
    )


@router.get("")
def list_tasks(session: SessionDep) -> list[TaskRead]:
    return [_read(t) for t in service.list_tasks(session)]


@router.get("/{name}")
def get_task(name: str, session: SessionDep) -> TaskRead:
    return _read(service.get_task(session, name))
