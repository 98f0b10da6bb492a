"""Response models of the public API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TaskSplitRead(BaseModel):
    split: str = Field(description="test (inputs only: gold labels never leave the server) or dev")
    size: int
    labelled: bool = Field(description="The file has a label column (dev, imported with labels)")
    url: str = Field(description="The split as TSV: index, the text columns, label if labelled")


class TaskRead(BaseModel):
    name: str
    display_name: str
    family: str
    metric: str
    label_kind: str
    labels: list[str]
    text_columns: list[str]
    test_size: int
    description: str
    splits: list[TaskSplitRead] = Field(
        default_factory=list, description="Every split the operator imported, to download"
    )
