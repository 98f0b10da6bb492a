"""An int8 quantize_dynamic model: packed weights cannot be captured; refused with advice."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 256)
        self.fc = nn.Linear(256, 256)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(input_ids))


entire_model = torch.ao.quantization.quantize_dynamic(M().eval(), {nn.Linear}, dtype=torch.qint8)
