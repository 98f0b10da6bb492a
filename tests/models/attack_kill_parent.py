"""Hostile: kills its parent, pid 1, its process group and every process it can see."""

import os
import signal
import subprocess
from collections.abc import Callable

seen = [f"pid={os.getpid()} ppid={os.getppid()}"]
attempts: dict[str, Callable[[], None]] = {
    "kill(getppid())": lambda: os.kill(os.getppid(), signal.SIGKILL),
    "kill(1)": lambda: os.kill(1, signal.SIGKILL),
    "killpg(0)": lambda: os.killpg(0, signal.SIGKILL),
    "kill(-1)": lambda: os.kill(-1, signal.SIGKILL),
}
for name, attempt in attempts.items():
    try:
        attempt()
        seen.append(f"{name}: sent")
    except OSError as exc:
        seen.append(f"{name}: {type(exc).__name__} {exc.errno}")
shell = subprocess.run(
    ["/bin/sh", "-c", "kill -9 -1; kill -9 1; kill -9 $PPID; echo shell-survived"],
    capture_output=True,
    check=False,
)
seen.append(f"sh: exit {shell.returncode} {shell.stdout!r}")
entire_model = None
raise RuntimeError("kill parent: still alive: " + " | ".join(seen))
