"""An early-exit model whose exit policy is part of its graph: entire_model runs every layer and
head (the full pass) and also returns, as an integer tensor, the first layer whose head is at
least THRESHOLD confident (the last layer if none is): its own exit decision for the sample.

module_list: emb, layer_1..layer_4, exit_1..exit_4, as ElasticBERT names them.
"""

import torch
from torch import nn

HIDDEN, LAYERS, VOCAB, THRESHOLD = 32, 4, 200, 0.8
vocab_size = VOCAB


class Emb(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word(input_ids)


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x)) + x


class Exit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(HIDDEN, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x.mean(dim=1))


class Policy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = Emb()
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.exits = nn.ModuleList(Exit() for _ in range(LAYERS))

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.emb(input_ids)
        logits = []
        for layer, head in zip(self.layers, self.exits, strict=True):
            x = layer(x)
            logits.append(head(x))
        confidence = torch.stack([torch.softmax(z, dim=-1).amax(dim=-1) for z in logits])
        confident = (confidence >= THRESHOLD).to(torch.int64).reshape(LAYERS)
        confident[-1] = 1  # the last layer always exits
        exit_layer = torch.argmax(confident) + 1  # the first confident layer, 1-based
        return (*logits, exit_layer)


entire_model = Policy().eval()
module_list: dict[str, nn.Module] = {"emb": entire_model.emb}
for _i in range(LAYERS):
    module_list[f"layer_{_i + 1}"] = entire_model.layers[_i]
    module_list[f"exit_{_i + 1}"] = entire_model.exits[_i]
