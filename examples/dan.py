"""Deep averaging network (Iyyer et al., 2015): mean of word embeddings, 2 hidden layers, classifier.

Model file contract (see examples/README.md): `entire_model` only; its forward takes the token ids
alone (no attention_mask / token_type_ids), so only `input_ids` is passed. Random weights (the
seeded example trains it per task and submits the weights: docs/verification.md).
Output: the two logits (classification: the prediction is their argmax) and a score in
SCORE_RANGE (regression, STS-B: lo + (hi - lo) x softmax(logits)[1]).
Parameters: 30,522 x 300 (embeddings) + 2 x (300 x 300 + 300) + (300 x 2 + 2) = 9,337,802.
Cost: 2 x (2 x 300 x 300 + 300 x 2) = 361,200 FLOPs at any length; the averaging itself
(`aten::embedding_bag`) and the ReLUs are not costed and show in `uncounted`.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 30522
DIM = 300
LABELS = 2
SCORE_RANGE = (0.0, 5.0)

vocab_size = VOCAB


class DAN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(VOCAB, DIM, mode="mean")
        self.hidden = nn.Sequential(
            nn.Linear(DIM, DIM), nn.ReLU(), nn.Dropout(0.3), nn.Linear(DIM, DIM), nn.ReLU()
        )
        self.classifier = nn.Linear(DIM, LABELS)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(self.hidden(self.embed(tokens)))
        lo, hi = SCORE_RANGE
        score = lo + (hi - lo) * torch.softmax(logits, dim=-1)[..., 1]
        return logits, score


entire_model = DAN().eval()
