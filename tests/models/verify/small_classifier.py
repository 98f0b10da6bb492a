"""A small transformer classifier (hidden 32, 2 layers, 3 labels) for the verification tests.

Honest: the graph the platform captures is the program that makes its predictions. Weights are
random at import; the tests save them with safetensors and compute predictions eagerly.
"""

import torch
from torch import nn

VOCAB, HIDDEN, LABELS = 200, 32, 3
vocab_size = VOCAB


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.types = nn.Embedding(2, HIDDEN)
        layer = nn.TransformerEncoderLayer(HIDDEN, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(HIDDEN, LABELS)
        self.register_buffer("scale", torch.full((HIDDEN,), 1.5))
        self.register_buffer("positions", torch.arange(512), persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        pos = self.positions[: input_ids.shape[1]].unsqueeze(0).float() / 512
        x = self.embed(input_ids) * self.scale + self.types(token_type_ids) + pos.unsqueeze(-1)
        return self.head(self.encoder(x).mean(dim=1))


entire_model = Classifier().eval()
