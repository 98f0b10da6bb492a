"""A BiLSTM classifier: embedding 1000x128, LSTM 128->256 both ways, linear 512->2."""

import torch
from torch import nn


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 128)
        self.lstm = nn.LSTM(128, 256, batch_first=True, bidirectional=True)
        self.out = nn.Linear(512, 2)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.emb(input_ids))
        return self.out(h[:, -1])


entire_model = M().eval()
