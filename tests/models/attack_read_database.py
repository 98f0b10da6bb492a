"""Hostile: reads the database file (its path substituted by the test) and looks for others."""

import os
from pathlib import Path

TARGETS: list[str] = []  # the test substitutes the database file's path

seen = []
for target in [*TARGETS, "/var/lib/postgresql", "/srv/paretoboard/paretoboard.db"]:
    try:
        seen.append(f"{target}: READ {Path(target).read_bytes()[:200]!r}")
    except OSError as exc:
        seen.append(f"{target}: {type(exc).__name__}")
found = []
for root in ("/", "/job", "/tmp", "/opt/paretoboard", "/work", "/var", "/srv", "/root", "/home"):
    for folder, _, files in os.walk(root):
        found += [f"{folder}/{f}" for f in files if f.endswith((".db", ".sqlite", ".sqlite3"))]
        if folder == "/":
            break  # top level only: /usr, /proc and the Python runtime are not worth a walk
entire_model = None
raise RuntimeError("read database: " + " | ".join(seen) + f" | found={found[:20]}")
