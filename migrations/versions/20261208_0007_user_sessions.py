"""server-side browser sessions; login attempts from known devices

Revision ID: 0007
Revises: 0012
Create Date: 2026-12-08 09:00:00.000000

`user_sessions`: one row per logged-in browser (the cookie holds a random key, the row its
sha256), so logging out, "log out everywhere" and a password change end sessions for real.
`login_attempts.device`: failures from a browser holding a signed known-device cookie are
counted apart (core/users/login_limits.py), so an attacker's failures never lock the owner out.
Existing signed cookies (which held the user id) no longer log anyone in: users log in again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_user_sessions_key_hash")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    op.create_index(op.f("ix_user_sessions_expires_at"), "user_sessions", ["expires_at"])
    with op.batch_alter_table("login_attempts") as batch:
        batch.add_column(sa.Column("device", sa.String(length=64), nullable=True))
    op.create_index("ix_login_attempts_email_key_device", "login_attempts", ["email_key", "device"])


def downgrade() -> None:
    op.drop_index("ix_login_attempts_email_key_device", table_name="login_attempts")
    with op.batch_alter_table("login_attempts") as batch:
        batch.drop_column("device")
    op.drop_index(op.f("ix_user_sessions_expires_at"), table_name="user_sessions")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
