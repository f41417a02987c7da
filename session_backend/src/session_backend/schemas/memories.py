"""Bodies of long-term memories per actor (`/v1/actors/{actor_id}/memories`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .common import Identifier, JsonObject, Token, json_size, not_sealed_looking, utf8_text

MAX_CONTENT_CHARS = 16_384
MAX_METADATA_BYTES = 16_384
MAX_BATCH = 1_000
MAX_QUERY_CHARS = 2_000
MAX_SOURCE_MESSAGES = 1_000


def _small(metadata: JsonObject) -> JsonObject:
    if json_size(metadata) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialize to at most {MAX_METADATA_BYTES} bytes of JSON")
    not_sealed_looking(metadata)  # stored in clear beside the sealed content
    return metadata


class MemorySource(BaseModel):
    """Where a memory was extracted from: an agent of a session, and the ids of the messages it came from."""

    model_config = ConfigDict(extra="forbid")

    session_id: Identifier
    agent_id: Identifier
    message_ids: Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(max_length=MAX_SOURCE_MESSAGES)] = (
        Field(default_factory=list)
    )


class MemoryCreate(BaseModel):
    """A memory to store: text (not blank), optional JSON metadata, optional source (the session it came from)."""

    model_config = ConfigDict(extra="ignore")

    content: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS, pattern=r"\S"), AfterValidator(utf8_text)
    ]
    metadata: Annotated[JsonObject, AfterValidator(_small)] = Field(default_factory=dict)
    source: MemorySource | None = None


class ExtractedTurn(BaseModel):
    """The committed turn a batch of memories was extracted from: its extraction is marked done with them."""

    model_config = ConfigDict(extra="forbid")

    session_id: Identifier
    turn_id: Token


class MemoryBatch(BaseModel):
    """Several memories stored in one statement (`add_messages`, extraction batches).

    With `turn`, they are what that turn's extraction yielded (possibly none): the turn is marked extracted in the
    same transaction, so its memories are stored exactly once across agent-process restarts.
    """

    memories: Annotated[list[MemoryCreate], Field(max_length=MAX_BATCH)]
    turn: ExtractedTurn | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> MemoryBatch:
        if not self.memories and self.turn is None:
            raise ValueError("memories must not be empty (unless a turn's extraction is marked done)")
        return self


class MemoryPublic(BaseModel):
    """A stored memory."""

    memory_id: uuid.UUID
    content: str
    metadata: JsonObject
    source: MemorySource | None
    created_at: datetime


class MemoryHit(MemoryPublic):
    """A memory in a listing; `score` ranks a search (higher is better, see `search_memories`), null without a query."""

    score: float | None


class MemoryPage(BaseModel):
    """Memories best first (search) or newest first (no query)."""

    items: list[MemoryHit]


class MemoryBatchResult(BaseModel):
    """The stored memories in request order (duplicates resolve to the one stored), and how many are new."""

    items: list[MemoryPublic]
    created: int
