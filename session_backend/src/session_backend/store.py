"""SessionStore: every read and write of sessions, agents, messages and multi-agent state, over one asyncpg pool.

Reads return JSON text built by PostgreSQL (passed to HTTP clients as is); writes raise the domain errors of
`session_backend.errors`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from .errors import AlreadyExists, Conflict, NotFound, PreconditionFailed
from .migrations import Connection
from .sql import agents as agents_sql
from .sql import messages as messages_sql
from .sql import multi_agents as multi_agents_sql
from .sql import sessions as sessions_sql

logger = logging.getLogger(__name__)


class SessionStore:
    """Store of the Strands session model in PostgreSQL.

    Args:
        pool: an asyncpg pool created by `session_backend.db.create_pool` (jsonb codec installed).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

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
        self, *, actor_id: str | None, limit: int, after: tuple[datetime, str] | None
    ) -> tuple[list[str], tuple[datetime, str] | None]:
        """List live sessions newest first.

        Args:
            actor_id: only sessions of this actor, when given.
            limit: page size (rows).
            after: keyset position `(created_at, session_id)` of the last row of the previous page.

        Returns:
            The page as JSON texts, and the keyset position to continue from (None on the last page).
        """
        after_ts, after_id = after if after else (None, None)
        rows = await self.pool.fetch(sessions_sql.LIST_SESSIONS, actor_id, after_ts, after_id, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_key = (rows[-1][0], rows[-1][1]) if more and rows else None
        return [r[2] for r in rows], next_key

    async def delete_session(self, session_id: str) -> None:
        """Delete a session with its agents, messages and multi-agent state (one statement, cascading).

        Raises:
            NotFound: no such live session.
        """
        deleted = await self.pool.fetchval(sessions_sql.DELETE_SESSION, session_id)
        if deleted is None:
            raise NotFound(f"session {session_id!r} not found")
        logger.debug("session_id=<%s> | deleted session", session_id)

    async def sweep_expired(self, batch_size: int) -> int:
        """Delete expired sessions in batches of `batch_size` until none is left.

        Returns:
            The number of sessions deleted.
        """
        total = 0
        while True:
            status = await self.pool.execute(sessions_sql.SWEEP_EXPIRED, batch_size)
            count = int(status.split()[-1])
            total += count
            if count < batch_size:
                return total

    # agents

    async def create_agent(self, session_id: str, agent: dict[str, Any]) -> str:
        """Create an agent from a Strands `SessionAgent.to_dict()`-shaped mapping (validated by the caller).

        Returns:
            The stored agent as JSON text (with `version` 1).

        Raises:
            NotFound: the session does not exist.
            AlreadyExists: the agent exists.
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchval(
                agents_sql.INSERT_AGENT,
                session_id,
                agent["agent_id"],
                agent["state"],
                agent["conversation_manager_state"],
                agent["internal_state"],
                agent["created_at"],
                agent["updated_at"],
            )
            if row is None:
                if await conn.fetchval(sessions_sql.SESSION_IS_LIVE, session_id) is None:
                    raise NotFound(f"session {session_id!r} not found")
                raise AlreadyExists(f"agent {agent['agent_id']!r} already exists in session {session_id!r}")
        return str(row)

    async def get_agent(self, session_id: str, agent_id: str) -> str:
        """Return the agent as JSON text.

        Raises:
            NotFound: no such session or agent.
        """
        row = await self.pool.fetchval(agents_sql.SELECT_AGENT, session_id, agent_id)
        if row is None:
            raise NotFound(f"agent {agent_id!r} not found in session {session_id!r}")
        return str(row)

    async def update_agent(
        self, session_id: str, agent_id: str, agent: dict[str, Any], *, if_version: int | None = None
    ) -> str:
        """Replace the agent's state; `version` goes up by one.

        Args:
            if_version: when given, write only if the stored version equals it (optimistic concurrency).

        Returns:
            The stored agent as JSON text.

        Raises:
            NotFound: no such session or agent.
            PreconditionFailed: `if_version` is stale.
        """
        async with self.pool.acquire() as conn:
            return await _update_agent(conn, session_id, agent_id, agent, if_version)

    async def apply_batch(self, session_id: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply the writes of one turn in order, in one transaction: all or nothing.

        Args:
            operations: dicts with `op` in `create_message` / `update_message` (with `agent_id`, `message`) or
                `update_agent` (with `agent`, optional `if_version`), validated by the caller.

        Returns:
            `{"created_messages", "existing_messages", "agent_versions": {agent_id: version}}`.

        Raises:
            NotFound, Conflict, PreconditionFailed: as the single-row operations; nothing is written.
        """
        created = existing = 0
        versions: dict[str, int] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            for operation in operations:
                kind = operation["op"]
                if kind == "create_message":
                    inserted, _ = await _create_message(conn, session_id, operation["agent_id"], operation["message"])
                    created += inserted
                    existing += not inserted
                elif kind == "update_message":
                    message = operation["message"]
                    await _update_message(conn, session_id, operation["agent_id"], message["message_id"], message)
                else:
                    agent = operation["agent"]
                    text = await _update_agent(conn, session_id, agent["agent_id"], agent, operation.get("if_version"))
                    versions[agent["agent_id"]] = int(orjson.loads(text)["version"])
        return {"created_messages": created, "existing_messages": existing, "agent_versions": versions}

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
        async with self.pool.acquire() as conn:
            return await _create_message(conn, session_id, agent_id, message)

    async def get_message(self, session_id: str, agent_id: str, message_id: int) -> str:
        """Return the message as JSON text.

        Raises:
            NotFound: no such session, agent or message.
        """
        row = await self.pool.fetchval(messages_sql.SELECT_MESSAGE, session_id, agent_id, message_id)
        if row is None:
            raise NotFound(f"message {message_id} of agent {agent_id!r} not found in session {session_id!r}")
        return str(row)

    async def update_message(self, session_id: str, agent_id: str, message_id: int, message: dict[str, Any]) -> str:
        """Replace a message's `message` and `redact_message` (Strands does this when redacting).

        Raises:
            NotFound: no such session, agent or message.
        """
        async with self.pool.acquire() as conn:
            return await _update_message(conn, session_id, agent_id, message_id, message)

    async def list_messages(self, session_id: str, agent_id: str, *, offset: int, limit: int | None) -> str:
        """Return messages ordered by `message_id` as one JSON array text.

        Args:
            offset: number of messages to skip (a position, not a message_id).
            limit: at most this many (None: all).

        Raises:
            NotFound: no such session or agent.
        """
        rows = await self.pool.fetch(messages_sql.LIST_MESSAGE_BODIES, session_id, agent_id, offset, limit)
        if not rows:
            raise NotFound(f"agent {agent_id!r} not found in session {session_id!r}")
        if rows[0][0] is None:
            return "[]"
        return "[" + ",".join([r[0] for r in rows]) + "]"

    # multi-agent state

    async def create_multi_agent(self, session_id: str, multi_agent_id: str, state: dict[str, Any]) -> str:
        """Store a multi-agent's serialized state.

        Raises:
            NotFound: no such session.
            AlreadyExists: this multi-agent id exists in the session.
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchval(multi_agents_sql.INSERT_MULTI_AGENT, session_id, multi_agent_id, state)
            if row is None:
                if await conn.fetchval(sessions_sql.SESSION_IS_LIVE, session_id) is None:
                    raise NotFound(f"session {session_id!r} not found")
                raise AlreadyExists(f"multi-agent {multi_agent_id!r} already exists in session {session_id!r}")
        return str(row)

    async def get_multi_agent(self, session_id: str, multi_agent_id: str) -> str:
        """Return `{id, state}` as JSON text.

        Raises:
            NotFound: no such session or multi-agent.
        """
        row = await self.pool.fetchval(multi_agents_sql.SELECT_MULTI_AGENT, session_id, multi_agent_id)
        if row is None:
            raise NotFound(f"multi-agent {multi_agent_id!r} not found in session {session_id!r}")
        return str(row)

    async def update_multi_agent(self, session_id: str, multi_agent_id: str, state: dict[str, Any]) -> str:
        """Replace a multi-agent's state.

        Raises:
            NotFound: no such session or multi-agent.
        """
        row = await self.pool.fetchval(multi_agents_sql.UPDATE_MULTI_AGENT, session_id, multi_agent_id, state)
        if row is None:
            raise NotFound(f"multi-agent {multi_agent_id!r} not found in session {session_id!r}")
        return str(row)


# Single-row writes on a given connection, shared by the one-off methods and `apply_batch`.


async def _create_message(
    conn: Connection, session_id: str, agent_id: str, message: dict[str, Any]
) -> tuple[bool, str]:
    args = (
        session_id,
        agent_id,
        message["message_id"],
        message["message"],
        message["redact_message"],
        message["created_at"],
        message["updated_at"],
    )
    row = await conn.fetchrow(messages_sql.INSERT_MESSAGE, *args)
    assert row is not None
    if not row["parent_live"]:
        raise NotFound(f"agent {agent_id!r} not found in session {session_id!r}")
    if row["inserted_body"] is not None:
        return True, str(row["inserted_body"])
    same, body = row["existing_same"], row["existing_body"]
    if same is None:  # a concurrent insert committed after this statement's snapshot
        found = await conn.fetchrow(messages_sql.SELECT_MESSAGE_SAME, *args[:5])
        same, body = (found["same"], found["body"]) if found else (False, None)
    if same:
        return False, str(body)
    raise Conflict(
        f"message_id {message['message_id']} of agent {agent_id!r} in session {session_id!r} "
        "already holds a different message"
    )


async def _update_message(
    conn: Connection, session_id: str, agent_id: str, message_id: int, message: dict[str, Any]
) -> str:
    row = await conn.fetchval(
        messages_sql.UPDATE_MESSAGE,
        session_id,
        agent_id,
        message_id,
        message["message"],
        message["redact_message"],
        message["updated_at"],
    )
    if row is None:
        raise NotFound(f"message {message_id} of agent {agent_id!r} not found in session {session_id!r}")
    return str(row)


async def _update_agent(
    conn: Connection, session_id: str, agent_id: str, agent: dict[str, Any], if_version: int | None
) -> str:
    row = await conn.fetchval(
        agents_sql.UPDATE_AGENT,
        session_id,
        agent_id,
        agent["state"],
        agent["conversation_manager_state"],
        agent["internal_state"],
        agent["updated_at"],
        if_version,
    )
    if row is None:
        version = await conn.fetchval(agents_sql.SELECT_AGENT_VERSION, session_id, agent_id)
        if version is None:
            raise NotFound(f"agent {agent_id!r} not found in session {session_id!r}")
        raise PreconditionFailed(f"agent {agent_id!r} is at version {version}, not {if_version}")
    return str(row)
