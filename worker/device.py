"""Which device the cost worker counts on."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def detect_device(preference: str) -> str:
    """'cuda' when asked for (or 'auto' and CUDA is present), else 'cpu'."""
    if preference == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if preference == "cuda" and not available:
        raise RuntimeError("PARETOBOARD_LIMITS__COST_DEVICE=cuda but this host has no CUDA device")
    if not available:
        log.warning("no CUDA device on this worker host: counting on the CPU")
        return "cpu"
    return "cuda"
