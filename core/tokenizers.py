"""Tokenizers the service uses to measure input lengths (the submission names one or uploads one)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from core.errors import InvalidInputError, Problem

DEFAULT_TOKENIZER = "bert-base-uncased"
TOKENIZER_FILE = "tokenizer.json"


def registered_tokenizers(root: Path) -> dict[str, Path]:
    """Name -> tokenizer.json for every folder below `root` that holds one."""
    if not root.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(root.glob(f"*/{TOKENIZER_FILE}"))}


def load_tokenizer(path: Path, *, max_tokens: int, file_name: str | None = None) -> Tokenizer:
    """A tokenizer with no padding and truncation at `max_tokens`, whatever its file says."""
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # the tokenizers library raises plain Exception subclasses
        raise InvalidInputError(
            "Tokenizer file could not be loaded",
            [
                Problem(
                    f"not a `tokenizers` JSON file: {str(exc)[:300]}", file=file_name or path.name
                )
            ],
        ) from exc
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens, strategy="longest_first")
    return tok


@lru_cache(maxsize=16)
def _cached(path: str, max_tokens: int, mtime: float) -> Tokenizer:
    return load_tokenizer(Path(path), max_tokens=max_tokens)


def cached_tokenizer(path: Path, *, max_tokens: int) -> Tokenizer:
    return _cached(str(path), max_tokens, path.stat().st_mtime)


def encode(tok: Tokenizer, texts: Sequence[tuple[str, ...]]) -> list[list[int]]:
    """Token ids per example; pairs are encoded as pairs (with the tokenizer's special tokens)."""
    if not texts:
        return []
    if len(texts[0]) == 2:
        encodings = tok.encode_batch([(a, b) for a, b in texts])
    else:
        encodings = tok.encode_batch([t[0] for t in texts])
    return [e.ids for e in encodings]


def lengths(tok: Tokenizer, texts: Sequence[tuple[str, ...]]) -> np.ndarray:
    """Token count per example (int64)."""
    return np.array([len(ids) for ids in encode(tok, texts)], dtype=np.int64)
