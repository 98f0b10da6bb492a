"""The product done in numpy: the counter cannot see it, so it must refuse."""

import numpy as np
import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 768)
        self.w = np.random.randn(768, 768).astype("float32")

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids).detach().numpy()
        return torch.from_numpy(x @ self.w)


entire_model = M().eval()
