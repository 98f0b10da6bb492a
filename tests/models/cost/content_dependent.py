"""Exits early when the first token is small: its cost depends on the content. Refused up front."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 256)
        self.layers = nn.ModuleList(nn.Linear(256, 256) for _ in range(6))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == 1 and input_ids[0, 0] < 50:
                break
        return x[:, 0]


entire_model = M().eval()
