"""A session copied with everything it holds under a new id, server-side in one statement (`sql/fork.py`).

With encryption at rest, a fork into another data-key scope (another actor, or a session without one) re-seals the
copied rows under its own key, in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from ..sql import fork as fork_sql
from ..sql import sessions as sessions_sql
from . import sealing
from .encryption import Codec
from .errors import AlreadyExists, NotFound

logger = logging.getLogger(__name__)


class SessionForks:
    """Forks sessions.

    Args:
        pool: the app's pool.
        codec: the app's codec (encryption at rest).
    """

    def __init__(self, pool: asyncpg.Pool, codec: Codec) -> None:
        self.pool = pool
        self.codec = codec

    async def fork_session(
        self, session_id: str, new_session_id: str, *, ttl_seconds: int | None = None, actor_id: str | None = None
    ) -> tuple[str, dict[str, int]]:
        """Copy a session with its agents, messages and multi-agent state under `new_session_id`, in one statement.

        Returns:
            The new session as JSON text, and how many agents, messages and multi-agents were copied.

        Raises:
            NotFound: no such live session.
            AlreadyExists: a live session has the new id.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sessions_sql.DELETE_EXPIRED_SESSION, new_session_id)
            row = await conn.fetchrow(fork_sql.FORK_SESSION, session_id, new_session_id, ttl_seconds, actor_id)
            if row is not None and row["session"] is not None and self.codec.enabled:
                await self._reseal_fork(conn, session_id, new_session_id)
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        if row["session"] is None:
            raise AlreadyExists(f"session {new_session_id!r} already exists")
        logger.debug("session_id=<%s>, new_session_id=<%s> | forked session", session_id, new_session_id)
        return str(row["session"]), {k: int(row[k]) for k in ("agents", "messages", "multi_agents")}

    async def _reseal_fork(self, conn: Any, session_id: str, new_session_id: str) -> None:
        """Re-seal a fork's copied rows under its own data key when its scope differs from its source's."""
        source = await self.codec.for_session(conn, session_id)
        target = await self.codec.for_session(conn, new_session_id)
        if source.key is None or target.key is None or source.key.key_id == target.key.key_id:
            return  # a fork inside one actor copies ciphertext as is
        agents = await conn.fetch(fork_sql.SELECT_SEALED_AGENTS, new_session_id)
        messages = await conn.fetch(fork_sql.SELECT_SEALED_MESSAGES, new_session_id)
        multi_agents = await conn.fetch(fork_sql.SELECT_SEALED_MULTI_AGENTS, new_session_id)
        await self.codec.preload(
            [v for r in (*agents, *messages, *multi_agents) for v in list(r)[1:] if isinstance(v, str)]
        )
        agent_text = self.codec.resealer(sealing.AGENT, target)
        window_text = self.codec.resealer(sealing.WINDOW, target)
        message_text = self.codec.resealer(sealing.MESSAGE, target)
        multi_text = self.codec.resealer(sealing.MULTI_AGENT, target)
        rows = [(r[0], *(agent_text(r[i]) for i in (1, 2, 3)), window_text(r[4])) for r in agents]
        columns = list(zip(*rows, strict=True))
        if columns:
            await conn.execute(fork_sql.RESEAL_AGENTS, new_session_id, *columns)
        rows = [(r[0], r[1], *(message_text(r[i]) for i in (2, 3, 4))) for r in messages]
        columns = list(zip(*rows, strict=True))
        if columns:
            await conn.execute(fork_sql.RESEAL_MESSAGES, new_session_id, *columns)
        columns = list(zip(*[(r[0], multi_text(r[1])) for r in multi_agents], strict=True))
        if columns:
            await conn.execute(fork_sql.RESEAL_MULTI_AGENTS, new_session_id, *columns)
