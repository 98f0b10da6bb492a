"""trusted cost: ELUE-convention FLOPs, incomplete counts, counter version and rule hash

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flops_elue_mean", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("cost_incomplete", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("cost_disagrees", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("counter_version", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("rule_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("result_costs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flops_elue", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("result_costs", schema=None) as batch_op:
        batch_op.drop_column("flops_elue")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("rule_hash")
        batch_op.drop_column("counter_version")
        batch_op.drop_column("cost_disagrees")
        batch_op.drop_column("cost_incomplete")
        batch_op.drop_column("flops_elue_mean")
