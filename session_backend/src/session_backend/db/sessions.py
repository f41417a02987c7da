"""SessionStore: sessions and what they hold (agents, messages, multi-agent state), over one asyncpg pool.

Reads return JSON text built by PostgreSQL (passed to HTTP clients as is), with what routes need beside it (an
agent's version); writes raise the domain errors of `db/errors.py`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from ..schemas.sessions import SessionFilter
from ..sql import agents as agents_sql
from ..sql import memories as memories_sql
from ..sql import messages as messages_sql
from ..sql import multi_agents as multi_agents_sql
from ..sql import sessions as sessions_sql
from . import sealing
from .errors import AlreadyExists, NotFound
from .group_commit import Writer, awaiting_input

logger = logging.getLogger(__name__)


# A list page stops once it holds this much JSON: a page of sessions with large metadata stays small in memory on both
# sides (the agent service passes pages through).
MAX_PAGE_BYTES = 1024 * 1024


class StoredAgent(NamedTuple):
    """An agent as stored: its `version` (the ETag) and its JSON text (which holds the same version)."""

    version: int
    body: str


class SessionStore:
    """Store of the Strands session model in PostgreSQL.

    Args:
        writer: runs the message and agent writes (`session_backend_write`) on the app's pool.
    """

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.pool = writer.pool
        self.codec = writer.codec

    # sessions

    async def create_session(
        self,
        session_id: str,
        session_type: str,
        *,
        actor_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        ttl_seconds: int | None = None,
    ) -> str:
        """Create a session; an expired session with the same id is replaced (its rows deleted first).

        Returns:
            The stored session as JSON text.

        Raises:
            AlreadyExists: a live session has this id.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sessions_sql.DELETE_EXPIRED_SESSION, session_id)
            row = await conn.fetchval(
                sessions_sql.INSERT_SESSION,
                session_id,
                session_type,
                actor_id,
                metadata or {},
                created_at,
                updated_at,
                ttl_seconds,
            )
        if row is None:
            raise AlreadyExists(f"session {session_id!r} already exists")
        logger.debug("session_id=<%s> | created session", session_id)
        return str(row)

    async def get_session(self, session_id: str) -> str:
        """Return the live session as JSON text.

        Raises:
            NotFound: no such session, or it has expired.
        """
        row = await self.pool.fetchval(sessions_sql.SELECT_SESSION, session_id)
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        return str(row)

    async def list_sessions(
        self,
        *,
        actor_id: str | None,
        limit: int,
        after: tuple[datetime, str] | None,
        filters: SessionFilter | None = None,
    ) -> tuple[list[str], tuple[datetime, str] | None]:
        """List live sessions newest first (by `filters.order_by`).

        Args:
            actor_id: only sessions of this actor, when given.
            limit: page size (rows).
            after: keyset position `(order_by value, session_id)` of the last row of the previous page.
            filters: order and filters (pending interrupt, metadata); None: newest created first, unfiltered.

        Returns:
            The page as JSON texts (at most `limit` rows and about `MAX_PAGE_BYTES`), and the keyset position to
            continue from (None on the last page).
        """
        filters = filters or SessionFilter()
        after_ts, after_id = after if after else (None, None)
        rows = await self.pool.fetch(
            sessions_sql.LIST_SESSIONS[filters.order_by],
            actor_id,
            after_ts,
            after_id,
            limit + 1,
            MAX_PAGE_BYTES,
            filters.awaiting_input,
            list(filters.metadata),
            list(filters.metadata.values()),
        )
        page = rows[:limit]
        more = bool(rows) and int(rows[0]["fetched"]) > len(page)
        next_key = (page[-1][0], page[-1][1]) if more else None
        return [r[2] for r in page], next_key

    async def delete_session(self, session_id: str, *, forget_memories: bool = False) -> None:
        """Delete a session with its agents, messages and multi-agent state (cascading), in one transaction.

        Args:
            session_id: the session.
            forget_memories: also delete the long-term memories extracted from it (else they stay, their source
                cleared).

        Raises:
            NotFound: no such live session (nothing is deleted).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if forget_memories:
                forgotten = await conn.execute(memories_sql.DELETE_SESSION_MEMORIES, session_id)
                logger.debug("session_id=<%s>, status=<%s> | deleted memories of session", session_id, forgotten)
            if await conn.fetchval(sessions_sql.DELETE_SESSION, session_id) is None:
                raise NotFound(f"session {session_id!r} not found")
        logger.debug("session_id=<%s> | deleted session", session_id)

    # agents

    async def create_agent(self, session_id: str, agent: dict[str, Any]) -> StoredAgent:
        """Create an agent from a Strands `SessionAgent.to_dict()`-shaped mapping (validated by the caller).

        Returns:
            The stored agent (`version` 1).

        Raises:
            NotFound: the session does not exist.
            AlreadyExists: the agent exists.
        """
        sealer = await self.codec.for_session(self.pool, session_id)
        row = await self._insert_in_live_session(
            agents_sql.INSERT_AGENT,
            session_id,
            f"agent {agent['agent_id']!r}",
            agent["agent_id"],
            sealer.value(sealing.AGENT, agent["state"]),
            sealer.value(sealing.AGENT, agent["conversation_manager_state"]),
            sealer.value(sealing.AGENT, agent["internal_state"]),
            agent["created_at"],
            agent["updated_at"],
            awaiting_input(agent["internal_state"]),
        )
        return StoredAgent(row["version"], await self.codec.open_text(row["body"], sealing.AGENT))

    async def get_agent(self, session_id: str, agent_id: str) -> StoredAgent:
        """Return the agent.

        Raises:
            NotFound: no such session or agent.
        """
        row = await self.pool.fetchrow(agents_sql.SELECT_AGENT, session_id, agent_id)
        if row is None:
            raise NotFound(f"agent {agent_id!r} not found in session {session_id!r}")
        return StoredAgent(row["version"], await self.codec.open_text(row["body"], sealing.AGENT))

    async def update_agent(
        self, session_id: str, agent_id: str, agent: dict[str, Any], *, if_version: int | None = None
    ) -> StoredAgent:
        """Replace the agent's state; `version` goes up by one.

        Args:
            session_id: the agent's session.
            agent_id: the agent.
            agent: `SessionAgent.to_dict()`-shaped state (validated by the caller).
            if_version: when given, write only if the stored version equals it (optimistic concurrency).

        Returns:
            The stored agent.

        Raises:
            NotFound: no such session or agent.
            PreconditionFailed: `if_version` is stale.
        """
        op = {"op": "update_agent", "agent": agent | {"agent_id": agent_id}, "if_version": if_version}
        (row,) = await self.writer.write(session_id, [op])
        return StoredAgent(row["version"], await self.codec.open_text(row["body"], sealing.AGENT))

    async def _insert_in_live_session(self, sql: str, session_id: str, what: str, *args: Any) -> asyncpg.Record:
        """Run an insert guarded by `LIVE_SESSION_EXISTS` with `ON CONFLICT DO NOTHING`; tell the two misses apart.

        Raises:
            NotFound: the session does not exist (or has expired).
            AlreadyExists: `what` exists in the session.
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(sql, session_id, *args)
            if row is None:
                if await conn.fetchval(sessions_sql.SESSION_IS_LIVE, session_id) is None:
                    raise NotFound(f"session {session_id!r} not found")
                raise AlreadyExists(f"{what} already exists in session {session_id!r}")
        return row

    # messages

    async def create_message(self, session_id: str, agent_id: str, message: dict[str, Any]) -> tuple[bool, str]:
        """Append a message; a retry with identical `message` and `redact_message` is accepted.

        Returns:
            (True, stored JSON) when the row was inserted; (False, stored JSON) when an identical one existed.

        Raises:
            NotFound: no such session or agent.
            Conflict: a different message is stored at that `message_id`.
            asyncpg.DataError: PostgreSQL refused a value (e.g. a NUL character in JSON text); the app answers 422.
        """
        op = {"op": "create_message", "agent_id": agent_id, "message": message}
        (row,) = await self.writer.write(session_id, [op])
        return row["status"] == "created", await self.codec.open_text(str(row["body"]), sealing.MESSAGE)

    async def get_message(self, session_id: str, agent_id: str, message_id: int) -> str:
        """Return the message as JSON text.

        Raises:
            NotFound: no such session, agent or message.
        """
        row = await self.pool.fetchval(messages_sql.SELECT_MESSAGE, session_id, agent_id, message_id)
        if row is None:
            raise NotFound(f"message {message_id} of agent {agent_id!r} not found in session {session_id!r}")
        return await self.codec.open_text(str(row), sealing.MESSAGE)

    async def update_message(
        self, session_id: str, agent_id: str, message_id: int, message: dict[str, Any], *, forget_memories: bool = True
    ) -> str:
        """Replace a message's `message` and `redact_message` (Strands does this when redacting).

        Args:
            session_id: the session.
            agent_id: the agent.
            message_id: the message.
            message: its new body.
            forget_memories: also delete the long-term memories extracted from the message (the same transaction).

        Raises:
            NotFound: no such session, agent or message.
        """
        op = {
            "op": "update_message",
            "agent_id": agent_id,
            "message": message | {"message_id": message_id},
            "forget_memories": forget_memories,
        }
        (row,) = await self.writer.write(session_id, [op])
        return await self.codec.open_text(str(row["body"]), sealing.MESSAGE)

    async def list_messages(
        self, session_id: str, agent_id: str, *, offset: int, limit: int | None
    ) -> tuple[str, bool]:
        """Return messages ordered by `message_id` as one JSON array text, and whether a context window is recorded.

        The second is true when the agent's last turn recorded a context window (`get_context_window` answers it).

        Args:
            session_id: the agent's session.
            agent_id: the agent.
            offset: number of messages to skip (a position, not a message_id).
            limit: at most this many (None: all).

        Raises:
            NotFound: no such session or agent.
        """
        rows = await self.pool.fetch(messages_sql.LIST_MESSAGE_BODIES, session_id, agent_id, offset, limit)
        if not rows:
            raise NotFound(f"agent {agent_id!r} not found in session {session_id!r}")
        windowed = bool(rows[0][1])
        if rows[0][0] is None:
            return "[]", windowed
        return await self.codec.open_text("[" + ",".join([r[0] for r in rows]) + "]", sealing.MESSAGE), windowed

    async def get_context_window(self, session_id: str, agent_id: str) -> dict[str, Any]:
        """The agent's context window as its last turn left it, resolved to messages (strands-agents #4270, #4027).

        Entries referring to a stored message give that message (its redacted form when redacted); entries of their
        own (summaries, messages a conversation manager changed) are given as stored; messages stored after the window
        was taken follow it.

        Returns:
            `{"items": [{"message_id": int | None, "message": {...}, "stored": bool}]}` in window order (`stored`:
            the stored message itself; else a message of the window's own, replacing `message_id` when not null).

        Raises:
            NotFound: no such session or agent, or no window recorded for it.
        """
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            row = await conn.fetchrow(messages_sql.SELECT_CONTEXT_WINDOW, session_id, agent_id)
            if row is None or row[0] is None:
                raise NotFound(f"no context window of agent {agent_id!r} in session {session_id!r}")
            window = await self.codec.open_value(row[0], sealing.WINDOW)
            refs = [e["message_id"] for e in window["entries"] if e.get("message") is None]
            rows = await conn.fetch(messages_sql.SELECT_WINDOW_MESSAGES, session_id, agent_id, refs, window["upto"])
        stored = {
            r["message_id"]: await self.codec.open_value(r["redact_message"] or r["message"], sealing.MESSAGE)
            for r in rows
        }
        items = [
            {"message_id": e.get("message_id"), "message": e["message"], "stored": False}
            if e.get("message") is not None
            else {"message_id": e["message_id"], "message": stored[e["message_id"]], "stored": True}
            for e in window["entries"]
            if e.get("message") is not None or e["message_id"] in stored
        ]
        items += [{"message_id": i, "message": m, "stored": True} for i, m in stored.items() if i > window["upto"]]
        return {"items": items}

    # multi-agent state

    async def create_multi_agent(self, session_id: str, multi_agent_id: str, state: dict[str, Any]) -> str:
        """Store a multi-agent's serialized state.

        Raises:
            NotFound: no such session.
            AlreadyExists: this multi-agent id exists in the session.
        """
        sealer = await self.codec.for_session(self.pool, session_id)
        row = await self._insert_in_live_session(
            multi_agents_sql.INSERT_MULTI_AGENT,
            session_id,
            f"multi-agent {multi_agent_id!r}",
            multi_agent_id,
            sealer.value(sealing.MULTI_AGENT, state),
        )
        return await self.codec.open_text(str(row[0]), sealing.MULTI_AGENT)

    async def get_multi_agent(self, session_id: str, multi_agent_id: str) -> str:
        """Return `{id, state}` as JSON text.

        Raises:
            NotFound: no such session or multi-agent.
        """
        row = await self.pool.fetchval(multi_agents_sql.SELECT_MULTI_AGENT, session_id, multi_agent_id)
        if row is None:
            raise NotFound(f"multi-agent {multi_agent_id!r} not found in session {session_id!r}")
        return await self.codec.open_text(str(row), sealing.MULTI_AGENT)

    async def update_multi_agent(self, session_id: str, multi_agent_id: str, state: dict[str, Any]) -> str:
        """Replace a multi-agent's state.

        Raises:
            NotFound: no such session or multi-agent.
        """
        sealer = await self.codec.for_session(self.pool, session_id)
        row = await self.pool.fetchval(
            multi_agents_sql.UPDATE_MULTI_AGENT, session_id, multi_agent_id, sealer.value(sealing.MULTI_AGENT, state)
        )
        if row is None:
            raise NotFound(f"multi-agent {multi_agent_id!r} not found in session {session_id!r}")
        return await self.codec.open_text(str(row), sealing.MULTI_AGENT)
