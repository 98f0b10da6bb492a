"""bootstrap intervals of performances and task scores; exit-layer diagnostics

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-09 09:00:00.000000

`results.ci_low` / `ci_high`: the 95% bootstrap interval of each point's performance.
`task_uncertainty`: per submission and task, the joint bootstrap of its points' mean performance
(interval and distribution, for the task and overall ELUE score intervals) and early-exit
diagnostics. `submission_uncertainty`: per submission, the interval of the mean over its tasks
of those distributions (the overall score's interval without reading them). Existing rows stay without intervals ("—") until `paretoboard recount
--uncertainty` computes them from the stored prediction files.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ci_low", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ci_high", sa.Float(), nullable=True))
    op.create_table(
        "task_uncertainty",
        sa.Column("submission_id", _ID, nullable=False),
        sa.Column("task_id", _ID, nullable=False),
        sa.Column("result_ids", sa.JSON(), nullable=False),
        sa.Column("mean_performance", sa.Float(), nullable=False),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("replicates", sa.LargeBinary(), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("n_resamples", sa.Integer(), nullable=False),
        sa.Column("seed", _ID, nullable=False),
        sa.Column("diagnostics", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_task_uncertainty_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_uncertainty_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("submission_id", "task_id", name=op.f("pk_task_uncertainty")),
    )
    op.create_table(
        "submission_uncertainty",
        sa.Column("submission_id", _ID, nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("ci_low", sa.Float(), nullable=False),
        sa.Column("ci_high", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_uncertainty_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("submission_id", name=op.f("pk_submission_uncertainty")),
    )


def downgrade() -> None:
    op.drop_table("submission_uncertainty")
    op.drop_table("task_uncertainty")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("ci_high")
        batch_op.drop_column("ci_low")
