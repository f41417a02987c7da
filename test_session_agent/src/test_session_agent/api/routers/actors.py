"""`/api/v1/actors/{actor_id}`: erasing an actor, and its long-term memories (those its agents are given)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from ..deps import ActorMemories, Agents, ErasableActorId
from ..errors import PROBLEM_RESPONSES
from ..schemas_v1 import ErasureReceipt, MemoryCreate, MemoryPage, MemoryPublic

router = APIRouter(prefix="/api/v1/actors/{actor_id}/memories", tags=["memories"], responses=PROBLEM_RESPONSES)
erasure_router = APIRouter(prefix="/api/v1/actors", tags=["actors"], responses=PROBLEM_RESPONSES)


@erasure_router.delete("/{actor_id}", response_model=ErasureReceipt)
async def erase_actor(actor_id: ErasableActorId, agents: Agents) -> ErasureReceipt:
    """Erase everything of the actor: its sessions with all they hold (snapshots too), memories and owned profiles.

    One transaction in the backend; idempotent (again: all counts 0). The actor's own key, or an admin key
    (`AGENT_ADMIN_KEYS`). Cached agents of those sessions are dropped here; other processes stop serving them at
    their next turn (the session's incarnation is gone).
    """
    receipt = await asyncio.to_thread(agents.backend.erase_actor, actor_id)
    for session_id in receipt.get("session_ids", []):
        agents.drop(session_id)
    return ErasureReceipt.model_validate(receipt)


@router.get("", response_model=MemoryPage)
async def list_memories(
    store: ActorMemories,
    query: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> MemoryPage:
    """The actor's memories: with `query`, those sharing its words, best first; without, newest first."""
    entries = await (store.search(query, {"max_search_results": limit}) if query else store.list_recent(limit=limit))
    return MemoryPage(items=[MemoryPublic.from_entry(e) for e in entries])


@router.post("", status_code=201, response_model=MemoryPublic)
async def create_memory(body: MemoryCreate, store: ActorMemories) -> MemoryPublic:
    """Store a memory of the actor (identical content is stored once: the stored memory is returned)."""
    return MemoryPublic.from_entry(await store.add_entry(body.content, body.metadata))


@router.delete("/{memory_id}", status_code=204)
async def delete_memory(memory_id: Annotated[uuid.UUID, Path()], store: ActorMemories) -> Response:
    """Forget one memory of the actor."""
    if not await store.delete(str(memory_id)):
        raise HTTPException(404, f"memory {str(memory_id)!r} of actor {store.actor_id!r} not found")
    return Response(status_code=204)
