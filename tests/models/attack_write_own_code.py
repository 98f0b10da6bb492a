"""Hostile: rewrites its own model file and job file, and reports what each attempt gave."""

import errno
import os
from collections.abc import Callable


def write(path: str, mode: str, text: str = "") -> None:
    with open(path, mode) as f:
        f.write(text)


seen = []
attempts: dict[str, Callable[[], None]] = {
    "append /job/model.py": lambda: write("/job/model.py", "a", "entire_model = 1\n"),
    "truncate /job/model.py": lambda: write("/job/model.py", "w"),
    "chmod /job/model.py": lambda: os.chmod("/job/model.py", 0o777),
    "unlink /job/model.py": lambda: os.unlink("/job/model.py"),
    "rename /job/job.json": lambda: os.rename("/job/job.json", "/job/other.json"),
    "create /job/new.py": lambda: write("/job/new.py", "w"),
}
for name, attempt in attempts.items():
    try:
        attempt()
        seen.append(f"{name}: DONE")
    except OSError as exc:
        seen.append(f"{name}: {errno.errorcode.get(exc.errno or 0, exc.errno)}")
entire_model = None
raise RuntimeError("write own code: " + " | ".join(seen))
