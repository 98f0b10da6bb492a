"""Hostile: spins forever at import."""

entire_model = None
while True:
    pass
