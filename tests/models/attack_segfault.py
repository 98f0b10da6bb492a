"""Hostile: crashes the interpreter (a read at address 0 through ctypes)."""

import ctypes

entire_model = None
ctypes.string_at(0)
