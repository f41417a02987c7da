"""The receipt of an actor's erasure (`DELETE /v1/actors/{actor_id}`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ErasureCounts(BaseModel):
    """Rows deleted per kind."""

    sessions: int
    agents: int
    messages: int
    multi_agents: int
    turns: int = Field(description="turn records (Idempotency-Key answers, tombstones)")
    leases: int
    active_agents: int
    storage_objects: int = Field(description="snapshot/Storage objects of the actor's sessions")
    memories: int
    profiles: int = Field(description="agent profiles the actor owned")


class ErasureReceipt(BaseModel):
    """What an erasure deleted; `erase_id`, `erased_at` and `counts` are kept in `erasures` (the actor as a digest)."""

    erase_id: uuid.UUID
    actor_id: str
    erased_at: datetime
    counts: ErasureCounts
    session_ids: list[str] = Field(description="the sessions deleted (not kept), so agent services drop their copies")
