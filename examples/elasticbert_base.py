"""ElasticBERT-base: a multi-exit BERT-base (12 layers, an exit head after each), random weights.

Model file contract (see examples/README.md): `entire_model` (all modules, for the parameter
count and a full pass) and `module_list` with `emb`, `layer_1`..`layer_12`, `exit_1`..`exit_12`:
- `emb`: token ids (L) -> hidden states (L, 768): word + position + token-type embeddings, LayerNorm.
- `layer_i`: hidden states (L, 768) -> (L, 768): one BERT-base transformer layer (no padding mask:
  a sample is run unpadded).
- `exit_i`: the [CLS] vector (768) -> 2 logits (pooler dense + tanh, then a classifier); it also
  accepts the whole sequence (L, 768) and takes position 0. Same cost either way.
Cost of a sample that exits after layer k: emb(L) + sum_{i<=k} [layer_i(L, 768) + exit_i(768)].
Parameters: 23,837,184 (emb) + 12 x 7,087,872 (layers) + 12 x 592,130 (exits) = 115,997,208.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

HIDDEN = 768
LAYERS = 12
HEADS = 12
FFN = 3072
VOCAB = 30522
POSITIONS = 512
TYPES = 2
LABELS = 2

vocab_size = VOCAB


class Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
        self.position_embeddings = nn.Embedding(POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(TYPES, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.LayerNorm(x))


class Layer(nn.Module):
    """One BERT-base layer: self-attention (eager), residual + LayerNorm, FFN, residual + LN."""

    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.attn_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.intermediate = nn.Linear(HIDDEN, FFN)
        self.output = nn.Linear(FFN, HIDDEN)
        self.out_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, HEADS, HIDDEN // HEADS).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(HIDDEN // HEADS)
        if mask_bias is not None:
            scores = scores + mask_bias
        ctx = torch.matmul(self.dropout(F.softmax(scores, dim=-1)), v)
        b, _, n, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(b, n, HIDDEN)
        x = self.attn_norm(x + self.dropout(self.attn_out(ctx)))
        return self.out_norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))


class Exit(nn.Module):
    """Exit head: pooler (dense + tanh on [CLS]) and classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(HIDDEN, LABELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # (batch, L, hidden): take [CLS]
            x = x[:, 0]
        return self.classifier(self.dropout(torch.tanh(self.pooler(x))))


class ElasticBert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = Embeddings()
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.exits = nn.ModuleList(Exit() for _ in range(LAYERS))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Full pass: the logits of every exit."""
        x = self.emb(input_ids, token_type_ids)
        mask_bias = None
        if attention_mask is not None:
            keep = attention_mask[:, None, None, :].to(x.dtype)
            mask_bias = (1.0 - keep) * torch.finfo(x.dtype).min
        logits = []
        for layer, head in zip(self.layers, self.exits, strict=True):
            x = layer(x, mask_bias)
            logits.append(head(x[:, 0]))
        return tuple(logits)


entire_model = ElasticBert().eval()
module_list: dict[str, nn.Module] = {"emb": entire_model.emb}
for _i in range(LAYERS):
    module_list[f"layer_{_i + 1}"] = entire_model.layers[_i]
    module_list[f"exit_{_i + 1}"] = entire_model.exits[_i]
