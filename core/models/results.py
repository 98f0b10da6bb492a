"""Results: one per prediction file (one point on a curve), and its per-sample costs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class Result(Base):
    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("submission_id", "task_id", "point"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    # The prediction file this point was scored from (None for self-reported points).
    file_id: Mapped[int | None] = mapped_column(
        ForeignKey("submission_files.id", ondelete="SET NULL")
    )
    point: Mapped[str] = mapped_column(String(64), default="")

    # Performance: the task's headline metric x100, and its components x100.
    performance: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    gold_sha256: Mapped[str | None] = mapped_column(String(64))  # gold it was scored against
    # 95% bootstrap interval of `performance` (core/uncertainty.py); None: not computed (yet),
    # e.g. self-reported points or rows scored before migration 0013 (`paretoboard recount
    # --uncertainty` fills them).
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)

    # Cost summary (FLOPs = 2 x MACs, per sample).
    cost_status: Mapped[str] = mapped_column(String(16), default="pending")
    flops_mean: Mapped[float | None] = mapped_column(Float)
    flops_median: Mapped[float | None] = mapped_column(Float)
    flops_p10: Mapped[float | None] = mapped_column(Float)
    flops_p90: Mapped[float | None] = mapped_column(Float)
    flops_max: Mapped[float | None] = mapped_column(Float)
    macs_mean: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None]
    # FLOPs in the ELUE convention (2 x MACs of products + normalisations), beside the
    # ranking FLOPs above (everything the model computes); see docs/cost.md.
    flops_elue_mean: Mapped[float | None] = mapped_column(Float)
    # A count with operators no rule covers is a lower bound: flagged, kept off the fronts
    # and out of the ELUE score.
    cost_incomplete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # fvcore (the second counter) and the rules differ by more than 1% (the larger is kept).
    cost_disagrees: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    counter_version: Mapped[str | None] = mapped_column(String(20))
    rule_hash: Mapped[str | None] = mapped_column(String(64))
    counter_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    device: Mapped[str | None] = mapped_column(String(64))
    # Verified entries (worker/verification.py): "verified", "not_reproduced", "not_verified"
    # (the run could not be made), None (no weights). `verification` holds n, agree, the first
    # differing sample indexes, the threshold, and the batch-1 latency measurement.
    verify_status: Mapped[str | None] = mapped_column(String(20))
    verify_agreement: Mapped[float | None] = mapped_column(Float)
    verification: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)

    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Indexed: the leaderboard cache fingerprint reads count/max/sum of it (migration 0004).
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)


class ResultCost(Base):
    """Per-sample FLOPs as one compressed array, plus the breakdowns (loaded only on demand)."""

    __tablename__ = "result_costs"

    result_id: Mapped[int] = mapped_column(
        ForeignKey("results.id", ondelete="CASCADE"), primary_key=True
    )
    n: Mapped[int] = mapped_column(Integer)
    flops: Mapped[bytes] = mapped_column(LargeBinary)  # core.arrays.pack_array(float64)
    flops_elue: Mapped[bytes | None] = mapped_column(LargeBinary)  # the ELUE convention
    per_module: Mapped[dict[str, Any]] = mapped_column(default=dict)
    per_operator: Mapped[dict[str, Any]] = mapped_column(default=dict)
    uncounted: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mismatches: Mapped[list[Any]] = mapped_column(default=list)  # declared vs tokenized lengths
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # timings, traces, cross-check


class TaskUncertainty(Base):
    """Per submission and task, computed when it is scored: the joint bootstrap of its points'
    mean performance (the task ELUE score's interval is this one shifted by the fixed baseline
    terms) and, for early-exit points, per exit layer counts and metric (aggregates only)."""

    __tablename__ = "task_uncertainty"

    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    result_ids: Mapped[list[Any]] = mapped_column(default=list)  # the points resampled jointly
    mean_performance: Mapped[float] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)  # of the mean performance
    ci_high: Mapped[float | None] = mapped_column(Float)
    replicates: Mapped[bytes | None] = mapped_column(LargeBinary)  # pack_array(float32)
    method: Mapped[str] = mapped_column(String(32))  # e.g. "percentile"
    n_resamples: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int]
    # point name -> {"measure", "layers", "counts", "values"} (core.uncertainty.exit_diagnostics)
    diagnostics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SubmissionUncertainty(Base):
    """Per submission, kept in step with its `task_uncertainty` rows: the percentile interval
    of the mean over its tasks of their joint bootstrap replicates (tasks resampled
    independently), without the baseline terms. The overall ELUE score's interval is this one
    shifted by the mean of the tasks' fixed baseline terms, when the board's covered tasks and
    points are exactly `tasks`; so the overall board never reads the replicates."""

    __tablename__ = "submission_uncertainty"

    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    tasks: Mapped[dict[str, Any]] = mapped_column(default=dict)  # task id -> result ids
    ci_low: Mapped[float] = mapped_column(Float)
    ci_high: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
