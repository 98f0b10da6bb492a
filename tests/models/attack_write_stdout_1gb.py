"""Hostile: writes 1 GB straight to file descriptor 1 (the log, once the capture has started)."""

import os

chunk = b"x" * 2**20
for _ in range(1024):
    view = memoryview(chunk)
    while view:
        view = view[os.write(1, view) :]
entire_model = None
raise RuntimeError("wrote 1 GiB to fd 1")
