"""Password attempts still inside the rate-limit window (shared by every server process)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class LoginAttempt(Base):
    """One password attempt: pending while being checked, then a failure until it ages out.

    Signups for an email that is already registered are kept too (with no email key), so
    probing for accounts through either door counts against the same per-IP budget.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_key_created_at", "email_key", "created_at"),
        Index("ix_login_attempts_ip_created_at", "ip", "created_at"),
        Index("ix_login_attempts_created_at", "created_at"),
        Index("ix_login_attempts_email_key_device", "email_key", "device"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # sha256 of the normalised email: the limiter needs equality, not the address itself.
    email_key: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    # The known-device cookie's id when the attempt came from a browser that logged in to this
    # account before: such attempts are counted on their own (core/users/login_limits.py).
    device: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
