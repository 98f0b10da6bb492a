"""Compact storage of numeric arrays (per-sample costs, gold labels): compressed .npy bytes."""

from __future__ import annotations

import io
import zlib

import numpy as np

_MAX_UNPACKED = 512 * 1024 * 1024


def pack_array(values: np.ndarray) -> bytes:
    """Serialise a numeric array to compressed bytes (no pickle)."""
    if values.dtype == object:
        raise TypeError("only numeric arrays can be packed")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(values), allow_pickle=False)
    return zlib.compress(buf.getvalue(), level=6)


def unpack_array(data: bytes) -> np.ndarray:
    """Inverse of `pack_array`; refuses pickles and oversize payloads."""
    d = zlib.decompressobj()
    raw = d.decompress(data, _MAX_UNPACKED)
    if d.unconsumed_tail:
        raise ValueError("packed array is larger than allowed")
    result: np.ndarray = np.load(io.BytesIO(raw), allow_pickle=False)
    return result
