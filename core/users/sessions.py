"""Browser sessions kept on the server, and password changes (which end the other sessions).

The session cookie carries a random key; only its sha256 is stored, so a copy of the database
cannot be used to log in. A session ends when its row is deleted (log out, log out everywhere,
password change, password reset) or when it has been idle for `IDLE` or open for `LIFETIME`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.errors import InvalidInputError, Problem
from core.models import User, UserSession
from core.users import service as users

IDLE = dt.timedelta(days=14)  # a session unused this long ends
LIFETIME = dt.timedelta(days=90)  # and any session ends this long after its login
TOUCH_EVERY = dt.timedelta(minutes=5)  # last-seen stamps are written at most this often
MAX_USER_AGENT = 300


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def start_session(
    session: Session, *, user: User, ip: str, user_agent: str, now: dt.datetime | None = None
) -> tuple[UserSession, str]:
    """A new session for `user`; returns the row and the key for the cookie (never stored)."""
    now = now or utcnow()
    # The user's ended sessions go now: the table holds only live ones (and a few idle ones).
    session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at < now)
    )
    key = secrets.token_urlsafe(32)
    row = UserSession(
        user_id=user.id,
        key_hash=_key_hash(key),
        created_at=now,
        last_seen_at=now,
        expires_at=min(now + IDLE, now + LIFETIME),
        ip=ip[:64],
        user_agent="".join(c for c in user_agent if c.isprintable())[:MAX_USER_AGENT],
    )
    session.add(row)
    session.flush()
    return row, key


def session_for_key(
    session: Session, key: str, *, now: dt.datetime | None = None
) -> UserSession | None:
    """The live session holding this cookie key (its user active), else None.

    A used session's idle expiry moves forward; the stamp is written at most every
    `TOUCH_EVERY`, so reading pages does not turn into a write per request.
    """
    if not key or len(key) > 200:
        return None
    now = now or utcnow()
    row = session.scalar(select(UserSession).where(UserSession.key_hash == _key_hash(key)))
    if row is None or _aware(row.expires_at) <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    if now - _aware(row.last_seen_at) >= TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = min(now + IDLE, _aware(row.created_at) + LIFETIME)
    return row


def end_session(session: Session, key: str) -> None:
    """Log out the session holding this key (nothing if there is none)."""
    session.execute(delete(UserSession).where(UserSession.key_hash == _key_hash(key)))


def end_sessions(session: Session, *, user: User, keep: UserSession | None = None) -> int:
    """End every session of `user` (but `keep`); returns how many ended."""
    query = delete(UserSession).where(UserSession.user_id == user.id)
    if keep is not None:
        query = query.where(UserSession.id != keep.id)
    ended = session.execute(query).rowcount  # type: ignore[attr-defined]
    return int(ended or 0)


def list_sessions(
    session: Session, *, user: User, now: dt.datetime | None = None
) -> list[UserSession]:
    """The user's live sessions, most recently used first."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.expires_at > now)
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
        )
    )


def new_password_problem(password: str) -> str | None:
    """Why `password` cannot be a password, or None."""
    if not users.MIN_PASSWORD <= len(password) <= users.MAX_PASSWORD:
        return f"password must be {users.MIN_PASSWORD} to {users.MAX_PASSWORD} characters"
    return None


def set_password(
    session: Session, *, user: User, new_password: str, keep: UserSession | None = None
) -> int:
    """Set a new password and end every other session of the user; returns how many ended.

    The caller has checked the current password (or a reset link); API tokens stay valid
    (they are listed on the account page and revoked there).
    """
    if (problem := new_password_problem(new_password)) is not None:
        raise InvalidInputError("Invalid new password", [Problem(problem, column="new_password")])
    user.password_hash = users.hash_password(new_password)
    return end_sessions(session, user=user, keep=keep)
