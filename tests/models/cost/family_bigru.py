"""A BiGRU classifier: embedding 1000x64, GRU 64 -> 128 both ways, linear 256 -> 2."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 64)
        self.gru = nn.GRU(64, 128, batch_first=True, bidirectional=True)
        self.out = nn.Linear(256, 2)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.emb(input_ids))
        return self.out(h[:, -1])


entire_model = M().eval()
