"""An int8 Linear written with plain tensors: int8 weight (256x256) and a scale, dequantised in forward."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(1000, 256)
        self.register_buffer("w_int8", torch.randint(-127, 128, (256, 256), dtype=torch.int8))
        self.register_buffer("scale", torch.tensor(0.01))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids)
        return x @ (self.w_int8.float() * self.scale).t()


entire_model = M().eval()
