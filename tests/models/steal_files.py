"""Hostile: tries to read the gold labels, the database and the host's files, and reports them."""

import os
from pathlib import Path

found = []
for target in [
    *os.environ.get("STEAL", "").split(":"),
    "/work/shared/data/elue/SST-2/test_full.tsv",
    "/etc/shadow",
    "/proc/1/environ",
]:
    try:
        found.append(f"{target}: {Path(target).read_bytes()[:200]!r}")
    except OSError as exc:
        found.append(f"{target}: {type(exc).__name__}")
entire_model = None
raise RuntimeError("stolen: " + " | ".join(found) + " | env=" + repr(sorted(os.environ)))
