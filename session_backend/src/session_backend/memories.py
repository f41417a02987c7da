"""Long-term memories per actor (`/v1/actors/{actor_id}/memories`): bodies and routes over `memory_store`."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .jsonbody import StrictJSONRoute
from .memory_store import ActorMemoryStore, Match, open_memory_store
from .schemas import Identifier, JsonObject, Problem
from .validators import json_size, utf8_text

logger = logging.getLogger(__name__)

__all__ = ["open_memory_store", "router"]

JSON = "application/json"
MAX_CONTENT_CHARS = 16_384
MAX_METADATA_BYTES = 16_384
MAX_BATCH = 1_000
MAX_QUERY_CHARS = 2_000
MAX_SOURCE_MESSAGES = 1_000


def _small(metadata: JsonObject) -> JsonObject:
    if json_size(metadata) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialize to at most {MAX_METADATA_BYTES} bytes of JSON")
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


class MemoryBatch(BaseModel):
    """Several memories stored in one statement (`add_messages`, extraction batches)."""

    memories: Annotated[list[MemoryCreate], Field(min_length=1, max_length=MAX_BATCH)]


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


async def get_memory_store(request: Request) -> ActorMemoryStore:
    """The app's memory store (opened in the lifespan)."""
    store: ActorMemoryStore = request.app.state.memory_store
    return store


Store = Annotated[ActorMemoryStore, Depends(get_memory_store)]
ActorId = Annotated[Identifier, Path()]

_errors: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}} for code in (401, 404, 409, 413, 422, 503)
}

router = APIRouter(
    prefix="/v1/actors/{actor_id}/memories", tags=["memories"], responses=_errors, route_class=StrictJSONRoute
)


def _json(text: str, status_code: int = 200) -> Response:
    return Response(content=text, status_code=status_code, media_type=JSON)


@router.post(
    "",
    status_code=201,
    response_model=MemoryPublic,
    responses={200: {"model": MemoryPublic, "description": "the actor already had this exact content"}},
)
async def add_memory(actor_id: ActorId, body: MemoryCreate, store: Store) -> Response:
    """Store a memory; 200 with the stored one when the actor already has identical content (a retry)."""
    [(created, text)] = await store.add(actor_id, [body.model_dump()])
    return _json(text, 201 if created else 200)


@router.post("/batch", response_model=MemoryBatchResult)
async def add_memories(actor_id: ActorId, body: MemoryBatch, store: Store) -> Response:
    """Store up to 1,000 memories in one statement; identical content is stored once."""
    results = await store.add(actor_id, [m.model_dump() for m in body.memories])
    created = sum(1 for c, _ in results if c)
    return _json(f'{{"items":[{",".join(t for _, t in results)}],"created":{created}}}')


@router.get("", response_model=MemoryPage)
async def search_memories(
    actor_id: ActorId,
    store: Store,
    query: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    match: Annotated[Match, Query()] = "hybrid",
) -> Response:
    """Search an actor's memories, best first; without `query`, newest first (`score` null).

    `match=hybrid` (default): by meaning and by words, fused by reciprocal rank (score: the fused rank score, in
    (0, 0.04)); on a server without pgvector (see `/ready`), full text with any term. `match=meaning`: by meaning
    only (score: cosine similarity). `match=any` / `match=all`: plain full text, `query` in web-search syntax
    (`"a phrase"`, `or`, `-word`), memories sharing any / every term (score: `ts_rank_cd` in (0, 1)).
    """
    items = await store.search(actor_id, query, limit=limit, match=match)
    return _json(f'{{"items":[{",".join(items)}]}}')


@router.delete("", status_code=204)
async def delete_memories(actor_id: ActorId, store: Store) -> Response:
    """Delete every memory of the actor."""
    await store.delete_all(actor_id)
    return Response(status_code=204)


@router.delete("/{memory_id}", status_code=204)
async def delete_memory(actor_id: ActorId, memory_id: uuid.UUID, store: Store) -> Response:
    """Delete one memory of the actor (404 when the actor has none with this id)."""
    await store.delete(actor_id, memory_id)
    return Response(status_code=204)
