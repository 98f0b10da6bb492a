"""A rate limit on password checks, per normalised email and per client IP, kept in the database.

Every attempt is written (and committed) before the password is checked and counted after, so
concurrent requests in any number of server processes cannot slip past the limit together.
A failed attempt stays until it leaves the window; a successful one deletes itself and the
earlier failures for the same email from the same IP. Failures for that email from other IPs
stay, so logging in to your own account never resets the counter an attacker is running.
Attempts refused by the limit are not counted: a lock-out ends when the window has passed,
however often the attacker keeps trying.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Engine, delete, or_, select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.db.session import transaction
from core.models import LoginAttempt
from core.users.errors import RateLimitedError
from core.users.service import normalise_email


@dataclass(frozen=True, slots=True)
class LoginLimits:
    window: dt.timedelta = dt.timedelta(minutes=15)
    per_email: int = 10  # failed attempts on one email, from anywhere
    per_ip: int = 50  # failed attempts from one IP (several people may share one, e.g. a lab)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A recorded attempt still in progress."""

    id: int
    email_key: str | None
    ip: str


def email_key(email: str) -> str:
    """What the limiter stores instead of the email: its sha256 after normalising."""
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass
class LoginLimiter:
    """Counts attempts in its own short transactions, apart from the request's transaction.

    Failed attempts must outlive the request that failed (its transaction rolls back) and be
    seen by every process. Call it before the request's own session writes anything: SQLite
    has one writer at a time, and a second connection would wait for the first.
    """

    engine: Engine
    limits: LoginLimits = field(default_factory=LoginLimits)
    clock: Callable[[], dt.datetime] = utcnow

    def check_in(self, *, email: str, ip: str) -> Attempt:
        """Record an attempt on `email` from `ip`; RateLimitedError (not recorded) when over."""
        now = self.clock()
        key = email_key(email)
        with transaction(self.engine) as session:
            session.execute(
                delete(LoginAttempt).where(LoginAttempt.created_at < now - self.limits.window)
            )
            row = LoginAttempt(email_key=key, ip=ip, created_at=now)
            session.add(row)
            session.flush()
            attempt = Attempt(row.id, key, ip)
        with transaction(self.engine) as session:
            wait = self._wait(session, attempt, now)
            if wait is not None:
                session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt.id))
        if wait is not None:
            raise RateLimitedError(wait)
        return attempt

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: forget this attempt and this IP's failures on the email."""
        same = LoginAttempt.id == attempt.id
        if attempt.email_key is not None:
            same = or_(
                same,
                (LoginAttempt.email_key == attempt.email_key) & (LoginAttempt.ip == attempt.ip),
            )
        with transaction(self.engine) as session:
            session.execute(delete(LoginAttempt).where(same))

    def check(self, *, ip: str) -> None:
        """RateLimitedError when `ip` is over its limit (for doors that only record failures)."""
        now = self.clock()
        with transaction(self.engine) as session:
            wait = self._wait(session, Attempt(0, None, ip), now)
        if wait is not None:
            raise RateLimitedError(wait)

    def record_failure(self, *, ip: str) -> None:
        """Count a failure against `ip` alone (e.g. a signup for an email already taken)."""
        with transaction(self.engine) as session:
            session.add(LoginAttempt(email_key=None, ip=ip, created_at=self.clock()))

    def _wait(self, session: Session, attempt: Attempt, now: dt.datetime) -> int | None:
        """Seconds until `attempt` would be within every limit, or None when it is already."""
        since = now - self.limits.window
        checks: list[tuple[ColumnElement[bool], int]] = [
            (LoginAttempt.ip == attempt.ip, self.limits.per_ip)
        ]
        if attempt.email_key is not None:
            checks.append((LoginAttempt.email_key == attempt.email_key, self.limits.per_email))
        waits: list[int] = []
        for same, limit in checks:
            times = session.scalars(
                select(LoginAttempt.created_at)
                .where(same, LoginAttempt.created_at >= since, LoginAttempt.id != attempt.id)
                .order_by(LoginAttempt.created_at.desc())
                .limit(limit)
            ).all()
            if len(times) >= limit:
                # Allowed again once the oldest of the `limit` most recent leaves the window.
                left = _aware(times[-1]) + self.limits.window - now
                waits.append(max(1, math.ceil(left.total_seconds())))
        return max(waits) if waits else None
