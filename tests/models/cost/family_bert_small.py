"""DistilBERT/TinyBERT-style: a BERT with fewer, narrower layers (hidden 64, 4 heads, FFN 256, 2 layers).

True cost (ranking FLOPs, per the rule table): see tests/test_trusted_cost.py::bert_flops.
"""

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

HIDDEN, HEADS, FFN, LAYERS, VOCAB = 64, 4, 256, 2, 1000


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.attn_norm = nn.LayerNorm(HIDDEN)
        self.intermediate = nn.Linear(HIDDEN, FFN)
        self.output = nn.Linear(FFN, HIDDEN)
        self.out_norm = nn.LayerNorm(HIDDEN)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, HEADS, HIDDEN // HEADS).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(HIDDEN // HEADS)
        ctx = torch.matmul(F.softmax(scores, dim=-1), v)
        b, _, n, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(b, n, HIDDEN)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.out_norm(x + self.output(F.gelu(self.intermediate(x))))


class Emb(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.position = nn.Embedding(512, HIDDEN)
        self.token_type = nn.Embedding(2, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        types = torch.zeros_like(input_ids)
        return self.norm(self.word(input_ids) + self.position(positions) + self.token_type(types))


class Exit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.pooler(x)))


class Bert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = Emb()
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.head = Exit()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.head(x[:, 0])


entire_model = Bert().eval()
