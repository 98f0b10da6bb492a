"""Hostile: prints 1 GB with print()."""

line = "x" * (2**20 - 1)
for _ in range(1024):
    print(line)
entire_model = None
raise RuntimeError("printed 1 GiB")
