"""Long-term memories per actor (`/v1/actors/{actor_id}/memories`): bodies, the store over `sql.memories`, routes.

Every statement is scoped by actor_id, so one actor never reads, ranks or deletes another's memories.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .errors import Conflict, NotFound
from .jsonbody import StrictJSONRoute
from .schemas import Identifier, JsonObject, Problem
from .sql import memories as sql
from .validators import json_size, utf8_text

logger = logging.getLogger(__name__)

JSON = "application/json"
MAX_CONTENT_CHARS = 16_384
MAX_METADATA_BYTES = 16_384
MAX_BATCH = 1_000
MAX_QUERY_CHARS = 2_000


def _small(metadata: JsonObject) -> JsonObject:
    if json_size(metadata) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialize to at most {MAX_METADATA_BYTES} bytes of JSON")
    return metadata


class MemoryCreate(BaseModel):
    """A memory to store: text (not blank) and optional JSON metadata."""

    model_config = ConfigDict(extra="ignore")

    content: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS, pattern=r"\S"), AfterValidator(utf8_text)
    ]
    metadata: Annotated[JsonObject, AfterValidator(_small)] = Field(default_factory=dict)


class MemoryBatch(BaseModel):
    """Several memories stored in one statement (`add_messages`, extraction batches)."""

    memories: Annotated[list[MemoryCreate], Field(min_length=1, max_length=MAX_BATCH)]


class MemoryPublic(BaseModel):
    """A stored memory."""

    memory_id: uuid.UUID
    content: str
    metadata: JsonObject
    created_at: datetime


class MemoryHit(MemoryPublic):
    """A memory in a listing; `score` is its `ts_rank_cd` in (0, 1) for a search, null without a query."""

    score: float | None


class MemoryPage(BaseModel):
    """Memories best first (search) or newest first (no query)."""

    items: list[MemoryHit]


class MemoryBatchResult(BaseModel):
    """The stored memories in request order (duplicates resolve to the one stored), and how many are new."""

    items: list[MemoryPublic]
    created: int


class ActorMemoryStore:
    """Reads and writes of `actor_memories`.

    Args:
        pool: the app's asyncpg pool (jsonb codec installed).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Wrap the pool."""
        self.pool = pool

    async def add(self, actor_id: str, memories: list[dict[str, Any]]) -> list[tuple[bool, str]]:
        """Store memories of one actor; content the actor already has is not stored twice.

        Args:
            actor_id: the actor.
            memories: `{content, metadata}` dicts.

        Returns:
            Per input, in order: whether it was stored now (False: identical content was already stored, or appears
            earlier in `memories`), and the stored memory as JSON text.

        Raises:
            Conflict: concurrent writers kept storing the same content (after a retry).
        """
        for _ in range(2):
            rows = await self.pool.fetch(sql.INSERT_MEMORIES, actor_id, memories)
            if all(r["body"] is not None for r in rows):
                break
            # Another transaction stored the same content after this statement's snapshot: now it is visible.
        else:
            raise Conflict(f"memories of actor {actor_id!r} are being written concurrently; retry")
        seen: set[str] = set()
        out: list[tuple[bool, str]] = []
        for r in rows:
            body = str(r["body"])
            out.append((bool(r["created"]) and body not in seen, body))
            seen.add(body)
        logger.debug("actor_id=<%s>, count=<%d> | stored memories", actor_id, sum(c for c, _ in out))
        return out

    async def search(self, actor_id: str, query: str | None, *, limit: int, match_any: bool) -> list[str]:
        """Memories of one actor as JSON texts: ranked by full-text relevance to `query`, or newest first.

        Args:
            actor_id: the actor.
            query: web-search syntax (`websearch_to_tsquery`); None or blank lists newest first.
            limit: most memories returned.
            match_any: a memory matching any term of `query` counts (ranked by how well), not only all terms.

        Returns:
            The memories as JSON texts.
        """
        if query is None or not query.strip():
            rows = await self.pool.fetch(sql.LIST_MEMORIES, actor_id, limit)
        else:
            rows = await self.pool.fetch(sql.SEARCH_MEMORIES, actor_id, query, match_any, limit)
        return [str(r[0]) for r in rows]

    async def delete(self, actor_id: str, memory_id: uuid.UUID) -> None:
        """Delete one memory of an actor.

        Raises:
            NotFound: the actor has no memory with this id (another actor's memory included).
        """
        if await self.pool.fetchval(sql.DELETE_MEMORY, actor_id, memory_id) is None:
            raise NotFound(f"memory {memory_id} of actor {actor_id!r} not found")
        logger.debug("actor_id=<%s>, memory_id=<%s> | deleted memory", actor_id, memory_id)

    async def delete_all(self, actor_id: str) -> None:
        """Delete every memory of an actor (none is not an error)."""
        status = await self.pool.execute(sql.DELETE_ACTOR_MEMORIES, actor_id)
        logger.debug("actor_id=<%s>, status=<%s> | deleted memories of actor", actor_id, status)


async def get_memory_store(request: Request) -> ActorMemoryStore:
    """The memory store on the app's pool (the pool opened in the lifespan)."""
    return ActorMemoryStore(request.app.state.store.pool)


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
    match: Annotated[Literal["all", "any"], Query()] = "all",
) -> Response:
    """Full-text search of an actor's memories, best first; without `query`, newest first.

    `query` is web-search syntax (`"a phrase"`, `or`, `-word`). `match=all` (default) requires every term;
    `match=any` requires one and ranks memories sharing more terms first (for whole questions as queries).
    """
    items = await store.search(actor_id, query, limit=limit, match_any=match == "any")
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
