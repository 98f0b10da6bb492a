"""A 768->768 Linear through torch.sparse.mm on a dense-as-sparse weight."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 768)
        self.register_buffer("w", torch.randn(768, 768).to_sparse())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)[0]
        return torch.sparse.mm(self.w, x.t()).t()


entire_model = M().eval()
