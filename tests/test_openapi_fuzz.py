"""Schemathesis against the app's own OpenAPI schema: no 5xx, and every response conforms.

Covers every GET route, registration, self-reported papers and submission edits, with few
examples per operation so the run stays short. The app runs on a copy of the seeded SQLite
database with one finished submission, called with an API token.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.filters import HasAPIOperation
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from core.arrays import pack_array
from core.db.session import engine_for, transaction
from core.models import Result, ResultCost, Submission, SubmissionState, Task
from core.settings import BrokerSettings, DatabaseSettings, Mode, Settings, StorageSettings
from core.users import service as user_service
from web.app import create_app

FUZZED = {
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/papers"),
    ("PATCH", "/api/v1/submissions/{submission_id}"),
}


@dataclass
class Target:
    app: Any
    token: str


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory, sqlite_seeded_template: Path
) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("fuzz") / "var"
    data.mkdir()
    shutil.copyfile(sqlite_seeded_template, data / "paretoboard.db")
    down = "redis://127.0.0.1:1/0"  # nothing is enqueued by these routes; never a real broker
    app_settings = Settings(
        mode=Mode.TEST,
        db=DatabaseSettings(url=f"sqlite:///{data / 'paretoboard.db'}"),  # type: ignore[arg-type]
        storage=StorageSettings(data_dir=data),
        broker=BrokerSettings(url=down, result_backend=down),  # type: ignore[arg-type]
    )
    with transaction(engine_for(app_settings.database_url)) as session:
        user = user_service.create_user(
            session, email="fuzz@example.org", display_name="Fuzz", password="x" * 12
        )
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
    yield Target(create_app(app_settings), token)
    engine_for(app_settings.database_url).dispose()


def _chosen(ctx: HasAPIOperation) -> bool:
    operation = ctx.operation
    return operation.method.upper() == "GET" or (operation.method.upper(), operation.path) in FUZZED


# The schema does not depend on the settings; the requests go to the fixture's app.
_SCHEMA: BaseSchema = schemathesis.openapi.from_dict(create_app(Settings(mode=Mode.TEST)).openapi())
schema = _SCHEMA.include(_chosen)


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_responses_conform(case: Any, target: Target) -> None:
    case.call_and_validate(
        app=target.app,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {target.token}"},
        # Schema-valid is not always acceptable: a paper's task must be an imported task.
        excluded_checks=[positive_data_acceptance],
    )
