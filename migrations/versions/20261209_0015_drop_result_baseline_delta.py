"""drop the unused results.baseline_delta column

Revision ID: 0015
Revises: 0016
Create Date: 2026-12-09 22:00:00.000000

Nothing wrote the column: every page, the API and the export compute a point's delta at read
time from the current baseline curve (`core.ranking.score.baseline_delta`). The downgrade adds
it back empty, as it always was.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("results") as batch:  # SQLite: a copy of the table, batch mode
        batch.drop_column("baseline_delta")


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("baseline_delta", sa.Float(), nullable=True))
