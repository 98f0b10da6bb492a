"""board changes: which submissions each board-version bump touched

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-10 22:00:00.000000

Every bump of `board_version` writes, in the same transaction, one row per listed-or-formerly-
listed submission it changed (or one row with no submission: "anything may have changed", for
a task, a user or a bulk statement). A process that holds the boards' source rows of an older
version reads only these rows since then and reloads only those submissions
(`core.leaderboard.source`); rows older than a window are pruned by the bump itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "board_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_board_changes")),
    )
    op.create_index(op.f("ix_board_changes_version"), "board_changes", ["version"])


def downgrade() -> None:
    op.drop_index(op.f("ix_board_changes_version"), table_name="board_changes")
    op.drop_table("board_changes")
