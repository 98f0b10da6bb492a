"""Hostile: 4 children each hold 400 MiB (under the per-process limit), 1.6 GiB in all."""

import os
import time

entire_model = None
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = b"\x01" * 400 * 2**20  # touched: every page is resident
        time.sleep(60)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
raise RuntimeError("children held 1.6 GiB in all and nothing stopped them")
