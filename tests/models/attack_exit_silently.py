"""Hostile: ends the cost job's process at import, before it can write its report."""

import os

entire_model = None
os._exit(0)
