"""Tasks, their public inputs, and their gold labels (kept in a table of their own)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(32))
    label_kind: Mapped[str] = mapped_column(String(16))
    # The full TaskManifest as imported (labels, text columns, ...).
    manifest: Mapped[dict[str, Any]]
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)  # display order
    test_size: Mapped[int] = mapped_column(Integer)
    dev_size: Mapped[int] = mapped_column(Integer, default=0)
    test_sha256: Mapped[str] = mapped_column(String(64))
    gold_sha256: Mapped[str] = mapped_column(String(64))
    dev_sha256: Mapped[str | None] = mapped_column(String(64))
    # The submission whose curve is this task's baseline (ELUE: ElasticBERT-base).
    baseline_submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TaskExample(Base):
    """One public input row (test) or labelled dev row; dev labels are public, test gold is not."""

    __tablename__ = "task_examples"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(8), primary_key=True)  # "test" | "dev"
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    text_a: Mapped[str] = mapped_column(Text)
    text_b: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(32))  # dev split only


class TaskGold(Base):
    """Hidden gold labels of a task's test split as one compressed array; never served."""

    __tablename__ = "task_gold"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    n: Mapped[int] = mapped_column(Integer)
    labels: Mapped[bytes] = mapped_column(LargeBinary)  # core.arrays.pack_array
    sha256: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
