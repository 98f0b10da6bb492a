"""F.bilinear(x, x, W) with W (64, 768, 768): 64 x 768 x 768 x 2 MACs per token (or more)."""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 768)
        self.w = nn.Parameter(torch.randn(64, 768, 768))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)
        return F.bilinear(x, x, self.w)


entire_model = M().eval()
