"""Hostile: resolves host names (a DNS query leaks data out) and reports what happened."""

import socket

seen = []
for name in ("example.com", "postgres", "localhost"):
    try:
        seen.append(f"{name}: RESOLVED {socket.getaddrinfo(name, 80)[:2]}")
    except OSError as exc:
        seen.append(f"{name}: {type(exc).__name__} {exc}")
entire_model = None
raise RuntimeError("resolve: " + " | ".join(seen))
