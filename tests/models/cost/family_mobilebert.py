"""MobileBERT-style bottleneck block with NoNorm (x * gamma + beta, no LayerNorm), 2 blocks.

Per block: 128 -> 32 bottleneck (in), attention at 32 (2 heads), 2 stacked FFNs 32 -> 64 -> 32 (relu),
32 -> 128 (out); NoNorm after attention, each FFN and the output (2 FLOPs per element).
"""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

OUTER, INNER, HEADS, FFN, BLOCKS = 128, 32, 2, 64, 2


class NoNorm(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Linear(OUTER, INNER)
        self.qkv = nn.ModuleList(nn.Linear(INNER, INNER) for _ in range(3))
        self.attn_out = nn.Linear(INNER, INNER)
        self.attn_norm = NoNorm(INNER)
        self.ffn_in = nn.ModuleList(nn.Linear(INNER, FFN) for _ in range(2))
        self.ffn_out = nn.ModuleList(nn.Linear(FFN, INNER) for _ in range(2))
        self.ffn_norm = nn.ModuleList(NoNorm(INNER) for _ in range(2))
        self.up = nn.Linear(INNER, OUTER)
        self.out_norm = NoNorm(OUTER)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h = self.down(x)
        q, k, v = (m(h).view(b, n, HEADS, INNER // HEADS).transpose(1, 2) for m in self.qkv)
        scores = torch.matmul(q, k.transpose(-1, -2)) / 4.0
        ctx = torch.matmul(F.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, n, INNER)
        h = self.attn_norm(h + self.attn_out(ctx))
        for fin, fout, norm in zip(self.ffn_in, self.ffn_out, self.ffn_norm, strict=True):
            h = norm(h + fout(F.relu(fin(h))))
        return self.out_norm(x + self.up(h))


class MobileBert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(1000, OUTER)
        self.blocks = nn.ModuleList(Block() for _ in range(BLOCKS))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids)
        for block in self.blocks:
            x = block(x)
        return x[:, 0]


entire_model = MobileBert().eval()
