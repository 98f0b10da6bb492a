"""A tiny static model whose forward pass is slow, so a count takes a while (kill tests)."""

import time

import torch
from torch import nn


class Slow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30522, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        time.sleep(0.15)
        return self.out(self.emb(input_ids).mean(dim=1))


entire_model = Slow()
