"""Hostile: asks for 20 GB in one block."""

block = bytearray(20 * 10**9)
entire_model = None
raise RuntimeError(f"allocated {len(block)} bytes")
