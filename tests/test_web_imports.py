"""The web process stays light: taking an upload must not import the worker's heavy stack."""

from __future__ import annotations

import ast
import subprocess
import sys

from core.settings import REPO_ROOT

PROBE = """
import sys
from core.models import Submission
from core.settings import Mode, Settings
from web.app import create_app
from core.submissions import commands  # the submit command, imported by the API
from core.submissions.state import new_job_id

create_app(Settings(mode=Mode.TEST))
# scipy is the web process's own (the compare view's paired bootstrap): loaded at start-up,
# never by an upload; torch and the worker's pipeline never.
before = set(sys.modules)
Submission().job_id = new_job_id()  # what commands.submit does to a new submission
added = set(sys.modules) - before
print(sorted(
    {m for m in ("torch", "worker.pipeline") if m in sys.modules}
    | {m for m in ("scipy",) if m in added}
))
"""


def test_an_upload_does_not_import_torch_into_the_web_process() -> None:
    # worker.pipeline (torch, scipy) took ~10-20 s to import on a loaded 2-core host: the first
    # upload after a start waited for it, with every request behind the GIL (bench_load).
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _imported_modules(folder: str) -> dict[str, set[str]]:
    """Modules each module under `folder` imports (absolute imports, lazy ones included)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                # `from web import api` names the module web.api too
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
        found[str(path.relative_to(REPO_ROOT))] = names
    return found


def _imported_packages(folder: str) -> dict[str, set[str]]:
    """Top-level packages each module under `folder` imports, lazily imported ones included."""
    return {
        path: {name.split(".")[0] for name in names}
        for path, names in _imported_modules(folder).items()
    }


def test_the_web_imports_jobs_and_core_never_the_worker() -> None:
    modules = _imported_packages("web")
    assert len(modules) > 20  # the walk found the web's modules
    offenders = {path: sorted(names & {"worker"}) for path, names in modules.items()}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_pages_import_core_and_shared_web_modules_never_the_api() -> None:
    # pages and API are siblings over core and the shared web modules (web/login.py, ...)
    modules = _imported_modules("web/pages")
    assert "web/pages/accounts.py" in modules
    offenders = {
        path: sorted(n for n in names if n == "web.api" or n.startswith("web.api."))
        for path, names in modules.items()
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_queue_contract_imports_neither_the_worker_nor_torch() -> None:
    modules = _imported_packages("jobs")
    assert {"jobs/app.py", "jobs/messages.py", "jobs/send.py"} <= set(modules)
    heavy = {"worker", "torch", "web", "sqlalchemy"}
    offenders = {path: sorted(names & heavy) for path, names in modules.items()}
    assert {path: names for path, names in offenders.items() if names} == {}


JOBS_PROBE = """
import sys
import jobs.app, jobs.cost_output, jobs.messages, jobs.records, jobs.send
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "worker", "numpy")))
"""


def test_importing_the_queue_contract_loads_no_worker_and_no_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", JOBS_PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
