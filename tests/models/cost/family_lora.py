"""A 128 -> 128 Linear with a rank-8 LoRA branch (scaled) and a bottleneck adapter (128 -> 16 -> 128)."""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(1000, 128)
        self.base = nn.Linear(128, 128)
        self.lora_a = nn.Linear(128, 8, bias=False)
        self.lora_b = nn.Linear(8, 128, bias=False)
        self.down = nn.Linear(128, 16)
        self.up = nn.Linear(16, 128)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids)
        h = self.base(x) + self.lora_b(self.lora_a(x)) * 2.0
        return h + self.up(F.relu(self.down(h)))


entire_model = M().eval()
