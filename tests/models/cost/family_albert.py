"""ALBERT-style: factorised embedding (1000x32 -> 64) and ONE layer shared by 3 calls.

Parameters are counted once (the shared layer's 49,984 once); FLOPs are per call (3 layers' worth).
"""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

H, HEADS, FFN, CALLS = 64, 4, 256, 3


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.ModuleList(nn.Linear(H, H) for _ in range(3))
        self.attn_out = nn.Linear(H, H)
        self.attn_norm = nn.LayerNorm(H)
        self.intermediate = nn.Linear(H, FFN)
        self.output = nn.Linear(FFN, H)
        self.out_norm = nn.LayerNorm(H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (m(x).view(b, n, HEADS, H // HEADS).transpose(1, 2) for m in self.qkv)
        scores = torch.matmul(q, k.transpose(-1, -2)) / 4.0
        ctx = torch.matmul(F.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, n, H)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.out_norm(x + self.output(F.gelu(self.intermediate(x))))


class Albert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(1000, 32)
        self.project = nn.Linear(32, H)
        self.shared = Layer()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.project(self.word(input_ids))
        for _ in range(CALLS):
            x = self.shared(x)
        return x[:, 0]


entire_model = Albert().eval()
