"""Builders for weights tests: real safetensors files, hand-made broken ones, and pickles."""

from __future__ import annotations

import json
import pickle
import struct
from typing import Any

import numpy as np
from safetensors.numpy import save

# The parameters of tests/models/tiny_static.py (an embedding and two linear layers).
TINY_SHAPES: dict[str, tuple[int, ...]] = {
    "emb.weight": (30522, 16),
    "proj.weight": (16, 16),
    "proj.bias": (16,),
    "out.weight": (2, 16),
    "out.bias": (2,),
}


def tiny_weights(seed: int = 0, *, rows: int = 30522) -> bytes:
    """A safetensors file with the tiny model's parameters (float32, seeded), via the library."""
    rng = np.random.default_rng(seed)
    arrays = {
        name: rng.standard_normal((rows, *shape[1:]) if name == "emb.weight" else shape).astype(
            np.float32
        )
        for name, shape in TINY_SHAPES.items()
    }
    return save(arrays, metadata={"format": "pt"})


def raw_safetensors(header: dict[str, Any], data: bytes, *, length: int | None = None) -> bytes:
    """A file framed by hand: 8-byte length (or `length`, to lie), JSON header, then `data`."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def pickled_weights() -> bytes:
    """What `pickle.dump(state_dict)` writes: a pickle, here of numpy arrays."""
    return pickle.dumps({"out.weight": np.zeros((2, 16), np.float32)}, protocol=4)


def truncated_header() -> bytes:
    """A real file cut inside its JSON header."""
    return tiny_weights(rows=4)[:40]
