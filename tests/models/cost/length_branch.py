"""Long inputs (over 16 tokens) go through an extra 256x256 Linear: a Python branch on the length.

True cost: 2 x L x 256 x 2 (+2L bias) always, plus 2 x L x 256 x 256 (+256L bias) when L > 16.
"""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 256)
        self.big = nn.Linear(256, 256)
        self.small = nn.Linear(256, 2)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)
        if input_ids.shape[1] > 16:
            x = self.big(x)
        return self.small(x)


entire_model = M().eval()
