"""The honest reference for the forged/patched files: Embedding(1000, 512) + Linear(512, 512)."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 512)
        self.fc = nn.Linear(512, 512)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(input_ids))


entire_model = M().eval()
