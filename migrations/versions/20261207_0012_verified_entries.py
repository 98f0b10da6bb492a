"""verified entries: weights files, the verification of each point and of each submission

Revision ID: 0012
Revises: 0006
Create Date: 2026-12-07 16:30:00

`submission_files.role` gains "weights" (a string column, no constraint to change).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verify_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("verify_agreement", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("verification", sa.JSON(), nullable=True))
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verification", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("verification")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("verification")
        batch_op.drop_column("verify_agreement")
        batch_op.drop_column("verify_status")
