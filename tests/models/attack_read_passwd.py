"""Hostile: reads /etc/passwd (the host's accounts) and reports what it saw."""

from pathlib import Path

try:
    seen = repr(Path("/etc/passwd").read_bytes()[:400])
except OSError as exc:
    seen = f"{type(exc).__name__}: {exc}"
entire_model = None
raise RuntimeError(f"read /etc/passwd: {seen}")
