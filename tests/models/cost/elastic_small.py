"""A small ElasticBERT-style early-exit model: hidden 64, 4 heads, FFN 256, 4 layers, an exit after each.

module_list: emb, layer_1..layer_4, exit_1..exit_4 (each exit takes the [CLS] vector (64)), plus two
liars for the lying-path tests: `stand_in` (a copy of layer_1 that entire_model does not hold) and
`unused` (a submodule entire_model holds but its forward never calls).
"""

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

HIDDEN, HEADS, FFN, LAYERS, VOCAB = 64, 4, 256, 4, 1000


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


class Elastic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = Emb()
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.exits = nn.ModuleList(Exit() for _ in range(LAYERS))
        self.unused = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.emb(input_ids)
        logits = []
        for layer, head in zip(self.layers, self.exits, strict=True):
            x = layer(x)
            logits.append(head(x[:, 0]))
        return tuple(logits)


entire_model = Elastic().eval()
module_list: dict[str, nn.Module] = {"emb": entire_model.emb}
for _i in range(LAYERS):
    module_list[f"layer_{_i + 1}"] = entire_model.layers[_i]
    module_list[f"exit_{_i + 1}"] = entire_model.exits[_i]
module_list["stand_in"] = Layer()
module_list["unused"] = entire_model.unused
