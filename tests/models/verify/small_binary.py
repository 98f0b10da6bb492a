"""A small transformer classifier with 2 labels (SST-2, MRPC, SciTail) for the end-to-end
verification tests; random weights at import (the tests upload their own)."""

import torch
from torch import nn

VOCAB, HIDDEN, LABELS = 30522, 16, 2
vocab_size = VOCAB


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        layer = nn.TransformerEncoderLayer(HIDDEN, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(HIDDEN, LABELS)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(input_ids)).mean(dim=1))


entire_model = Classifier().eval()
