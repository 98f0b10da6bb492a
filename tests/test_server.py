"""The web process at this stage: health, task metadata, the home page, the error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings, StorageSettings
from web.app import create_app


@pytest.fixture
def client(sqlite_seeded_template: Path, tmp_path: Path) -> Iterator[TestClient]:
    data = tmp_path / "var"
    data.mkdir()
    (data / "paretoboard.db").write_bytes(sqlite_seeded_template.read_bytes())
    settings = Settings(storage=StorageSettings(data_dir=data))
    with TestClient(create_app(settings)) as c:
        yield c


def test_health_and_tasks(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    tasks = client.get("/api/v1/tasks").json()
    assert [t["name"] for t in tasks] == ["SST-2", "SNLI", "SciTail", "MRPC", "STS-B"]
    mrpc = client.get("/api/v1/tasks/mrpc").json()
    assert mrpc["metric"] == "accuracy_f1"
    assert mrpc["test_size"] == 1725
    assert "gold" not in str(mrpc).lower()


def test_unknown_task_uses_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/v1/tasks/QNLI")
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert "QNLI" in body["error"]["message"]
    assert body["error"]["details"] == []


def test_home_page_lists_tasks(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    for name in ("SST-2", "SNLI", "SciTail", "MRPC", "STS-B"):
        assert f'<a href="/tasks/{name}"' in page.text  # tasks link to their pages
    assert client.get("/static/site.css").status_code == 200
