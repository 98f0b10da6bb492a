"""aten._addmm_activation (a fused Linear + GELU) 768 -> 768."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 768)
        self.w = nn.Parameter(torch.randn(768, 768))
        self.b = nn.Parameter(torch.zeros(768))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)[0]
        return torch.ops.aten._addmm_activation(self.b, x, self.w, use_gelu=True)


entire_model = M().eval()
