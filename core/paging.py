"""The one paging model: `offset` and `limit` in, `Page[T]` (items, total, offset, limit) out.

Every paged list of the API uses it: the submissions list (`Page[SubmissionSummary]`; its older
`page` / `per_page` spelling is still accepted and answered) and the leaderboards, whose bodies
carry the same `total`, `offset` and `limit` beside their named lists (`entries`; a task board's
`submissions` and `points`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class PageInfo(BaseModel):
    """Where a page sits in the whole list."""

    total: int = Field(description="Items matching the query, before offset/limit")
    offset: int = Field(description="Items skipped before this page")
    limit: int | None = Field(description="The page size (null: the whole list, CSV only)")


class Page(PageInfo, Generic[T]):
    """One page of a list."""

    items: list[T]


@dataclass(frozen=True, slots=True)
class Window:
    """The slice a request asks for: `offset` items skipped, at most `limit` returned."""

    offset: int
    limit: int

    @classmethod
    def of_page(cls, page: int, per_page: int) -> Window:
        """The older spelling: 1-based `page` of `per_page` items."""
        return cls(offset=(page - 1) * per_page, limit=per_page)

    @property
    def page(self) -> int:
        """The 1-based page this window starts on (for the older `page` / `per_page` fields)."""
        return self.offset // self.limit + 1
