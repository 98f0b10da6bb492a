"""conv_tbc with kernel 1 over 768 -> 768 channels: a Linear per token (2 x L x 768 x 768)."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 768)
        self.w = nn.Parameter(torch.randn(1, 768, 768))
        self.b = nn.Parameter(torch.zeros(768))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids).transpose(0, 1)  # (time, batch, channels)
        return torch.conv_tbc(x, self.w, self.b, 0)


entire_model = M().eval()
