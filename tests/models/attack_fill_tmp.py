"""Hostile: fills /tmp until something stops it, and reports how far it got."""

import errno

written = 0
outcome = "no error"
try:
    for i in range(4096):  # up to 4 GiB, 1 MiB at a time, over several files
        with open(f"/tmp/fill-{i // 16}", "ab") as f:
            f.write(b"x" * 2**20)
        written += 2**20
except OSError as exc:
    outcome = f"{type(exc).__name__} {errno.errorcode.get(exc.errno or 0, exc.errno)}"
entire_model = None
raise RuntimeError(f"fill /tmp: {outcome} after {written // 2**20} MiB")
