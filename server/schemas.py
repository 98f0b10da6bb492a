"""Response models of the public API."""

from __future__ import annotations

from pydantic import BaseModel


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
