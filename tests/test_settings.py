"""The settings object: nesting, the embedded default, and production refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Mode, Settings


def test_defaults_are_embedded_sqlite_under_var(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PARETOBOARD_DB__URL", "PARETOBOARD_MODE", "PARETOBOARD_STORAGE__DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    s = Settings()
    assert s.mode is Mode.DEVELOPMENT
    assert s.database_url.startswith("sqlite:///")
    assert s.database_url.endswith("/var/paretoboard.db")
    assert s.limits.prediction_file_bytes == 50 * 1024 * 1024


def test_nested_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("PARETOBOARD_DB__URL", "postgresql+psycopg://u:pw@db:5432/pb")
    monkeypatch.setenv("PARETOBOARD_LIMITS__MAX_PROBLEMS", "7")
    monkeypatch.setenv("PARETOBOARD_BROKER__URL", "redis://broker:6379/0")
    s = Settings()
    assert s.database_url == "postgresql+psycopg://u:pw@db:5432/pb"
    assert s.limits.max_problems == 7
    assert "pw" not in repr(s)  # secrets stay hidden in logs
    assert s.broker.url.get_secret_value() == "redis://broker:6379/0"


def test_production_refuses_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARETOBOARD_MODE", "production")
    monkeypatch.delenv("PARETOBOARD_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings()
    monkeypatch.setenv("PARETOBOARD_SECRET_KEY", "x" * 40)
    monkeypatch.delenv("PARETOBOARD_DB__URL", raising=False)
    with pytest.raises(ValidationError, match="DB__URL"):
        Settings()
    monkeypatch.setenv("PARETOBOARD_DB__URL", "postgresql+psycopg://u:pw@db/pb")
    assert Settings().mode is Mode.PRODUCTION
