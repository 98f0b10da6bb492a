"""Who may call what: every submission, paper and task-admin route against anonymous callers,
another user, the owner and an administrator, on a public and a private submission.

Each case gets fresh target submissions (rows made directly), so destructive calls cannot
affect the next case; the app and its database are shared by the module.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from core.arrays import pack_array
from core.models import (
    Result,
    ResultCost,
    Submission,
    SubmissionState,
    Task,
    Visibility,
)
from core.settings import LimitsSettings
from tests.conftest import BACKENDS
from tests.submission_helpers import TINY_MODEL, predictions_bytes
from web import enqueue

if TYPE_CHECKING:
    from tests.api_helpers import Api, ApiUser

pytest_plugins = ["tests.api_helpers"]

SST2 = predictions_bytes("SST-2", seed=3)
CALLERS = ("anonymous", "other", "owner", "admin")


@dataclass
class World:
    api: Api
    users: dict[str, ApiUser]


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    from tests.api_helpers import Api

    tmp = tmp_path_factory.mktemp("authz")
    if request.param == "sqlite":
        db = tmp / "paretoboard.db"
        shutil.copyfile(request.getfixturevalue("sqlite_seeded_template"), db)
        url = f"sqlite:///{db}"
    else:
        source = request.getfixturevalue("api_pg_seeded_template")
        dbs = request.getfixturevalue("pg_databases")
        name = f"pb_test_{uuid.uuid4().hex[:12]}"
        with dbs.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
        dbs.created.append(name)
        url = make_url(dbs.admin.url).set(database=name).render_as_string(hide_password=False)
    api = Api.start(url, tmp / "var", limits=LimitsSettings(submissions_per_task_per_day=1000))
    users = {"other": api.user(), "owner": api.user(), "admin": api.user(admin=True)}
    yield World(api, users)
    api.close()


@pytest.fixture(autouse=True)
def _no_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue, "send_score", lambda *_args: True)


def _target(world: World, visibility: Visibility) -> tuple[int, int]:
    """A finished submission of the owner with one counted SST-2 point: (submission, result)."""
    with world.api.db() as session:
        task_id = session.scalar(select(Task.id).where(Task.name == "SST-2"))
        assert task_id is not None
        sub = Submission(
            owner_id=world.users["owner"].id,
            name=f"target-{uuid.uuid4().hex[:8]}",
            visibility=visibility,
            state=SubmissionState.DONE,
            job_id=uuid.uuid4().hex,
        )
        session.add(sub)
        session.flush()
        result = Result(
            submission_id=sub.id,
            task_id=task_id,
            performance=80.0,
            cost_status="counted",
            flops_mean=100.0,
        )
        session.add(result)
        session.flush()
        session.add(ResultCost(result_id=result.id, n=1, flops=pack_array(np.array([100]))))
        return sub.id, result.id


def _upload(fields: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "data": {"name": f"n-{uuid.uuid4().hex[:8]}", **(fields or {})},
        "files": [
            ("model", ("model.py", TINY_MODEL.read_bytes())),
            ("predictions", ("SST-2.tsv", SST2)),
        ],
    }


PAPER = {
    "paper_url": "https://example.org/paper",
    "points": [{"task": "SST-2", "performance": 80.0, "flops": 1e9}],
}
S = "/api/v1/submissions"

# (id, method, path, request kwargs, expected status for anonymous, other, owner, admin)
ROUTES: list[tuple[str, str, str, dict[str, Any], tuple[int, int, int, int]]] = [
    ("get public", "GET", S + "/{pub}", {}, (200, 200, 200, 200)),
    ("get private", "GET", S + "/{priv}", {}, (404, 404, 200, 200)),
    ("costs public", "GET", S + "/{pub}/costs/{pub_result}", {}, (200, 200, 200, 200)),
    ("costs private", "GET", S + "/{priv}/costs/{priv_result}", {}, (404, 404, 200, 200)),
    ("list public", "GET", S, {}, (200, 200, 200, 200)),
    ("list own", "GET", S + "?owner=me", {}, (401, 200, 200, 200)),
    ("submit", "POST", S, {"upload": True}, (401, 202, 202, 202)),
    ("validate", "POST", S + "/validate", {"upload": True}, (401, 200, 200, 200)),
    ("edit public", "PATCH", S + "/{pub}", {"json": {"description": "x"}}, (401, 403, 200, 403)),
    ("edit private", "PATCH", S + "/{priv}", {"json": {"description": "x"}}, (401, 404, 200, 403)),
    ("withdraw public", "DELETE", S + "/{pub}", {}, (401, 403, 204, 403)),
    ("withdraw private", "DELETE", S + "/{priv}", {}, (401, 404, 204, 403)),
    ("rerun public", "POST", S + "/{pub}/rerun", {}, (401, 403, 403, 200)),
    ("rerun private", "POST", S + "/{priv}/rerun", {}, (401, 403, 403, 200)),
    ("hide public", "POST", S + "/{pub}/hide", {}, (401, 403, 403, 200)),
    ("unhide private", "POST", S + "/{priv}/unhide", {}, (401, 403, 403, 200)),
    ("paper", "POST", "/api/v1/papers", {"paper": True}, (401, 201, 201, 201)),
    (
        "set baseline",
        "PUT",
        "/api/v1/tasks/SST-2/baseline",
        {"json": {"submission_id": "{pub}"}},
        (401, 403, 403, 200),
    ),
    ("clear baseline", "DELETE", "/api/v1/tasks/SST-2/baseline", {}, (401, 403, 403, 200)),
    ("rerun task", "POST", "/api/v1/tasks/SST-2/rerun", {}, (401, 403, 403, 200)),
    ("task inputs", "GET", "/api/v1/tasks/SST-2/inputs", {}, (200, 200, 200, 200)),
]

CASES = [
    pytest.param(method, path, kwargs, caller, expected[i], id=f"{name}-{caller}")
    for name, method, path, kwargs, expected in ROUTES
    for i, caller in enumerate(CALLERS)
]


@pytest.mark.parametrize(("method", "path", "kwargs", "caller", "status"), CASES)
def test_authorization_matrix(
    world: World, method: str, path: str, kwargs: dict[str, Any], caller: str, status: int
) -> None:
    pub, pub_result = _target(world, Visibility.PUBLIC)
    priv, priv_result = _target(world, Visibility.PRIVATE)
    ids = {"pub": pub, "priv": priv, "pub_result": pub_result, "priv_result": priv_result}
    request: dict[str, Any] = {}
    if kwargs.get("upload"):
        request.update(_upload())
    if kwargs.get("paper"):
        request["json"] = {**PAPER, "name": f"paper-{uuid.uuid4().hex[:8]}"}
    if "json" in kwargs:
        request["json"] = {
            k: (ids[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v)
            for k, v in kwargs["json"].items()
        }
    headers = world.users[caller].headers if caller in world.users else {}
    response = world.api.client.request(method, path.format(**ids), headers=headers, **request)
    assert response.status_code == status, response.text
    if status >= 400:
        body = response.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "details"}
        if status == 404:
            assert "private" not in response.text.lower()
    if method == "GET" and path == S:
        assert priv not in [item["id"] for item in response.json()["items"]]
