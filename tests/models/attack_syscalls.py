"""Hostile: calls ptrace, mount and unshare through ctypes, and reports each result."""

import ctypes
import os
from collections.abc import Callable

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
PTRACE_TRACEME, PTRACE_ATTACH = 0, 16
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000
calls: dict[str, Callable[[], int]] = {
    "ptrace(ATTACH, 1)": lambda: libc.ptrace(PTRACE_ATTACH, 1, None, None),
    "ptrace(TRACEME)": lambda: libc.ptrace(PTRACE_TRACEME, 0, None, None),
    "mount(tmpfs, /tmp)": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
    "mount(remount /job rw)": lambda: libc.mount(None, b"/job", None, 0x20 | 0x1000, None),
    "unshare(NEWUSER)": lambda: libc.unshare(CLONE_NEWUSER),
    "unshare(NEWNS)": lambda: libc.unshare(CLONE_NEWNS),
    "unshare(NEWNET)": lambda: libc.unshare(CLONE_NEWNET),
}
seen = []
for name, call in calls.items():
    ctypes.set_errno(0)
    result = call()
    seen.append(f"{name}={result} {os.strerror(ctypes.get_errno()) if result == -1 else 'OK'}")
entire_model = None
raise RuntimeError("syscalls: " + " | ".join(seen))
