"""Request and response models of the accounts API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from core.models import UserRole, UserSession
from core.text import SafeName, SafeText
from core.users import service as users


def _as_utc(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes; every stored time is UTC, so say so in the JSON.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


UtcDatetime = Annotated[dt.datetime, AfterValidator(_as_utc)]

# Logins take any string (a malformed email simply fails); signups state the service's rules.
Email = Annotated[SafeText, Field(max_length=320, examples=["ada@example.org"])]
Password = Annotated[
    str, Field(max_length=users.MAX_PASSWORD, json_schema_extra={"format": "password"})
]
Name = Annotated[
    SafeName, Field(min_length=1, max_length=users.MAX_NAME, pattern=users.NAME_PATTERN)
]


class UserCreate(BaseModel):
    email: SafeText = Field(
        max_length=320,
        pattern=users.EMAIL_PATTERN,
        description="stored lower-case",
        examples=["ada@example.org"],
    )
    display_name: Name = Field(examples=["Ada Lovelace"])
    password: Password = Field(min_length=users.MIN_PASSWORD)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    display_name: str
    affiliation: str | None = Field(
        description="shown next to the user's entries on the boards; set on the account page"
    )
    role: UserRole
    created_at: UtcDatetime


class SessionCreate(BaseModel):
    email: Email
    password: Password


class SessionRead(BaseModel):
    user: UserRead
    csrf_token: str = Field(
        description="Send as the X-CSRF-Token header (or csrf_token form field) on every "
        "cookie-authenticated write"
    )


class SessionInfo(BaseModel):
    """One logged-in browser (the address and browser are as it reported them at login)."""

    id: int
    created_at: UtcDatetime
    last_seen_at: UtcDatetime
    expires_at: UtcDatetime
    ip: str
    user_agent: str
    current: bool = Field(description="the session this request came with")

    @classmethod
    def from_row(cls, row: UserSession, *, current: bool) -> SessionInfo:
        return cls(
            id=row.id,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            ip=row.ip,
            user_agent=row.user_agent,
            current=current,
        )


class SessionsEnded(BaseModel):
    ended: int = Field(description="how many sessions were ended")


class PasswordChange(BaseModel):
    current_password: Password
    new_password: Password = Field(min_length=users.MIN_PASSWORD)


class TokenCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"dependentRequired": {"email": ["password"], "password": ["email"]}}
    )

    name: Name = Field(examples=["laptop"])
    email: Email | SkipJsonSchema[None] = Field(
        None, description="with password; without both, a logged-in browser session is used"
    )
    password: Password | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TokenCreate:
        if (self.email is None) != (self.password is None):
            raise ValueError("send both email and password, or neither (logged-in session)")
        return self


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str = Field(description="the token's first characters, to tell tokens apart")
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None


class TokenCreated(BaseModel):
    token: str = Field(description="the API token; shown only this once")
    id: int
    name: str
    prefix: str
    created_at: UtcDatetime
