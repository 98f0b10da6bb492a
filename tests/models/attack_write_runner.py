"""Hostile: rewrites the runner code the cost job runs, and reports what each attempt gave."""

import errno
import os
from collections.abc import Callable

RUNNER = "/opt/paretoboard/worker/cost_job.py"


def write(path: str, mode: str, text: str = "") -> None:
    with open(path, mode) as f:
        f.write(text)


seen = []
attempts: dict[str, Callable[[], None]] = {
    "append cost_job.py": lambda: write(RUNNER, "a", "\nprint('owned')\n"),
    "truncate cost_job.py": lambda: write(RUNNER, "w"),
    "chmod cost_job.py": lambda: os.chmod(RUNNER, 0o777),
    "unlink cost_job.py": lambda: os.unlink(RUNNER),
    "create worker/sitecustomize.py": lambda: write(
        "/opt/paretoboard/worker/sitecustomize.py", "w"
    ),
    "append core/__init__.py": lambda: write("/opt/paretoboard/core/__init__.py", "a", "#"),
}
for name, attempt in attempts.items():
    try:
        attempt()
        seen.append(f"{name}: DONE")
    except OSError as exc:
        seen.append(f"{name}: {errno.errorcode.get(exc.errno or 0, exc.errno)}")
entire_model = None
raise RuntimeError("write runner: " + " | ".join(seen))
