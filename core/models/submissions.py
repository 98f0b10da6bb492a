"""Submissions and the files they were made of (content-addressed by sha256)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, validates

from core.db.base import Base, StrEnumString, utcnow
from core.submissions.states import Fault, SubmissionState
from core.text import name_key


def _str_enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class SubmissionKind(enum.StrEnum):
    MEASURED = "measured"  # predictions + model file; costs counted by the platform
    SELF_REPORTED = "self_reported"  # points typed in from a paper; nothing measured


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class CostQueueState(enum.StrEnum):
    """Where a counting submission's cost job is (core/submissions/cost_queue.py)."""

    WAITING = "waiting"  # held back: its owner has their share of the cost queue already
    SENT = "sent"  # in the cost queue, or running on a cost worker


class FileRole(enum.StrEnum):
    MODEL = "model"
    PREDICTIONS = "predictions"
    TOKENIZER = "tokenizer"
    WEIGHTS = "weights"  # safetensors; task_id None: for every task (verified entries)
    # (its tensor listing: `submission_weights`)


def _name_key_default(context: Any) -> str:
    return name_key(str(context.get_current_parameters()["name"]))


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("owner_id", "name"),
        # Names are unique per owner up to case and spacing (so per owner and task, as ELUE
        # required), and among operator entries (no owner), whose names users cannot take
        # (core.submissions.names); migration 0016.
        UniqueConstraint("owner_id", "name_key"),
        Index(
            "uq_submissions_operator_name_key",
            "name_key",
            unique=True,
            sqlite_where=text("owner_id IS NULL"),
            postgresql_where=text("owner_id IS NULL"),
        ),
        Index("ix_submissions_state_changed", "state", "state_changed_at"),
        Index("ix_submissions_listing", "visibility", "hidden", "kind"),
        Index("ix_submissions_cost_queue", "cost_queue", "cost_queued_at"),
        Index("ix_submissions_finished", "finished_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for operator-entered entries (e.g. the published baseline).
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # core.text.name_key(name): set with the name (ORM objects), or from it (bulk inserts)
    name_key: Mapped[str] = mapped_column(String(600), default=_name_key_default)
    description: Mapped[str] = mapped_column(Text, default="")
    paper_url: Mapped[str | None] = mapped_column(String(500))
    code_url: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[SubmissionKind] = mapped_column(
        _str_enum(SubmissionKind), default=SubmissionKind.MEASURED
    )
    visibility: Mapped[Visibility] = mapped_column(_str_enum(Visibility), default=Visibility.PUBLIC)
    hidden: Mapped[bool] = mapped_column(default=False)  # hidden by an admin
    # Every point verified: the platform ran the counted graph with the submitted weights and
    # got the submitted predictions (worker/verification.py); set by the cost stage only.
    verified: Mapped[bool] = mapped_column(default=False)
    # The last verification run: {"status", "hardware", "peak_memory_bytes", "seconds",
    # "problems" (weights mismatches), "error", "weights": {task: sha256}}; None: no weights.
    verification: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    tokenizer_name: Mapped[str | None] = mapped_column(String(100))
    params: Mapped[int | None]  # parameter count of entire_model (or as reported)

    state: Mapped[SubmissionState] = mapped_column(
        _str_enum(SubmissionState), default=SubmissionState.QUEUED
    )
    state_message: Mapped[str] = mapped_column(Text, default="")
    failed_stage: Mapped[str | None] = mapped_column(String(32))  # a `Stage`, cut to 32 chars
    # Whose fault a failure was (their files or code, or infrastructure); only user faults count
    # against the daily quota.
    fault: Mapped[Fault | None] = mapped_column(StrEnumString(Fault, 16))
    error_detail: Mapped[str | None] = mapped_column(Text)  # owner only (sandbox traceback)
    sandbox_log: Mapped[str | None] = mapped_column(Text)  # owner only
    # [{"state": ..., "at": iso, "message": ...}], appended on every transition.
    timeline: Mapped[list[Any]] = mapped_column(default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(64))
    # The fair cost queue: the state of the cost job of `cost_queue_job` (current only while it
    # equals `job_id`), since when, and how long the last cost job ran on its worker.
    cost_queue: Mapped[CostQueueState | None] = mapped_column(_str_enum(CostQueueState))
    cost_queue_job: Mapped[str | None] = mapped_column(String(64))
    cost_queued_at: Mapped[dt.datetime | None]
    cost_seconds: Mapped[float | None]

    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Indexed: the leaderboard cache fingerprint reads count/max/sum of it (migration 0004).
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    state_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]

    @validates("name")
    def _set_name_key(self, _key: str, value: str) -> str:
        self.name_key = name_key(value)
        return value


class SubmissionFile(Base):
    """One uploaded file; the bytes live in the blob store under `sha256`."""

    __tablename__ = "submission_files"
    __table_args__ = (UniqueConstraint("submission_id", "role", "original_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[FileRole] = mapped_column(_str_enum(FileRole))
    original_name: Mapped[str] = mapped_column(String(255))  # shown, never used as a path
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int]
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    point: Mapped[str | None] = mapped_column(String(64))  # from <TASK>.<point>.tsv
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SubmissionWeights(Base):
    """What one weights file holds (a WEIGHTS row of `submission_files`: name, blob, task), for
    the runner to match against the graph's parameters and buffers."""

    __tablename__ = "submission_weights"

    file_id: Mapped[int] = mapped_column(
        ForeignKey("submission_files.id", ondelete="CASCADE"), primary_key=True
    )
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(String(64))  # the blob (as the file row's)
    size: Mapped[int]
    tensor_count: Mapped[int]
    element_count: Mapped[int]  # elements over every tensor (parameters and buffers)
    # {name: {"dtype": "float32", "shape": [768, 768]}} (core.submissions.weights)
    manifest: Mapped[dict[str, Any]]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)  # __metadata__
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
