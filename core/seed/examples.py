"""Example submissions, evaluated like any other: owned by a seed account that cannot log in.

One example is seeded: examples/dan.py trained on each task's dev split (`core.seed.dan`), its
predictions on the test inputs submitted as a measured submission through
`core.submissions.service.create_submission`, then queued to the worker (or evaluated in
process) by the caller. Nothing here reads test gold: dev rows come from `TaskExample` rows of
split "dev", test inputs from `load_test_texts`.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InvalidInputError
from core.models import FileRole, Submission, SubmissionFile, Task, TaskExample, User, UserRole
from core.settings import REPO_ROOT, Settings
from core.storage import blob_store
from core.submissions.service import (
    SubmissionDraft,
    UploadedFile,
    create_submission,
    weights_listing,
)
from core.submissions.weights import check_weights_file
from core.tasks.manifest import TaskManifest
from core.tasks.service import list_tasks, load_test_texts, manifest_of
from core.tokenizers import registered_tokenizers

SEED_EMAIL = "examples@paretoboard.invalid"
SEED_DISPLAY_NAME = "paretoboard examples"
# Not an argon2 hash: `authenticate` can never accept a password for this account; the account
# is also inactive, so no session or token of it is honoured either.
UNUSABLE_PASSWORD = "!seed-account: no password login"

DAN_NAME = "Deep averaging network (trained on dev)"
DAN_FILE = REPO_ROOT / "examples" / "dan.py"


def ensure_seed_user(session: Session) -> User:
    """The account that owns the seeded examples (created once; flushes)."""
    user = session.scalar(select(User).where(User.email == SEED_EMAIL))
    if user is None:
        user = User(
            email=SEED_EMAIL,
            display_name=SEED_DISPLAY_NAME,
            password_hash=UNUSABLE_PASSWORD,
            role=UserRole.USER,
            is_active=False,
        )
        session.add(user)
        session.flush()
    return user


def find_example(session: Session, owner_id: int, name: str) -> Submission | None:
    return session.scalar(
        select(Submission).where(Submission.owner_id == owner_id, Submission.name == name)
    )


@dataclass(frozen=True, slots=True)
class TaskData:
    """What the trainer may see of a task: its manifest, dev rows and test INPUTS (no gold)."""

    name: str
    manifest: TaskManifest
    dev_texts: list[tuple[str, ...]]
    dev_labels: list[str]
    test_inputs: list[tuple[str, ...]]


def load_dev_rows(session: Session, task: Task) -> tuple[list[tuple[str, ...]], list[str]]:
    """The task's dev split (texts, public labels) in index order; never the test split."""
    rows = session.execute(
        select(TaskExample.text_a, TaskExample.text_b, TaskExample.label)
        .where(TaskExample.task_id == task.id, TaskExample.split == "dev")
        .order_by(TaskExample.idx)
    ).all()
    texts: list[tuple[str, ...]] = [(a,) if b is None else (a, b) for a, b, _ in rows]
    labels = [label for _, _, label in rows if label is not None]
    if len(labels) != len(texts):
        return [], []
    return texts, labels


def load_task_data(session: Session) -> list[TaskData]:
    return [
        TaskData(
            name=task.name,
            manifest=manifest_of(task),
            dev_texts=texts,
            dev_labels=labels,
            test_inputs=load_test_texts(session, task),
        )
        for task in list_tasks(session)
        for texts, labels in [load_dev_rows(session, task)]
    ]


@dataclass
class ExampleOutcome:
    name: str
    submission_id: int | None = None
    job_id: str | None = None  # set when this run created (and should send) the submission
    existing_state: str | None = None  # when it already existed
    tasks: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why
    notes: list[str] = field(default_factory=list)


def write_predictions(folder: Path, task: str, predictions: Sequence[str]) -> Path:
    path = folder / f"{task}.tsv"
    lines = ["index\tprediction", *(f"{i}\t{p}" for i, p in enumerate(predictions))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def submit_example(
    session: Session,
    settings: Settings,
    *,
    owner_id: int,
    name: str,
    description: str,
    model: Path,
    predictions: dict[str, Path],
) -> tuple[Submission, str]:
    """Create the queued submission with a job id (flushed; commit, then send the job)."""
    sub = create_submission(
        session,
        blob_store(settings),
        owner_id=owner_id,
        draft=SubmissionDraft(name=name, description=description),
        model=UploadedFile(model.name, model),
        predictions=[UploadedFile(path.name, path) for path in predictions.values()],
        limits=settings.limits,
        tokenizers=registered_tokenizers(settings.storage.tokenizers_dir),
    )
    sub.job_id = uuid.uuid4().hex  # as worker.pipeline.new_job_id
    session.flush()
    return sub, sub.job_id


def attach_weights(
    session: Session, settings: Settings, sub: Submission, weights: dict[str, dict[str, Any]]
) -> None:
    """Store each task's trained weights (safetensors) as the submission's weights files."""
    from safetensors.torch import save

    store = blob_store(settings)
    tasks = {t.name: t.id for t in session.scalars(select(Task))}
    for task, state in sorted(weights.items()):
        sha, size = store.put_stream(io.BytesIO(save(state)))
        row = SubmissionFile(
            submission_id=sub.id,
            role=FileRole.WEIGHTS,
            original_name=f"{task}.safetensors",
            sha256=sha,
            size=size,
            task_id=tasks[task],
        )
        session.add(row)
        session.flush()
        # Listed as an upload's weights are (the page shows the tensor count).
        listed = check_weights_file(
            store.local_path(sha),
            file=row.original_name,
            max_bytes=settings.limits.max_weights_bytes,
            max_tensors=settings.limits.max_weights_tensors,
        )
        if isinstance(listed, list):
            raise InvalidInputError(f"the seeded {task} weights are not valid", listed)
        session.add(weights_listing(row, listed))
    session.flush()


def dan_description(lines: Sequence[str]) -> str:
    return "\n".join(
        [
            "Seeded example: the deep averaging network of examples/dan.py (the model file "
            "submitted here), trained at seed time on each task's DEV split only (seed 0, Adam, "
            "at most 8 epochs, the epoch picked on 10% of the dev rows held out), then run on "
            "the test inputs. Inputs: bert-base-uncased token ids, sentence pairs joined as "
            "[CLS] a [SEP] b [SEP]. STS-B: the two logits give a score in the dev labels' range "
            "(lo + (hi - lo) x softmax[1], with [lo, hi] = [0, 5]; the file's forward returns it "
            "as its second output). A classification task needs as many labels as the file's "
            "classifier has outputs (2). Each task's trained weights are submitted "
            "(<task>.safetensors): the platform runs the counted graph with them on every test "
            "input and checks that it gives these predictions (verified entry).",
            "",
            *lines,
        ]
    )
