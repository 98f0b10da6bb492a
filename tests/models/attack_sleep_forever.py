"""Hostile: sleeps forever at import (no CPU used: only the wall-clock limit ends it)."""

import time

entire_model = None
while True:
    time.sleep(3600)
