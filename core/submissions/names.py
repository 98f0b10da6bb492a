"""Submission names: unique per owner up to case and spacing (so per owner and task, as ELUE
required), and the names of operator entries (the published baseline, any entry without an
owner) reserved for them.

The database holds the same rule (`submissions.name_key`, migration 0016): a concurrent
creation that passes these checks still cannot store a duplicate.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Submission
from core.text import name_key

# Names no user entry may take, besides those of the operator entries in the database: the
# baseline's, and the generic words readers take for the operator's reference.
RESERVED_NAMES: frozenset[str] = frozenset(
    name_key(n)
    for n in (
        "ElasticBERT-base (published)",
        "baseline",
        "ELUE baseline",
        "paretoboard",
    )
)


def name_conflict(
    session: Session, *, owner_id: int | None, name: str, exclude: int | None = None
) -> str | None:
    """Why `owner_id` (None: the operator) cannot give a submission `name`, or None."""
    key = name_key(name)
    taken = select(Submission.id, Submission.name).where(Submission.name_key == key)
    if exclude is not None:
        taken = taken.where(Submission.id != exclude)
    own = session.execute(
        taken.where(
            Submission.owner_id.is_(None) if owner_id is None else Submission.owner_id == owner_id
        ).limit(1)
    ).first()
    if own is not None:
        whose = "an operator entry" if owner_id is None else "you already have a submission"
        return (
            f"{whose} named {own[1]!r}: names are unique per owner (and so per task), "
            "ignoring case and spacing"
        )
    if owner_id is None:
        return None
    if key in RESERVED_NAMES:
        return f"{name!r} is reserved for the platform's own entries (the baseline)"
    operator = session.execute(taken.where(Submission.owner_id.is_(None)).limit(1)).first()
    if operator is not None:
        return f"{name!r} is the name of an operator entry ({operator[1]!r}); choose another"
    return None
