"""fair cost queue: each submission's place in the cost queue, and its cost job's duration

Revision ID: 0010
Revises: 0012
Create Date: 2026-12-08 09:00:00.000000

`cost_queue` ("waiting" or "sent") with the job id it refers to and since when: each user has
at most `limits.cost_jobs_per_user` cost jobs sent, the rest wait (core/submissions/cost_queue.py).
`cost_seconds`: how long the last cost job ran, for the wait estimate on submission pages.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "cost_queue",
                sa.Enum("waiting", "sent", name="costqueuestate", native_enum=False, length=32),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("cost_queue_job", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("cost_queued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cost_seconds", sa.Double(), nullable=True))
        batch_op.create_index(
            "ix_submissions_cost_queue", ["cost_queue", "cost_queued_at"], unique=False
        )
        batch_op.create_index("ix_submissions_finished", ["finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_finished")
        batch_op.drop_index("ix_submissions_cost_queue")
        batch_op.drop_column("cost_seconds")
        batch_op.drop_column("cost_queued_at")
        batch_op.drop_column("cost_queue_job")
        batch_op.drop_column("cost_queue")
