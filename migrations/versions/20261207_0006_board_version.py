"""board version: one row bumped by every commit that can change a public leaderboard

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 09:00:00.000000

Replaces the leaderboard cache's fingerprint (count, max and sum of `updated_at` over results,
submissions and tasks, read on every request) with a single row that the writing transaction
bumps (core/leaderboard/cache.py): reading it is a primary-key lookup at any table size.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "board_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_board_version")),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0, "nonce": 0}])


def downgrade() -> None:
    op.drop_table("board_version")
