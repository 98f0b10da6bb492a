"""Persisting tasks: import (idempotent), lookup, and the hidden gold labels."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import String, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from core.arrays import pack_array, unpack_array
from core.errors import ConflictError, InvalidInputError, NotFoundError, Problem, TaskDataError
from core.models import Result, Task, TaskExample, TaskGold
from core.tasks.files import TaskData, read_task_folder
from core.tasks.manifest import ELUE_MANIFESTS, TaskManifest
from core.text import has_control

TEST_FILE = "test.tsv"
_ELUE_ORDER = {name: i for i, name in enumerate(ELUE_MANIFESTS)}


class ImportAction(enum.StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    UPDATED = "updated"  # manifest or dev split changed; gold and inputs untouched
    REPLACED = "replaced"  # inputs or gold replaced (--replace), results re-scored


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    name: str
    action: ImportAction
    test_size: int
    rescored: int = 0


# Re-scores every result of a task after its gold changed; returns how many were re-scored.
Rescorer = Callable[[Session, Task], int]


def manifest_of(task: Task) -> TaskManifest:
    """The task's manifest as stored at import."""
    return TaskManifest.model_validate(task.manifest)


def get_task(session: Session, name: str) -> Task:
    """The task called `name` (case-insensitive), or NotFoundError."""
    if has_control(name):  # never sent to the database (PostgreSQL refuses NUL)
        raise InvalidInputError(
            "Invalid task name",
            [Problem("task: control characters are not allowed", column="task")],
        )
    task = session.scalar(select(Task).where(func.lower(Task.name) == name.lower()))
    if task is None:
        known = ", ".join(t.name for t in list_tasks(session)) or "none imported yet"
        raise NotFoundError(f"Unknown task {name!r} (known tasks: {known})")
    return task


def list_tasks(session: Session) -> list[Task]:
    return list(session.scalars(select(Task).order_by(Task.position, Task.name)))


def load_gold(session: Session, task: Task) -> np.ndarray:
    """The task's hidden gold labels (codes or floats), in test index order."""
    gold = session.get(TaskGold, task.id)
    if gold is None:
        raise NotFoundError(f"Task {task.name} has no gold labels")
    return unpack_array(gold.labels)


def load_test_texts(session: Session, task: Task) -> list[tuple[str, ...]]:
    """The public test inputs in index order (one or two texts per row)."""
    rows = session.execute(
        select(TaskExample.text_a, TaskExample.text_b)
        .where(TaskExample.task_id == task.id, TaskExample.split == "test")
        .order_by(TaskExample.idx)
    )
    return [(a,) if b is None else (a, b) for a, b in rows]


SPLITS = ("test", "dev")  # the splits `paretoboard tasks import` stores, in download order


@dataclass(frozen=True, slots=True)
class SplitInfo:
    """One imported split as downloads offer it."""

    split: str
    size: int
    labelled: bool  # the download has a `label` column (dev, when imported with labels)


def imported_splits(session: Session, task: Task) -> list[SplitInfo]:
    """The splits the operator imported for `task` (a split with no row is left out).

    The test split is offered as inputs only: its gold lives in `task_gold`, which no
    download reads."""
    labelled_dev = session.scalar(
        select(TaskExample.idx)
        .where(
            TaskExample.task_id == task.id,
            TaskExample.split == "dev",
            TaskExample.label.is_not(None),
        )
        .limit(1)
    )
    out = [SplitInfo("test", task.test_size, False)]
    if task.dev_size:
        out.append(SplitInfo("dev", task.dev_size, labelled_dev is not None))
    return [s for s in out if s.size]


def load_split_rows(
    session: Session, task: Task, split: str
) -> list[tuple[tuple[str, ...], str | None]]:
    """A split's rows in index order: its texts and, outside the test split, its label (None
    where none was imported). The test split never carries a label: its gold is not here."""
    if split not in SPLITS:
        raise NotFoundError(f"Task {task.name} has no split {split!r} (splits: test, dev)")
    label = TaskExample.label if split != "test" else literal(None, String())
    rows = session.execute(
        select(TaskExample.text_a, TaskExample.text_b, label)
        .where(TaskExample.task_id == task.id, TaskExample.split == split)
        .order_by(TaskExample.idx)
    )
    return [((a,) if b is None else (a, b), lab) for a, b, lab in rows]


def find_task_folders(root: Path) -> list[Path]:
    """`root` itself when it is a task folder, else its sub-folders that hold a test.tsv."""
    if not root.is_dir():
        raise TaskDataError(
            f"Not a folder: {root}", [Problem("expected a folder of task folders", file=str(root))]
        )
    if (root / TEST_FILE).is_file():
        return [root]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / TEST_FILE).is_file())
    if not folders:
        raise TaskDataError(
            f"No task folders in {root}",
            [Problem(f"expected sub-folders each holding {TEST_FILE}", file=str(root))],
        )
    return folders


def read_task_folders(root: Path) -> list[TaskData]:
    """Read and check every task folder below `root`; all problems of all folders at once."""
    loaded: list[TaskData] = []
    problems: list[Problem] = []
    for folder in find_task_folders(root):
        try:
            loaded.append(read_task_folder(folder))
        except TaskDataError as exc:
            problems.extend(exc.problems or [Problem(exc.message, file=str(folder))])
    if problems:
        raise TaskDataError(f"Could not import tasks from {root}", problems)
    return loaded


def _examples(task_id: int, data: TaskData) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for split, examples in (("test", data.test), ("dev", data.dev)):
        labels = data.dev_labels if split == "dev" else None
        for i, ex in enumerate(examples):
            label: str | None = None
            if labels is not None:
                label = _label_text(data.manifest, labels[i])
            rows.append(
                {
                    "task_id": task_id,
                    "split": split,
                    "idx": i,
                    "text_a": ex.texts[0],
                    "text_b": ex.texts[1] if len(ex.texts) > 1 else None,
                    "label": label,
                }
            )
    return rows


def _label_text(manifest: TaskManifest, value: object) -> str:
    if manifest.labels:
        return manifest.labels[int(value)]  # type: ignore[call-overload]
    return repr(float(value))  # type: ignore[arg-type]


def _write_rows(session: Session, task: Task, data: TaskData) -> None:
    session.execute(delete(TaskExample).where(TaskExample.task_id == task.id))
    rows = _examples(task.id, data)
    if rows:
        session.execute(insert(TaskExample), rows)
    gold = session.get(TaskGold, task.id)
    if gold is None:
        gold = TaskGold(task_id=task.id)
        session.add(gold)
    gold.n = len(data.gold)
    gold.labels = pack_array(data.gold)
    gold.sha256 = data.gold_sha256


def _apply_metadata(task: Task, data: TaskData) -> None:
    m = data.manifest
    task.display_name = m.display_name
    task.family = m.family.value
    task.metric = m.metric.value
    task.label_kind = m.label_kind.value
    task.manifest = m.model_dump(mode="json")
    task.description = m.description
    task.position = _ELUE_ORDER.get(m.name, len(_ELUE_ORDER))
    task.test_size = len(data.test)
    task.dev_size = len(data.dev)
    task.test_sha256 = data.test_sha256
    task.gold_sha256 = data.gold_sha256
    task.dev_sha256 = data.dev_sha256


def import_task(
    session: Session, data: TaskData, *, replace: bool = False, rescore: Rescorer | None = None
) -> ImportOutcome:
    """Create or update one task; gold under existing results changes only with `replace`."""
    name = data.manifest.name
    task = session.scalar(select(Task).where(Task.name == name))
    if task is None:
        task = Task()
        _apply_metadata(task, data)
        task.name = name
        session.add(task)
        session.flush()
        _write_rows(session, task, data)
        session.flush()
        return ImportOutcome(name, ImportAction.CREATED, len(data.test))

    same_rows = task.test_sha256 == data.test_sha256 and task.gold_sha256 == data.gold_sha256
    same_meta = task.manifest == data.manifest.model_dump(mode="json")
    if same_rows and same_meta and task.dev_sha256 == data.dev_sha256:
        return ImportOutcome(name, ImportAction.UNCHANGED, task.test_size)
    if same_rows:
        _apply_metadata(task, data)
        _write_rows(session, task, data)
        session.flush()
        return ImportOutcome(name, ImportAction.UPDATED, task.test_size)

    n_results = session.scalar(select(func.count(Result.id)).where(Result.task_id == task.id)) or 0
    if n_results and not replace:
        raise ConflictError(
            f"Task {name}: its test inputs or gold labels differ from the stored ones and "
            f"{n_results} result(s) were scored against them; nothing was changed. Re-run with "
            f"--replace to replace the data and re-score those results."
        )
    _apply_metadata(task, data)
    _write_rows(session, task, data)
    session.flush()
    rescored = rescore(session, task) if (n_results and rescore is not None) else 0
    return ImportOutcome(name, ImportAction.REPLACED, len(data.test), rescored)
