"""The web process stays light: taking an upload must not import the worker's heavy stack."""

from __future__ import annotations

import subprocess
import sys

from core.settings import REPO_ROOT

PROBE = """
import sys
from core.models import Submission
from core.settings import Mode, Settings
from web.app import create_app
from server.enqueue import assign_job

create_app(Settings(mode=Mode.TEST))
# scipy is the web process's own (the compare view's paired bootstrap): loaded at start-up,
# never by an upload; torch and the worker's pipeline never.
before = set(sys.modules)
assign_job(Submission())  # what POST /api/v1/submissions does to a new submission
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
