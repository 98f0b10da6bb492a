"""Errors of the accounts domain (mapped to HTTP by status_code like every ParetoboardError)."""

from __future__ import annotations

from core.errors import ParetoboardError


class InvalidCredentialsError(ParetoboardError):
    """Wrong email or password: one message for both, so it never says which."""

    status_code = 401
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("Wrong email or password")


class RateLimitedError(ParetoboardError):
    """Too many failed attempts; `retry_after` seconds until the next one is accepted."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries (web/errors.py adds them)."""
        return {"Retry-After": str(self.retry_after)}
