"""Hostile: reads the gold labels of the test sets (the test substitutes more paths) and reports."""

from pathlib import Path

TARGETS = ["/work/shared/data/elue/SST-2/test_full.tsv", "/job/../SST-2/test_full.tsv"]

seen = []
for target in TARGETS:
    try:
        seen.append(f"{target}: READ {Path(target).read_bytes()[:200]!r}")
    except OSError as exc:
        seen.append(f"{target}: {type(exc).__name__}")
entire_model = None
raise RuntimeError("read gold: " + " | ".join(seen))
