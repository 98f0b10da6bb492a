"""Training examples/dan.py's deep averaging network on a task's DEV split, then predicting its
test inputs: the seeded example submission's honest predictions.

The trainer only ever sees the dev rows (texts and their public labels) and the test INPUTS
(`LabelledRows` / plain texts); it has no session and cannot read the hidden test gold.

The network is the `DAN` class of examples/dan.py itself (loaded with `runpy`), so the trained
model is an instance of the submitted file's architecture; only its weights differ, which the
cost counter ignores. Token ids come from the bert-base-uncased tokenizer exactly as the service
tokenizes submissions (sentence pairs encoded as pairs: [CLS] a [SEP] b [SEP]).

Training: embedding rows start at zero (a row never seen in the dev split stays zero, so such
tokens add nothing to the average); Adam (lr 1e-3), batches of 32, up to `epochs` epochs on 90%
of the dev rows (stopping after `patience` epochs without progress); the weights of the epoch
with the lowest loss on the other 10% are kept. For
speed the embedding table is trained compactly over the token ids the dev split uses, then copied
into the full 30,522-row table (identical result: Adam leaves rows with zero gradient at zero).
Classification needs as many labels as the file's classifier has outputs (2): SNLI (3 labels) is
therefore not trainable with examples/dan.py and is skipped. Regression (STS-B) uses the two
logits as a score: prediction = lo + (hi - lo) * softmax(logits)[1], with [lo, hi] the file's
SCORE_RANGE (its forward returns that score as its second output, so the platform's run of the
graph reproduces the prediction), trained with cross-entropy against the soft target
(y - lo) / (hi - lo). The trained weights (`DanOutcome.state`) are submitted with the
predictions, so the seeded entry is verified (docs/verification.md).
"""

from __future__ import annotations

import contextlib
import runpy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from core.metrics import compute_metrics
from core.settings import REPO_ROOT
from core.tasks.manifest import LabelKind, TaskManifest
from core.tokenizers import encode

DAN_FILE = REPO_ROOT / "examples" / "dan.py"


@dataclass(frozen=True, slots=True)
class LabelledRows:
    """A task's dev split: one or two texts per row, and the row's public label (as stored)."""

    texts: Sequence[tuple[str, ...]]
    labels: Sequence[str]


@dataclass(frozen=True, slots=True)
class DanSetup:
    seed: int = 0
    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 32
    holdout: float = 0.1  # fraction of the dev rows kept aside to pick the epoch
    patience: int = 2  # stop after this many epochs without a better held-out loss
    threads: int = 1


@dataclass(slots=True)
class DanOutcome:
    task: str
    predictions: list[str] = field(default_factory=list)  # one per test row, in index order
    best_epoch: int = 0  # 1-based
    holdout_rows: int = 0
    holdout_performance: float | None = None  # the task metric on the held-out dev rows, x100
    skipped: str | None = None  # why no predictions were made
    state: dict[str, torch.Tensor] | None = None  # the trained weights (examples/dan.py's names)


def load_dan_class(path: Path = DAN_FILE) -> type[nn.Module]:
    """The `DAN` class defined by the example model file (run as the sandbox runs it)."""
    namespace = runpy.run_path(str(path), run_name="__paretoboard_seed__")
    cls = namespace["DAN"]
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"{path}: DAN is not an nn.Module class")
    return cls


def untrainable_reason(manifest: TaskManifest, outputs: int) -> str | None:
    if manifest.label_kind is LabelKind.REGRESSION:
        return None if outputs == 2 else f"the model has {outputs} outputs, regression needs 2"
    if len(manifest.labels) != outputs:
        return (
            f"{manifest.name} has {len(manifest.labels)} labels and examples/dan.py's "
            f"classifier has {outputs} outputs"
        )
    return None


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _bags(ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    flat = torch.tensor([t for x in ids for t in x], dtype=torch.long)
    offsets = torch.tensor(np.cumsum([0, *[len(x) for x in ids[:-1]]]), dtype=torch.long)
    return flat, offsets


def dan_logits(model: Any, ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """`model.forward` on each sample, batched: EmbeddingBag means over (flat ids, offsets)."""
    flat, offsets = _bags(ids)
    out: torch.Tensor = model.classifier(model.hidden(model.embed(flat, offsets)))
    return out


def train_and_predict(
    manifest: TaskManifest,
    dev: LabelledRows,
    test_inputs: Sequence[tuple[str, ...]],
    tokenizer: Tokenizer,
    setup: DanSetup = DanSetup(),
    *,
    dan_class: type[nn.Module] | None = None,
) -> DanOutcome:
    """Train on `dev`, predict `test_inputs`; see the module docstring."""
    outcome = DanOutcome(task=manifest.name)
    cls = dan_class or load_dan_class()
    with _threads(setup.threads):
        torch.manual_seed(setup.seed)
        model: Any = cls()
        outputs = int(model.classifier.out_features)
        if (reason := untrainable_reason(manifest, outputs)) is not None:
            outcome.skipped = reason
            return outcome
        if len(dev.texts) < 10 or len(dev.texts) != len(dev.labels):
            outcome.skipped = f"{manifest.name} has no usable dev split ({len(dev.texts)} rows)"
            return outcome
        regression = manifest.label_kind is LabelKind.REGRESSION
        targets = np.array(
            [float(v) for v in dev.labels]
            if regression
            else [manifest.labels.index(v) for v in dev.labels]
        )
        score_range = cls.forward.__globals__.get("SCORE_RANGE", (0.0, 1.0))
        lo, hi = (float(score_range[0]), float(score_range[1])) if regression else (0.0, 1.0)
        if regression:
            targets = np.clip(targets, lo, hi)
        if regression and float(targets.max()) <= float(targets.min()):
            outcome.skipped = f"{manifest.name}: the dev labels are all equal"
            return outcome

        dev_ids = encode(tokenizer, list(dev.texts))
        test_ids = encode(tokenizer, list(test_inputs))
        vocab = sorted({t for x in dev_ids for t in x})
        compact_of = {t: i + 1 for i, t in enumerate(vocab)}  # 0: any id the dev split lacks
        dev_c = [[compact_of[t] for t in x] or [0] for x in dev_ids]

        full_embed = model.embed
        model.embed = nn.EmbeddingBag(len(vocab) + 1, full_embed.embedding_dim, mode="mean")
        nn.init.zeros_(model.embed.weight)

        def loss_of(logits: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
            if regression:
                p = torch.tensor((targets[idx] - lo) / (hi - lo), dtype=torch.float32)
                logp = torch.log_softmax(logits, dim=-1)
                return -(p * logp[:, 1] + (1 - p) * logp[:, 0]).mean()
            return nn.functional.cross_entropy(logits, torch.tensor(targets[idx], dtype=torch.long))

        rng = np.random.default_rng(setup.seed)
        order = rng.permutation(len(dev_c))
        n_hold = max(1, int(len(order) * setup.holdout))
        hold, train = order[:n_hold], order[n_hold:]
        optimizer = torch.optim.Adam(model.parameters(), lr=setup.lr)
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        for epoch in range(1, setup.epochs + 1):
            model.train()
            train = rng.permutation(train)
            for start in range(0, len(train), setup.batch_size):
                idx = train[start : start + setup.batch_size]
                optimizer.zero_grad()
                loss = loss_of(dan_logits(model, [dev_c[i] for i in idx]), idx)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            model.eval()
            with torch.no_grad():
                held = loss_of(dan_logits(model, [dev_c[i] for i in hold]), hold).item()
            if best is None or held < best[0]:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (held, epoch, state)
            elif epoch - best[1] >= setup.patience:
                break
        assert best is not None
        model.load_state_dict(best[2])
        outcome.best_epoch = best[1]

        # Back into the file's own full-vocabulary embedding table.
        with torch.no_grad():
            full_embed.weight.zero_()
            full_embed.weight[torch.tensor(vocab, dtype=torch.long)] = model.embed.weight[1:]
        model.embed = full_embed
        model.eval()

        def predict(ids: Sequence[Sequence[int]]) -> np.ndarray:
            with torch.no_grad():
                logits = torch.cat(
                    [dan_logits(model, ids[i : i + 512]) for i in range(0, len(ids), 512)]
                )
            if regression:
                return (lo + (hi - lo) * torch.softmax(logits, dim=-1)[:, 1]).double().numpy()
            return logits.argmax(dim=-1).numpy()

        held_pred = predict([dev_ids[i] for i in hold])
        if regression:
            outcome.holdout_performance = compute_metrics(
                manifest, targets[hold], held_pred
            ).performance
            outcome.predictions = [f"{v:.4f}" for v in predict(test_ids)]
        else:
            outcome.holdout_performance = compute_metrics(
                manifest, targets[hold].astype(np.int64), held_pred
            ).performance
            outcome.predictions = [manifest.labels[int(k)] for k in predict(test_ids)]
        outcome.holdout_rows = int(n_hold)
        outcome.state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return outcome
