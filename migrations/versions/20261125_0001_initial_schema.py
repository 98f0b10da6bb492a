"""Initial schema: users, tokens, tasks, gold, submissions, files, results, per-sample costs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 08:05:19.810366
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("label_kind", sa.String(length=16), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("test_size", sa.Integer(), nullable=False),
        sa.Column("dev_size", sa.Integer(), nullable=False),
        sa.Column("test_sha256", sa.String(length=64), nullable=False),
        sa.Column("gold_sha256", sa.String(length=64), nullable=False),
        sa.Column("dev_sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "baseline_submission_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("name", name=op.f("uq_tasks_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum("user", "admin", name="userrole", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "submissions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("paper_url", sa.String(length=500), nullable=True),
        sa.Column("code_url", sa.String(length=500), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "measured", "self_reported", name="submissionkind", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column(
            "visibility",
            sa.Enum("public", "private", name="visibility", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("tokenizer_name", sa.String(length=100), nullable=True),
        sa.Column("params", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "validating",
                "scoring",
                "counting",
                "done",
                "failed",
                name="submissionstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("state_message", sa.Text(), nullable=False),
        sa.Column("failed_stage", sa.String(length=32), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("sandbox_log", sa.Text(), nullable=True),
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_submissions_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_submissions_owner_id_name")),
    )
    # tasks -> submissions closes a cycle (the baseline); added once both tables exist.
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_tasks_baseline_submission_id_submissions"),
            "submissions",
            ["baseline_submission_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_submissions_listing", ["visibility", "hidden", "kind"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_submissions_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            "ix_submissions_state_changed", ["state", "state_changed_at"], unique=False
        )

    op.create_table(
        "task_examples",
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("text_a", sa.Text(), nullable=False),
        sa.Column("text_b", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_examples_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "split", "idx", name=op.f("pk_task_examples")),
    )
    op.create_table(
        "task_gold",
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("labels", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_gold_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_gold")),
    )
    op.create_table(
        "submission_files",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "submission_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "role",
            sa.Enum(
                "model", "predictions", "tokenizer", name="filerole", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("point", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_files_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_submission_files_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_files")),
        sa.UniqueConstraint(
            "submission_id",
            "role",
            "original_name",
            name=op.f("uq_submission_files_submission_id_role_original_name"),
        ),
    )
    with op.batch_alter_table("submission_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_submission_files_sha256"), ["sha256"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_submission_files_submission_id"), ["submission_id"], unique=False
        )

    op.create_table(
        "results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "submission_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("point", sa.String(length=64), nullable=False),
        sa.Column("performance", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("baseline_delta", sa.Float(), nullable=True),
        sa.Column("gold_sha256", sa.String(length=64), nullable=True),
        sa.Column("cost_status", sa.String(length=16), nullable=False),
        sa.Column("flops_mean", sa.Float(), nullable=True),
        sa.Column("flops_median", sa.Float(), nullable=True),
        sa.Column("flops_p10", sa.Float(), nullable=True),
        sa.Column("flops_p90", sa.Float(), nullable=True),
        sa.Column("flops_max", sa.Float(), nullable=True),
        sa.Column("macs_mean", sa.Float(), nullable=True),
        sa.Column("params", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("counter_versions", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["submission_files.id"],
            name=op.f("fk_results_file_id_submission_files"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_results_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_results_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
        sa.UniqueConstraint(
            "submission_id", "task_id", "point", name=op.f("uq_results_submission_id_task_id_point")
        ),
    )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_results_submission_id"), ["submission_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_results_task_id"), ["task_id"], unique=False)

    op.create_table(
        "result_costs",
        sa.Column(
            "result_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("flops", sa.LargeBinary(), nullable=False),
        sa.Column("per_module", sa.JSON(), nullable=False),
        sa.Column("per_operator", sa.JSON(), nullable=False),
        sa.Column("uncounted", sa.JSON(), nullable=False),
        sa.Column("mismatches", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["results.id"],
            name=op.f("fk_result_costs_result_id_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("result_id", name=op.f("pk_result_costs")),
    )


def downgrade() -> None:
    op.drop_table("result_costs")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_results_task_id"))
        batch_op.drop_index(batch_op.f("ix_results_submission_id"))

    op.drop_table("results")
    with op.batch_alter_table("submission_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_files_submission_id"))
        batch_op.drop_index(batch_op.f("ix_submission_files_sha256"))

    op.drop_table("submission_files")
    op.drop_table("task_gold")
    op.drop_table("task_examples")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_tasks_baseline_submission_id_submissions"), type_="foreignkey"
        )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_state_changed")
        batch_op.drop_index(batch_op.f("ix_submissions_owner_id"))
        batch_op.drop_index("ix_submissions_listing")

    op.drop_table("submissions")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("tasks")
