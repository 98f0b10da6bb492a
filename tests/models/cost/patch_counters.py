"""Rewrites the counters' rules in its module body: nothing it touches is used by the counter.

The patched libraries live in the sandbox's process; the count is made in another process.
True cost: 2 x L x 512 x 512 (+ bias adds) per sample.
"""

import torch
import torch.utils.flop_counter as flop_counter
from torch import nn

try:
    import fvcore.nn.jit_handles as handles

    handles.addmm_flop_jit = lambda inputs, outputs: 0  # type: ignore[assignment]
    handles.matmul_flop_jit = lambda inputs, outputs: 0  # type: ignore[assignment]
except ImportError:
    pass
flop_counter.mm_flop = lambda *a, **k: 0  # type: ignore[assignment]
flop_counter.addmm_flop = lambda *a, **k: 0  # type: ignore[assignment]
for key in list(flop_counter.flop_registry):
    flop_counter.flop_registry[key] = lambda *a, **k: 0

try:  # the new counter's modules, if the model could reach them
    import worker.graphcount.rules as rules

    rules.RULES.clear()
except Exception:
    pass


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 512)
        self.fc = nn.Linear(512, 512)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(input_ids))


entire_model = M().eval()
