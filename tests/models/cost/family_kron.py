"""KroneckerBERT-style factored Linear, 256 -> 256 as A (16x16) kron B (16x16), in two forms.

- kron form: W = torch.kron(A, B) materialised, then x @ W^T: 2 L 256^2 (+ 256^2 for kron).
- einsum form: X (L, 16, 16) contracted with A then B: 2 x 2 L 16^3.
"""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(1000, 256)
        self.a = nn.Parameter(torch.randn(16, 16))
        self.b = nn.Parameter(torch.randn(16, 16))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids)[0]
        dense = x @ torch.kron(self.a, self.b).t()
        n = x.shape[0]
        factored = torch.einsum("lij,ai,bj->lab", x.reshape(n, 16, 16), self.a, self.b)
        return dense + factored.reshape(n, 256)


entire_model = M().eval()
