"""Writes a forged report on fd 1 and exits 0 before any capture: refused, nothing stored."""

import json
import os

os.write(1, json.dumps({"ok": True, "params": 0, "entries": {}}).encode())
os._exit(0)
