"""Hostile: reads its environment and that of pid 1 (the worker's secrets?) and reports them."""

import os
from pathlib import Path

seen = [f"environ={dict(os.environ)!r}"]
for target in ("/proc/1/environ", "/proc/self/environ", "/proc/1/cmdline"):
    try:
        seen.append(f"{target}: {Path(target).read_bytes()[:4000]!r}")
    except OSError as exc:
        seen.append(f"{target}: {type(exc).__name__}")
entire_model = None
raise RuntimeError("environment: " + " | ".join(seen))
