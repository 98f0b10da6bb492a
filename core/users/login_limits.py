"""Throttling password checks without locking the owner out, kept in the database.

Failed attempts are counted in buckets, each with exponential backoff: after `free` failures in
the window, the next attempt in that bucket waits `2**(n - free)` seconds after the latest
failure, up to a cap. Nothing is ever locked for longer than the cap, and:

- per IP (every account): slows one address spraying many accounts;
- per (account, IP): slows one address guessing one account;
- per account, for browsers the account does not know: slows a guesser spread over many
  addresses. A browser holding the account's signed known-device cookie (given at each
  successful login, `web/login.py`) skips this and the two above; its own
  failures form a (device, account) bucket of their own. An attacker's failures therefore never
  stop the owner logging in from a browser they used before, nor from another address for
  long; a password-reset link (`paretoboard users reset-link`) is the proof of ownership that
  clears the account's failures.

Every attempt is written (and committed) before the password is checked, so concurrent requests
in any number of server processes cannot slip past together; a success deletes it and the
failures of its (account, IP) or (account, device) bucket; attempts refused by the throttle
are not recorded, so waiting out the cap always works.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Engine, delete, func, select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.db.session import transaction
from core.models import LoginAttempt
from core.users.errors import RateLimitedError
from core.users.service import normalise_email


@dataclass(frozen=True, slots=True)
class Backoff:
    """`free` failures, then a wait doubling from `first` per failure, at most `cap`."""

    free: int
    cap: dt.timedelta
    first: dt.timedelta = dt.timedelta(seconds=1)

    def wait(self, failures: int) -> dt.timedelta | None:
        if failures < self.free:
            return None
        exponent = min(failures - self.free, 40)
        wait: dt.timedelta = self.first * (1 << exponent)
        return min(wait, self.cap)


@dataclass(frozen=True, slots=True)
class LoginLimits:
    window: dt.timedelta = dt.timedelta(hours=1)  # failures older than this are forgotten
    # Several people may share an address (a lab): the per-IP budget is the largest.
    per_ip: Backoff = Backoff(20, dt.timedelta(minutes=15))
    per_account_ip: Backoff = Backoff(5, dt.timedelta(minutes=15))
    # Unknown browsers only, from any address: short, so the owner on a new browser waits
    # at most this long (or uses a reset link).
    # Above what one address can fail within the window under `per_account_ip` (about 17), so
    # a guesser at one address never slows the owner at another.
    per_account: Backoff = Backoff(25, dt.timedelta(minutes=5))
    per_device: Backoff = Backoff(5, dt.timedelta(minutes=15))


@dataclass(frozen=True, slots=True)
class Attempt:
    """A recorded attempt still in progress."""

    id: int
    email_key: str | None
    ip: str
    device: str | None = None


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

    def check_in(self, *, email: str, ip: str, device: str | None = None) -> Attempt:
        """Record an attempt on `email` from `ip` (from a browser the account knows as `device`,
        already verified by the caller); RateLimitedError (not recorded) when throttled."""
        now = self.clock()
        key = email_key(email)
        with transaction(self.engine) as session:
            session.execute(
                delete(LoginAttempt).where(LoginAttempt.created_at < now - self.limits.window)
            )
            row = LoginAttempt(email_key=key, ip=ip, device=device, created_at=now)
            session.add(row)
            session.flush()
            attempt = Attempt(row.id, key, ip, device)
        with transaction(self.engine) as session:
            wait = self._wait(session, attempt, now)
            if wait is not None:
                session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt.id))
        if wait is not None:
            raise RateLimitedError(wait)
        return attempt

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: forget this attempt and its bucket's failures."""
        same = LoginAttempt.id == attempt.id
        if attempt.email_key is not None:
            same = same | self._bucket(attempt)[-1][0]
        with transaction(self.engine) as session:
            session.execute(delete(LoginAttempt).where(same))

    def forget_account(self, *, email: str) -> None:
        """Forget every failure on the account (its owner proved ownership: a reset link)."""
        with transaction(self.engine) as session:
            session.execute(delete(LoginAttempt).where(LoginAttempt.email_key == email_key(email)))

    def check(self, *, ip: str) -> None:
        """RateLimitedError when `ip` is throttled (for doors that only record failures)."""
        now = self.clock()
        with transaction(self.engine) as session:
            wait = self._wait(session, Attempt(0, None, ip), now)
        if wait is not None:
            raise RateLimitedError(wait)

    def record_failure(self, *, ip: str) -> None:
        """Count a failure against `ip` alone (e.g. a signup for an email already taken)."""
        with transaction(self.engine) as session:
            session.add(LoginAttempt(email_key=None, ip=ip, created_at=self.clock()))

    def _bucket(self, attempt: Attempt) -> list[tuple[ColumnElement[bool], Backoff]]:
        """The buckets an attempt counts in; the last is the one a success clears."""
        limits = self.limits
        if attempt.device is not None and attempt.email_key is not None:
            return [
                (
                    (LoginAttempt.email_key == attempt.email_key)
                    & (LoginAttempt.device == attempt.device),
                    limits.per_device,
                )
            ]
        untrusted = LoginAttempt.device.is_(None)
        buckets: list[tuple[ColumnElement[bool], Backoff]] = [
            (untrusted & (LoginAttempt.ip == attempt.ip), limits.per_ip)
        ]
        if attempt.email_key is not None:
            account = untrusted & (LoginAttempt.email_key == attempt.email_key)
            buckets += [
                (account, limits.per_account),
                (account & (LoginAttempt.ip == attempt.ip), limits.per_account_ip),
            ]
        return buckets

    def _wait(self, session: Session, attempt: Attempt, now: dt.datetime) -> int | None:
        """Seconds until `attempt` would be let through by every bucket, or None."""
        since = now - self.limits.window
        waits: list[float] = []
        for same, backoff in self._bucket(attempt):
            failures, latest = session.execute(
                select(func.count(), func.max(LoginAttempt.created_at)).where(
                    same, LoginAttempt.created_at >= since, LoginAttempt.id != attempt.id
                )
            ).one()
            wait = backoff.wait(int(failures))
            if wait is not None and latest is not None:
                left = (_aware(latest) + wait - now).total_seconds()
                if left > 0:
                    waits.append(left)
        return max(1, math.ceil(max(waits))) if waits else None
