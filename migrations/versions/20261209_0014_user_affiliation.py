"""user affiliation: a profile field shown next to the owner on the boards

Revision ID: 0014
Revises: 0007
Create Date: 2026-12-09 09:00:00.000000

`users.affiliation` (optional, up to 200 characters): edited on the account page, shown with
the owner's name and the submission date on the overall and task boards and in their CSV.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("affiliation", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("affiliation")
