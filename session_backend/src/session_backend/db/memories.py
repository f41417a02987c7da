"""ActorMemoryStore: reads and writes of long-term memories (`actor_memories`), every statement scoped by actor_id.

One actor never reads, ranks or deletes another's memories.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from ..sql import memories as sql
from .errors import Conflict, NotFound

logger = logging.getLogger(__name__)


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
