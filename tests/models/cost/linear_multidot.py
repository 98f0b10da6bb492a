"""Two 768x768 Linears chained with torch.linalg.multi_dot: 2 x 2 x L x 768 x 768."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 768)
        self.w1 = nn.Parameter(torch.randn(768, 768))
        self.w2 = nn.Parameter(torch.randn(768, 768))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)[0]
        return torch.linalg.multi_dot([x, self.w1, self.w2])


entire_model = M().eval()
