"""Hostile: opens TCP sockets to the database and the broker, and reports what happened."""

import socket

seen = []
for family, address in (
    (socket.AF_INET, ("127.0.0.1", 5432)),
    (socket.AF_INET, ("127.0.0.1", 6379)),
    (socket.AF_INET6, ("::1", 5432)),
):
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(3)
        sock.connect(address)
        seen.append(f"{address}: CONNECTED")
    except OSError as exc:
        seen.append(f"{address}: {type(exc).__name__} {exc}")
entire_model = None
raise RuntimeError("socket: " + " | ".join(seen))
