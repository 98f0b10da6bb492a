"""Task manifests: what a task is (metric, labels, text columns) independent of where its data lies."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import Problem, TaskDataError

MANIFEST_FILE = "task.json"


class Metric(enum.StrEnum):
    """The task metric; every one is reported x100 with its components kept."""

    ACCURACY = "accuracy"
    ACCURACY_F1 = "accuracy_f1"  # MRPC: mean(accuracy, F1 of the positive class)
    PEARSON_SPEARMAN = "pearson_spearman"  # STS-B: mean(Pearson, Spearman)


class LabelKind(enum.StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class Family(enum.StrEnum):
    SENTIMENT = "sentiment"
    NLI = "nli"
    SIMILARITY = "similarity"  # similarity and paraphrase


class TaskManifest(BaseModel):
    """Everything the service needs to know about a task besides its rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    display_name: str
    family: Family
    metric: Metric
    label_kind: LabelKind
    # Classification: the allowed prediction strings, in gold order. Regression: empty.
    labels: tuple[str, ...] = ()
    positive_label: str | None = None  # the F1 positive class (MRPC: "1")
    # Text columns in test.tsv (and dev.tsv / test_full.tsv), in model-input order (1 or 2).
    text_columns: tuple[str, ...]
    # Column holding the gold label in test_full.tsv and dev.tsv.
    label_column: str = "label"
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> TaskManifest:
        if not 1 <= len(self.text_columns) <= 2:
            raise ValueError("text_columns must name one or two columns")
        if self.label_kind is LabelKind.CLASSIFICATION:
            if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
                raise ValueError("a classification task needs two or more distinct labels")
            if self.metric is Metric.PEARSON_SPEARMAN:
                raise ValueError("pearson_spearman needs a regression task")
        else:
            if self.labels:
                raise ValueError("a regression task has no label set")
            if self.metric is not Metric.PEARSON_SPEARMAN:
                raise ValueError(f"metric {self.metric} needs a classification task")
        if self.metric is Metric.ACCURACY_F1 and self.positive_label not in self.labels:
            raise ValueError("accuracy_f1 needs positive_label, one of labels")
        return self

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2


_FAMILY_TEXT = {
    Family.SENTIMENT: "sentiment analysis",
    Family.NLI: "natural language inference",
    Family.SIMILARITY: "similarity and paraphrase",
}


def family_title(family: Family) -> str:
    """Human-readable family name used on pages and in tables."""
    return _FAMILY_TEXT[family]


# The six ELUE tasks. IMDb's data is not shipped here, but its manifest is known.
ELUE_MANIFESTS: dict[str, TaskManifest] = {
    m.name: m
    for m in (
        TaskManifest(
            name="SST-2",
            display_name="SST-2",
            family=Family.SENTIMENT,
            metric=Metric.ACCURACY,
            label_kind=LabelKind.CLASSIFICATION,
            labels=("0", "1"),
            text_columns=("sentence",),
            description="Stanford Sentiment Treebank, binary sentence-level sentiment.",
        ),
        TaskManifest(
            name="IMDb",
            display_name="IMDb",
            family=Family.SENTIMENT,
            metric=Metric.ACCURACY,
            label_kind=LabelKind.CLASSIFICATION,
            labels=("0", "1"),
            text_columns=("sentence",),
            description="IMDb movie reviews, binary document-level sentiment.",
        ),
        TaskManifest(
            name="SNLI",
            display_name="SNLI",
            family=Family.NLI,
            metric=Metric.ACCURACY,
            label_kind=LabelKind.CLASSIFICATION,
            labels=("0", "1", "2"),
            text_columns=("premise", "hypothesis"),
            description="Stanford Natural Language Inference: entailment, neutral, contradiction.",
        ),
        TaskManifest(
            name="SciTail",
            display_name="SciTail",
            family=Family.NLI,
            metric=Metric.ACCURACY,
            label_kind=LabelKind.CLASSIFICATION,
            labels=("0", "1"),
            text_columns=("premise", "hypothesis"),
            description="Science-question entailment: entails or neutral.",
        ),
        TaskManifest(
            name="MRPC",
            display_name="MRPC",
            family=Family.SIMILARITY,
            metric=Metric.ACCURACY_F1,
            label_kind=LabelKind.CLASSIFICATION,
            labels=("0", "1"),
            positive_label="1",
            text_columns=("#1 String", "#2 String"),
            description="Microsoft Research Paraphrase Corpus: is the pair a paraphrase?",
        ),
        TaskManifest(
            name="STS-B",
            display_name="STS-B",
            family=Family.SIMILARITY,
            metric=Metric.PEARSON_SPEARMAN,
            label_kind=LabelKind.REGRESSION,
            text_columns=("sentence1", "sentence2"),
            description="Semantic Textual Similarity Benchmark: similarity from 0 to 5.",
        ),
    )
}


def load_manifest(task_dir: Path) -> TaskManifest:
    """The manifest for a task folder: its own `task.json`, else the known ELUE one by folder name."""
    path = task_dir / MANIFEST_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            data.setdefault("name", task_dir.name)
            return TaskManifest.model_validate(data)
        except (ValueError, ValidationError) as exc:
            raise TaskDataError(
                f"Invalid task manifest {path}", [Problem(str(exc), file=str(path))]
            ) from exc
    known = ELUE_MANIFESTS.get(task_dir.name)
    if known is None:
        raise TaskDataError(
            f"No manifest for task folder {task_dir}",
            [
                Problem(
                    f"expected a {MANIFEST_FILE} file (name, display_name, family, metric, "
                    f"label_kind, labels, text_columns), or a folder named after a known ELUE "
                    f"task ({', '.join(sorted(ELUE_MANIFESTS))})",
                    file=str(task_dir),
                )
            ],
        )
    return known
