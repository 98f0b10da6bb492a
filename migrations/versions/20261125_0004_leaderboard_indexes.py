"""leaderboard indexes: updated_at of results and submissions (the cache fingerprint)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:30:00.000000

The leaderboard cache reads count, max and sum of `updated_at` over results and submissions on
every request (core/leaderboard/cache.py); these indexes let PostgreSQL answer that with an
index-only scan instead of reading the wide rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_results_updated_at"), ["updated_at"], unique=False)
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_submissions_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submissions_updated_at"))
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_results_updated_at"))
