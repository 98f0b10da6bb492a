"""FNet-style encoder (Lee-Thorp et al., 2021): token mixing by a 2-D Fourier transform.

Small: 4 layers, hidden 256, FFN 1024, vocab 30,522, 512 positions, 2 labels; random weights.
Each layer: x = LayerNorm(x + Re(FFT2(x)) over (sequence, hidden)); x = LayerNorm(x + FFN(x)).
Model file contract (see examples/README.md): `entire_model`, and a `module_list` with `emb`,
`layer_1`..`layer_4` and `head` (pooler + classifier on [CLS], input (256)).

The FFT is not a matrix product: fvcore would not cost it. The counter charges an FFT of N points
5 N log2 N FLOPs (complex; half for real-input/-output transforms) and shows it as `fft_fft2` in
the per-operator breakdown; the `.real` that follows is a view (zero cost).
Parameters: 7,945,728 (embeddings) + 4 x 526,592 (layers) + 65,792 (pooler) + 514 = 10,118,402.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

HIDDEN = 256
LAYERS = 4
FFN = 1024
VOCAB = 30522
POSITIONS = 512
TYPES = 2
LABELS = 2

vocab_size = VOCAB


class Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.position = nn.Embedding(POSITIONS, HIDDEN)
        self.token_type = nn.Embedding(TYPES, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.norm(x)


class FourierLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mix_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.intermediate = nn.Linear(HIDDEN, FFN)
        self.output = nn.Linear(FFN, HIDDEN)
        self.out_norm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.fft.fft2(x, dim=(-2, -1)).real
        x = self.mix_norm(x + mixed)
        return self.out_norm(x + self.output(F.gelu(self.intermediate(x))))


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, LABELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, 0]
        return self.classifier(torch.tanh(self.pooler(x)))


class FNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = Embeddings()
        self.layers = nn.ModuleList(FourierLayer() for _ in range(LAYERS))
        self.head = Head()

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        # No attention_mask parameter: FNet mixes every position, so inputs are never padded.
        x = self.emb(input_ids, token_type_ids)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


entire_model = FNet().eval()
module_list: dict[str, nn.Module] = {"emb": entire_model.emb, "head": entire_model.head}
for _i, _layer in enumerate(entire_model.layers, start=1):
    module_list[f"layer_{_i}"] = _layer
