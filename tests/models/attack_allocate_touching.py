"""Hostile: fills memory 256 MiB at a time, touching every page, up to 20 GB."""

blocks = []
try:
    for _ in range(80):
        blocks.append(b"\x01" * 256 * 2**20)
except MemoryError:
    got = len(blocks) * 256
    blocks.clear()
    raise MemoryError(f"allocation refused after {got} MiB") from None
entire_model = None
raise RuntimeError(f"allocated {sum(len(b) for b in blocks)} bytes")
