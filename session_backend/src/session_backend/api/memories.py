"""Routes of long-term memories per actor (`/v1/actors/{actor_id}/memories`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response

from ..db.memories import Match
from ..schemas.memories import MAX_QUERY_CHARS, MemoryBatch, MemoryBatchResult, MemoryCreate, MemoryPage, MemoryPublic
from .deps import ActorId, Memories, json_response, v1_router

router = v1_router("/actors/{actor_id}/memories", tags=["memories"])


@router.post(
    "",
    status_code=201,
    response_model=MemoryPublic,
    responses={200: {"model": MemoryPublic, "description": "the actor already had this exact content"}},
)
async def add_memory(actor_id: ActorId, body: MemoryCreate, store: Memories) -> Response:
    """Store a memory; 200 with the stored one when the actor already has identical content (a retry)."""
    [(created, text)] = await store.add(actor_id, [body.model_dump()])
    return json_response(text, 201 if created else 200)


@router.post("/batch", response_model=MemoryBatchResult)
async def add_memories(actor_id: ActorId, body: MemoryBatch, store: Memories) -> Response:
    """Store up to 1,000 memories in one statement; identical content is stored once.

    With `turn`: the memories a committed turn's extraction yielded (possibly none), stored only while that turn's
    extraction is pending for this actor, and the turn marked extracted in the same transaction (its pending extraction
    no longer comes with the session's lease); a turn already extracted or gone answers `items: []`, nothing stored.
    """
    turn = (body.turn.session_id, body.turn.turn_id) if body.turn is not None else None
    results = await store.add(actor_id, [m.model_dump() for m in body.memories], turn=turn)
    created = sum(1 for c, _ in results if c)
    return json_response(f'{{"items":[{",".join(t for _, t in results)}],"created":{created}}}')


@router.get("", response_model=MemoryPage)
async def search_memories(
    actor_id: ActorId,
    store: Memories,
    query: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    match: Annotated[Match, Query()] = "hybrid",
) -> Response:
    """Search an actor's memories, best first; without `query`, newest first (`score` null).

    `match=hybrid` (default): by meaning and by words (score: cosine similarity + 0.2 x the word score); on a server
    without pgvector (see `/ready`), full text with any term. `match=meaning`: by meaning only (score: cosine
    similarity). `match=any` / `match=all`: plain full text, `query` in web-search syntax (`"a phrase"`, `or`,
    `-word`), memories sharing any / every term (score: the word score, the share of the query's words, each
    weighted by its rarity among the actor's memories, that the memory holds, in (0, 1]).
    """
    items = await store.search(actor_id, query, limit=limit, match=match)
    return json_response(f'{{"items":[{",".join(items)}]}}')


@router.delete("", status_code=204)
async def delete_memories(actor_id: ActorId, store: Memories) -> Response:
    """Delete every memory of the actor."""
    await store.delete_all(actor_id)
    return Response(status_code=204)


@router.delete("/{memory_id}", status_code=204)
async def delete_memory(actor_id: ActorId, memory_id: uuid.UUID, store: Memories) -> Response:
    """Delete one memory of the actor (404 when the actor has none with this id)."""
    await store.delete(actor_id, memory_id)
    return Response(status_code=204)
