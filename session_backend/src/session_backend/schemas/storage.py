"""Bodies of Strands `Storage` objects' routes (`/v1/storage`): key pages, search hits, copies, counts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StorageKeyPage(BaseModel):
    """One page of keys in byte order."""

    items: list[str]
    next_cursor: str | None = None


class StorageSearchHit(BaseModel):
    """A key whose value matched a search, with its rank (higher is better)."""

    key: str
    score: float


class StorageSearchResults(BaseModel):
    """Search hits, best first."""

    items: list[StorageSearchHit]


class StorageCopy(BaseModel):
    """Copy every key under `source_prefix` to the same key under `target_prefix`."""

    model_config = ConfigDict(extra="forbid")

    source_prefix: str = Field(min_length=2, max_length=4096)
    target_prefix: str = Field(min_length=2, max_length=4096)


class StorageCount(BaseModel):
    """How many keys an operation touched."""

    count: int
