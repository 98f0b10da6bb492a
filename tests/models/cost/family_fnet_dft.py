"""FNet token mixing written as DFT matrices in complex arithmetic: Re(F_L @ X @ F_H), hidden 64.

F_L (L x L) is built in forward from the length; F_H (64 x 64) is a complex buffer. Each complex
multiply-accumulate is 4 real ones: 8 FLOPs. True products: 8 L^2 64 + 8 L 64^2.
"""

import math

import torch
from torch import nn

H = 64


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(1000, H)
        k = torch.arange(H, dtype=torch.float32)
        angle = -2 * math.pi * torch.outer(k, k) / H
        self.register_buffer("f_h", torch.complex(torch.cos(angle), torch.sin(angle)))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids)[0]
        n = x.shape[0]
        t = torch.arange(n, dtype=torch.float32)
        angle = -2 * math.pi * torch.outer(t, t) / n
        f_l = torch.complex(torch.cos(angle), torch.sin(angle))
        mixed = f_l @ x.to(torch.complex64) @ self.f_h
        return mixed.real


entire_model = M().eval()
