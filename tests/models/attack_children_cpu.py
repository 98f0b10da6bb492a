"""Hostile: 4 children spin in parallel, each under the per-process CPU limit."""

import os

entire_model = None
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        while True:
            pass
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
