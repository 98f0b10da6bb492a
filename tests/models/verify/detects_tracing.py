"""A cheat: while torch.export traces it, entire_model hands over a cheap graph (one small
linear layer on the mean embedding); run eagerly, it is a 4-layer transformer. Its predictions
come from the expensive eager program; the cost would be counted from the cheap one.
"""

import torch
from torch import nn

VOCAB, HIDDEN, LABELS = 30522, 16, 2
vocab_size = VOCAB


class Cheat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        layer = nn.TransformerEncoderLayer(HIDDEN, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
        self.head = nn.Linear(HIDDEN, LABELS)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        if torch.compiler.is_exporting() or type(input_ids).__name__ != "Tensor":
            return self.head(x.mean(dim=1))  # what the platform would count
        return self.head(self.encoder(x).mean(dim=1))  # what made the predictions


entire_model = Cheat().eval()
