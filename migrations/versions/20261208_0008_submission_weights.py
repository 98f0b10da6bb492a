"""submission weights: the tensors each weights file holds

Revision ID: 0008
Revises: 0012 (the current head of main; the id 0008 is the one reserved for it)
Create Date: 2026-12-08 09:00:00.000000

One row per weights file (a `submission_files` row of role `weights`): its hash and size, and the
manifest (tensor name -> dtype and shape) that the runner matches against the exported graph's
parameters and buffers, listed when the file was checked at upload.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "submission_weights",
        sa.Column("file_id", _ID, nullable=False),
        sa.Column("submission_id", _ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", _ID, nullable=False),
        sa.Column("tensor_count", _ID, nullable=False),
        sa.Column("element_count", _ID, nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["submission_files.id"],
            name=op.f("fk_submission_weights_file_id_submission_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_weights_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_submission_weights")),
    )
    with op.batch_alter_table("submission_weights", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submission_weights_submission_id"), ["submission_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("submission_weights")
