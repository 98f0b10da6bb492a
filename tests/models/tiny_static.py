"""A tiny static classifier: embedding, one linear layer over the mean (cost independent of L)."""

import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30522, 16)
        self.proj = nn.Linear(16, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(input_ids)
        h = torch.tanh(self.proj(h))  # per token: cost grows with L
        return self.out(h.mean(dim=1))


entire_model = Tiny()
