"""Accounts and API tokens: argon2 password hashes, tokens stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.errors import ConflictError, InvalidInputError, NotFoundError, Problem
from core.models import ApiToken, User, UserRole
from core.text import has_control, name_problem, normalise_name

TOKEN_PREFIX = "pb_"
# Control and invisible formatting characters (bidi overrides, zero-width), refused in emails
# and names: names are shown to everyone. The patterns are also the API's JSON schema, so they
# use escapes that Python, Rust (pydantic) and ECMAScript regexes read alike.
_INVISIBLE = r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff"
_ADDR = rf"[^@\s{_INVISIBLE}]"
EMAIL_PATTERN = rf"^{_ADDR}{{1,64}}@{_ADDR}{{1,255}}\.{_ADDR}{{1,63}}$"  # after normalising
NAME_PATTERN = rf"^[^{_INVISIBLE}]*[^\s{_INVISIBLE}][^{_INVISIBLE}]*$"  # some visible text
_EMAIL = re.compile(EMAIL_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_NAME = 100  # display names and token names


def normalise_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(
    session: Session,
    *,
    email: str,
    display_name: str,
    password: str,
    role: UserRole = UserRole.USER,
) -> User:
    """Register a user; InvalidInputError lists every problem, ConflictError for a taken email."""
    email = normalise_email(email)
    problems: list[Problem] = []
    if not _EMAIL.match(email):
        problems.append(Problem("expected an email address like name@example.org", column="email"))
    name = normalise_name(display_name)
    if (problem := name_problem(name)) is not None:
        problems.append(Problem(f"display name: {problem}", column="display_name"))
    elif not 1 <= len(name) <= MAX_NAME or not _NAME.match(name):
        problems.append(
            Problem(
                f"display name must be 1 to {MAX_NAME} characters, without control characters",
                column="display_name",
            )
        )
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        problems.append(
            Problem(
                f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", column="password"
            )
        )
    if problems:
        raise InvalidInputError("Invalid registration", problems)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ConflictError("An account with this email already exists")
    user = User(email=email, display_name=name, password_hash=hash_password(password), role=role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # a concurrent signup for the same email won; the owner rolls back
        raise ConflictError("An account with this email already exists") from None
    return user


MAX_AFFILIATION = 200


def set_affiliation(session: Session, *, user: User, affiliation: str) -> None:
    """Set (or with an empty text, clear) the affiliation shown next to the user's entries."""
    text = normalise_name(affiliation)
    if text:
        if (problem := name_problem(text)) is not None:
            raise InvalidInputError(
                "Invalid affiliation", [Problem(f"affiliation: {problem}", column="affiliation")]
            )
        if len(text) > MAX_AFFILIATION or not _NAME.match(text):
            raise InvalidInputError(
                "Invalid affiliation",
                [
                    Problem(
                        f"affiliation must be at most {MAX_AFFILIATION} characters, without "
                        "control characters",
                        column="affiliation",
                    )
                ],
            )
    user.affiliation = text or None
    session.flush()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def authenticate(session: Session, *, email: str, password: str) -> User | None:
    """The active user with this email and password, else None (same work either way).

    An email with control characters is refused before the database sees it (InvalidInputError).
    """
    refuse_control_in_email(email)
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    stored = user.password_hash if user is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def refuse_control_in_email(email: str) -> None:
    """422 for a login email holding NUL or another control character."""
    if has_control(email):
        raise InvalidInputError(
            "Invalid email",
            [Problem("email: control characters are not allowed", column="email")],
        )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, user: User, name: str) -> tuple[ApiToken, str]:
    """A new API token; the plain token is returned once and never stored."""
    name = normalise_name(name)
    if (problem := name_problem(name)) is not None:
        raise InvalidInputError(
            "Invalid token name", [Problem(f"token name: {problem}", column="name")]
        )
    if not 1 <= len(name) <= MAX_NAME or not _NAME.match(name):
        raise InvalidInputError(
            "Invalid token name",
            [
                Problem(
                    f"token name must be 1 to {MAX_NAME} characters, without control characters",
                    column="name",
                )
            ],
        )
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=token_hash(plain), prefix=plain[:10])
    session.add(row)
    session.flush()
    return row, plain


def user_for_token(session: Session, plain: str) -> User | None:
    """The active user owning an unrevoked token, stamping its last use."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == token_hash(plain), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    row.last_used_at = utcnow()
    return user


def list_tokens(session: Session, *, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.id)
        )
    )


def revoke_token(session: Session, *, user: User, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id or row.revoked_at is not None:
        raise NotFoundError("No such token")
    row.revoked_at = utcnow()


def count_admins(session: Session) -> int:
    return session.scalar(select(func.count()).where(User.role == UserRole.ADMIN)) or 0
