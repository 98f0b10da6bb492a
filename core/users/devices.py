"""Signed tokens of account ownership: known-device cookies and password-reset links.

Both are signed with the site's secret key (itsdangerous, each with its own salt), so neither
needs a table. A known-device cookie lists the accounts (by the limiter's email key) this
browser has logged in to, each with a random device id; a reset link names the user and a
digest of their current password hash, so it works once: the reset changes the hash.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from core.errors import InvalidInputError, Problem
from core.models import User
from core.users.login_limits import email_key

DEVICE_COOKIE = "paretoboard_device"
DEVICE_MAX_AGE = 365 * 24 * 3600
MAX_DEVICE_ACCOUNTS = 5
RESET_MAX_AGE = 24 * 3600


def _devices(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="paretoboard-known-device")


def _entries(secret: str, cookie: str | None) -> list[list[str]]:
    if not cookie or len(cookie) > 4096:
        return []
    try:
        data: Any = _devices(secret).loads(cookie, max_age=DEVICE_MAX_AGE)
    except BadSignature:
        return []
    if not isinstance(data, list):
        return []
    return [
        e
        for e in data
        if isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e)
    ]


def known_device(secret: str, cookie: str | None, *, email: str) -> str | None:
    """The device id this browser holds for the account `email`, if it logged in to it before."""
    key = email_key(email)
    return next((device for account, device in _entries(secret, cookie) if account == key), None)


def remember_device(secret: str, cookie: str | None, *, email: str) -> str:
    """The cookie value after a successful login to `email`: a new device id for the account,
    the others kept (the most recent `MAX_DEVICE_ACCOUNTS` accounts)."""
    key = email_key(email)
    others = [e for e in _entries(secret, cookie) if e[0] != key]
    entries = [*others[-(MAX_DEVICE_ACCOUNTS - 1) :], [key, secrets.token_urlsafe(16)]]
    return _devices(secret).dumps(entries)


def _resets(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="paretoboard-password-reset")


def _password_digest(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


def reset_token(secret: str, user: User) -> str:
    """A password-reset token for `user` (valid `RESET_MAX_AGE`, until the password changes)."""
    return _resets(secret).dumps({"u": user.id, "p": _password_digest(user)})


def user_for_reset_token(
    session: Session, secret: str, token: str, *, max_age: int = RESET_MAX_AGE
) -> User:
    """The active user a reset token was made for; InvalidInputError when it is not valid."""
    refused = InvalidInputError(
        "This reset link is not valid",
        [
            Problem(
                "the link is expired, already used or mistyped; ask an administrator for a new one",
                column="token",
            )
        ],
    )
    try:
        data: Any = _resets(secret).loads(token[:1000], max_age=max_age)
    except BadSignature:
        raise refused from None
    user = session.get(User, data.get("u")) if isinstance(data, dict) else None
    if user is None or not user.is_active or data.get("p") != _password_digest(user):
        raise refused
    return user
