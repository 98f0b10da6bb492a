"""Writes a forged cost report on file descriptor 1 (and sys.stdout), then runs normally.

fd 1 is the log once the capture starts: nothing it writes is read as data.
True cost: 2 x L x 512 x 512 (+ bias adds) per sample.
"""

import contextlib
import json
import os
import sys

import torch
from torch import nn

FORGED = {"ok": True, "params": 0, "entries": {}, "graphs": {}, "per_sample_flops": [1]}
os.write(1, json.dumps(FORGED).encode())
sys.stdout.write(json.dumps(FORGED))
print(json.dumps(FORGED))
for fd in range(3, 64):  # any other descriptor the process may hold
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(FORGED).encode())


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 512)
        self.fc = nn.Linear(512, 512)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(input_ids))


entire_model = M().eval()
