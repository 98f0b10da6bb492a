"""A 768->768 Linear as embedding_bag with per_sample_weights: y[t] = sum_i x[t, i] W[i].

Each token's bag looks up all 768 rows of W (768 wide), weighted by x[t]: 2 x L x 768 x 768.
"""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 768)
        self.w = nn.Parameter(torch.randn(768, 768))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)[0]  # (L, 768)
        n = x.shape[0]
        idx = torch.arange(768).repeat(n)
        offsets = torch.arange(0, n * 768, 768)
        return F.embedding_bag(idx, self.w, offsets, mode="sum", per_sample_weights=x.reshape(-1))


entire_model = M().eval()
