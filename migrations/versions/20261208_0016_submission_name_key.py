"""submission names unique per owner up to case and spacing; operator names reserved

Revision ID: 0016
Revises: 0007
Create Date: 2026-12-08 19:30:00.000000

`submissions.name_key` (the NFKC-normalised name, case-folded, white space collapsed: the rule of
`core.text.name_key`, copied here so this migration never changes with the code) is unique per
owner, and among operator entries (no owner). A name is thereby unique per owner and task, as
ELUE required.

Existing rows that would break the new rule are renamed, never deleted, and nothing else about
them changes: of each group of same-key names of one owner the oldest (lowest id) keeps its name
and every other gets " #<id>" appended; so does a user entry whose name is an operator entry's,
or one of the reserved names (`core.submissions.names.RESERVED_NAMES`). The downgrade drops the
key and keeps the names as they are.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RESERVED = (
    "ElasticBERT-base (published)",
    "baseline",
    "ELUE baseline",
    "paretoboard",
)


def _key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).strip().casefold().split())


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("name_key", sa.String(length=600), nullable=True))

    conn = op.get_bind()
    subs = sa.table(
        "submissions",
        sa.column("id", sa.Integer),
        sa.column("owner_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("name_key", sa.String),
    )
    rows = conn.execute(sa.select(subs.c.id, subs.c.owner_id, subs.c.name).order_by(subs.c.id))
    reserved = {_key(n) for n in _RESERVED}
    operator_keys = set()
    taken: set[tuple[int | None, str]] = set()
    updates: list[dict[str, object]] = []
    pending = list(rows)
    for _sid, owner, name in pending:  # operator entries first: their names win
        if owner is None:
            operator_keys.add(_key(name))
    for sid, owner, name in pending:
        key = _key(name)
        clash = (owner, key) in taken or (
            owner is not None and (key in reserved or key in operator_keys)
        )
        if clash:
            name = f"{name[: 200 - len(f' #{sid}')]} #{sid}"
            key = _key(name)
        taken.add((owner, key))
        updates.append({"sid": sid, "name": name, "key": key})
    for chunk in range(0, len(updates), 1000):
        conn.execute(
            subs.update()
            .where(subs.c.id == sa.bindparam("sid"))
            .values(name=sa.bindparam("name"), name_key=sa.bindparam("key")),
            updates[chunk : chunk + 1000],
        )

    with op.batch_alter_table("submissions") as batch:
        batch.alter_column("name_key", existing_type=sa.String(length=600), nullable=False)
        batch.create_unique_constraint(
            op.f("uq_submissions_owner_id_name_key"), ["owner_id", "name_key"]
        )
    op.create_index(
        "uq_submissions_operator_name_key",
        "submissions",
        ["name_key"],
        unique=True,
        sqlite_where=sa.text("owner_id IS NULL"),
        postgresql_where=sa.text("owner_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_submissions_operator_name_key", table_name="submissions")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_constraint(op.f("uq_submissions_owner_id_name_key"), type_="unique")
        batch.drop_column("name_key")
