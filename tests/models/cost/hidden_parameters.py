"""Weights hidden from named_parameters(): a buffer, a plain tensor attribute and a closure.

Every one of them is read by the graph, so every one counts: 3 x 256 x 256 + 1000 x 256.
named_parameters() is also overridden to report nothing.
"""

import torch
from torch import nn

_CLOSED_OVER = torch.randn(256, 256)


def _project(x: torch.Tensor) -> torch.Tensor:
    return x @ _CLOSED_OVER


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 256)
        self.register_buffer("w_buffer", torch.randn(256, 256))
        self.w_plain = torch.randn(256, 256)

    def named_parameters(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return iter(())

    def parameters(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return iter(())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)
        return _project(x @ self.w_buffer @ self.w_plain)


entire_model = M().eval()
