"""PaginatedResponse of the admin API: one page of a list, and where it sits in the whole."""

from __future__ import annotations

import math
from typing import Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

Item = TypeVar("Item")

MAX_PER_PAGE = 100
# The deepest page: its offset (at most 10^8 rows) stays far below what databases take
# (SQLite's 64-bit integers); a larger page would overflow there and answer 500.
MAX_PAGE = 1_000_000


class PageParams(BaseModel):
    page: int = Field(1, ge=1, le=MAX_PAGE)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def page_params(page: int = Query(1, ge=1, le=MAX_PAGE,
                                  description=f"1-based page number (at most {MAX_PAGE})"),
                per_page: int = Query(20, ge=1, le=MAX_PER_PAGE,
                                      description=f"items per page (at most {MAX_PER_PAGE})")) -> PageParams:
    return PageParams(page=page, per_page=per_page)


class PaginatedResponse(BaseModel, Generic[Item]):
    items: list[Item]
    total: int = Field(description="items in the whole list")
    page: int = Field(description="this page, 1-based")
    per_page: int
    pages: int = Field(description="pages in the whole list (at least 1, so an empty list has page 1 of 1)")

    @classmethod
    def of(cls, items: list[Item], total: int, params: PageParams) -> PaginatedResponse[Item]:
        pages = max(1, math.ceil(total / params.per_page))
        return cls(items=items, total=total, page=params.page, per_page=params.per_page, pages=pages)
