"""ErasureStore: erase everything of an actor in one transaction, and keep a receipt without content."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

from ..sql import erasure as sql
from ..sql import sessions as sessions_sql
from .encryption import Codec

logger = logging.getLogger(__name__)

# A deadlock with a concurrent writer (a turn's batch holds its lease row, then wants the session row) aborts one of
# the two; the erasure is then simply run again, whole.
_ATTEMPTS = 5


def actor_digest(actor_id: str) -> str:
    """The sha256 hex digest of an actor id, the only trace of the actor an erasure receipt keeps."""
    return hashlib.sha256(actor_id.encode()).hexdigest()


class ErasureStore:
    """Erasure of actors: their sessions with all they hold, their memories and owned profiles; `erasures` receipts.

    Args:
        pool: the app's asyncpg pool (jsonb codec installed).
        codec: encryption at rest (None: off); with it on, the actor's data key is destroyed first.
    """

    def __init__(self, pool: asyncpg.Pool, codec: Codec | None = None) -> None:
        """Wrap the pool."""
        self.pool = pool
        self.codec = codec or Codec(pool)

    async def erase_actor(self, actor_id: str) -> dict[str, Any]:
        """Delete everything of an actor in one transaction.

        That is every session of the actor (agents, messages, multi-agent state, turn records, leases, active agents,
        snapshot/Storage objects), its memories and the profiles it owns.

        Idempotent: erasing an actor with nothing left deletes nothing and still records a receipt (all counts 0).
        A crash half-way leaves everything as before (one transaction): the retry does it all. Before it, the actor's
        data key (encryption at rest) is deleted in a statement of its own, committed first: from then on whatever
        is left of the actor's data anywhere (a backup, a replica, a crash before the deletes) is ciphertext without
        a key.

        Args:
            actor_id: the actor to erase.

        Returns:
            The receipt: `erase_id` (uuid text), `actor_id`, `erased_at` (ISO 8601), `counts` (rows per kind) and
            `session_ids` (the sessions deleted: for agent services to drop cached copies; not kept).
        """
        destroyed = await self.codec.destroy_actor_key(actor_id)
        logger.debug("data_keys=<%d> | destroyed the actor's data key", destroyed)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(asyncpg.DeadlockDetectedError),
            stop=stop_after_attempt(_ATTEMPTS),
            wait=wait_random(0, 0.05),
            reraise=True,
        ):
            with attempt:
                return await self._erase_once(actor_id)
        raise AssertionError("unreachable")  # AsyncRetrying returns or raises

    async def _erase_once(self, actor_id: str) -> dict[str, Any]:
        erase_id = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            session_ids = [r[0] for r in await conn.fetch(sql.SELECT_ACTOR_SESSIONS, actor_id)]
            counts = await delete_sessions_with_storage(conn, session_ids)
            counts["memories"] = int(await conn.fetchval(sql.DELETE_ACTOR_MEMORIES, actor_id))
            profiles = await conn.fetchrow(sql.DELETE_OWNED_PROFILES, actor_id)
            assert profiles is not None  # an aggregate row, always one
            counts["profiles"] = int(profiles["profiles"])
            counts["active_agents"] += int(profiles["active_agents"])
            erased_at = await conn.fetchval(sql.INSERT_ERASURE, erase_id, actor_digest(actor_id), counts)
        logger.info("erase_id=<%s> | erased an actor: %s", erase_id, counts)
        return {
            "erase_id": str(erase_id),
            "actor_id": actor_id,
            "erased_at": erased_at,
            "counts": counts,
            "session_ids": session_ids,
        }


async def delete_sessions_with_storage(conn: asyncpg.Connection | Any, session_ids: list[str]) -> dict[str, int]:
    """Delete sessions with everything they hold, their snapshot/Storage objects included, in the caller's transaction.

    The one "delete a session and all of it" of the erasure.
    The sessions are locked first (in id order, so two deleters do not deadlock), then every kind is deleted and
    counted, then the session rows.

    Args:
        conn: a connection inside a transaction.
        session_ids: the sessions to delete (absent ones are skipped).

    Returns:
        Rows deleted per kind: `sessions`, `agents`, `messages`, `multi_agents`, `turns`, `leases`, `active_agents`,
        `storage_objects`.
    """
    # The planner cannot estimate the storage prefix ranges per session and guesses millions of rows, which turns on
    # JIT compilation: 4.2 s of a 5 s erasure of 10,000 sessions (the statement itself takes under a second).
    await conn.execute("SET LOCAL jit = off")
    locked = [r[0] for r in await conn.fetch(sessions_sql.LOCK_SESSIONS, session_ids)]
    # Leases have no foreign key to a session row: they go for every id asked, even one whose session row is already
    # gone. Storage objects are counted here and deleted by the sessions' trigger (`sessions_clear_storage`).
    row = await conn.fetchrow(sessions_sql.DELETE_SESSIONS_WITH_STORAGE, session_ids)
    assert row is not None  # an aggregate row, always one
    await conn.execute(sessions_sql.DELETE_SESSIONS, locked)
    logger.debug("sessions=<%d> | deleted sessions with their storage objects", len(locked))
    return {"sessions": len(locked)} | {k: int(v) for k, v in row.items()}
