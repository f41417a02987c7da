"""TurnStore: a turn's lease, batch commit and record, and the agent profile a session's turns go to."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ..sql import active_agents as active_agents_sql
from ..sql import leases as leases_sql
from ..sql import turns as turns_sql
from . import sealing
from .errors import NotFound, SessionBusy, UnknownReference
from .group_commit import Writer

logger = logging.getLogger(__name__)


# How long a turn's record (its Idempotency-Key and answer) is kept: far beyond any client's retries.
TURN_RETENTION_SECONDS = 24 * 3600


class TurnStore:
    """Store of leases, turn records, batches and active agents in PostgreSQL.

    Args:
        writer: runs a batch's writes (`session_backend_write`) on the app's pool.
    """

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.pool = writer.pool

    # active agent

    async def set_active_agent(self, session_id: str, agent_id: str, ttl_seconds: float | None) -> str:
        """Route the session's turns to the agent profile `agent_id`, for `ttl_seconds` (None: until deleted).

        Returns:
            The choice as JSON text (`session_id`, `agent_id`, `expires_at`, `updated_at`).

        Raises:
            NotFound: no such live session.
            UnknownReference: no agent profile has this id.
        """
        try:
            row = await self.pool.fetchval(active_agents_sql.SET_ACTIVE_AGENT, session_id, agent_id, ttl_seconds)
        except asyncpg.ForeignKeyViolationError as e:
            raise UnknownReference(f"agent profile {agent_id!r} not found") from e
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        logger.debug("session_id=<%s>, agent_id=<%s> | set active agent", session_id, agent_id)
        return str(row)

    async def get_active_agent(self, session_id: str) -> str:
        """Return the session's live active agent as JSON text.

        Raises:
            NotFound: no such live session, or none is set (or it lapsed).
        """
        row = await self.pool.fetchval(active_agents_sql.SELECT_ACTIVE_AGENT, session_id)
        if row is None:
            raise NotFound(f"session {session_id!r} has no active agent")
        return str(row)

    async def delete_active_agent(self, session_id: str) -> None:
        """Return the session to its own profile.

        Raises:
            NotFound: no such live session, or no active agent is set.
        """
        if await self.pool.fetchval(active_agents_sql.DELETE_ACTIVE_AGENT, session_id) is None:
            raise NotFound(f"session {session_id!r} has no active agent")
        logger.debug("session_id=<%s> | deleted active agent", session_id)

    # leases

    async def acquire_lease(
        self, session_id: str, owner: str, ttl_seconds: float, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Take, renew or take over (when expired) the session's lease for `ttl_seconds`.

        Args:
            session_id: the session (it need not exist yet).
            owner: the writer's token; the same owner renews its own lease (re-entrant).
            ttl_seconds: lifetime of the lease from now.
            idempotency_key: a client's Idempotency-Key: the answer of a turn committed under it comes back.

        Returns:
            `{"session_id", "owner", "locked_at", "expires_at", "agent_versions": {agent_id: version},
            "incarnation": int | None, "turn": dict | None, "actor_id": str | None, "active_agent": dict | None,
            "pending_extractions": [{turn_id, actor_id, agent_id, message_ids}]}` (the session's committed turns
            whose memories are not stored yet, oldest first).

        Raises:
            SessionBusy: another owner holds a live lease (`retry_after`: seconds until it expires).
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(leases_sql.ACQUIRE_LEASE, session_id, owner, ttl_seconds, idempotency_key)
            if row is not None:
                lease = dict(row)
                lease["turn"] = await self.writer.codec.open_value(lease["turn"], sealing.TURN)
                return lease
            held = await conn.fetchrow(leases_sql.SELECT_LEASE, session_id)
        if held is None:  # expired between the two statements: the caller may simply retry
            raise SessionBusy(f"session {session_id!r} is busy", retry_after=0.0)
        remaining = max(0.0, (held["expires_at"] - datetime.now(UTC)).total_seconds())
        raise SessionBusy(
            f"session {session_id!r} is busy: another writer holds its lease for {remaining:.1f} s more",
            retry_after=remaining,
        )

    async def release_lease(self, session_id: str, owner: str) -> None:
        """Release the lease if `owner` holds it.

        Raises:
            NotFound: `owner` holds no lease on the session.
        """
        if await self.pool.fetchval(leases_sql.RELEASE_LEASE, session_id, owner) is None:
            raise NotFound(f"{owner!r} holds no lease on session {session_id!r}")

    async def apply_batch(
        self,
        session_id: str,
        operations: list[dict[str, Any]],
        *,
        lease_owner: str | None = None,
        incarnation: int | None = None,
        turn: dict[str, Any] | None = None,
        release_lease: bool = False,
    ) -> dict[str, Any]:
        """Apply the writes of one turn in order, atomically, in one round trip.

        Args:
            session_id: the session written to.
            operations: dicts with `op` in `create_message` / `update_message` (with `agent_id`, `message`) or
                `update_agent` (with `agent`, optional `if_version`), validated by the caller.
            lease_owner: when given, write only while this owner holds the session's lease (fencing).
            incarnation: when given, write only into this incarnation of the session id.
            turn: `{turn_id, idempotency_key, result}`: record the turn as committed with the writes.
            release_lease: end `lease_owner`'s lease in the same transaction, after the writes.

        Returns:
            `{"created_messages", "existing_messages", "agent_versions": {agent_id: version}, "lease_ended"}`.

        Raises:
            NotFound, Conflict, PreconditionFailed: as the single-row operations; nothing is written.
            PreconditionFailed: the session was deleted and re-created since `incarnation`; nothing is written.
            Conflict: the turn was already decided (given up by its writer, or its key committed); nothing is written.
            LeaseNotHeld: `lease_owner` does not hold a live lease; nothing is written.
        """
        ops = list(operations)
        if incarnation is not None:
            ops.insert(0, {"op": "check_incarnation", "incarnation": incarnation})
        if turn is not None:
            # Last: a batch held up behind a lock then loses cleanly to a tombstone written meanwhile.
            ops.append({"op": "record_turn", **turn})
        if release_lease:  # with `lease_owner` (`BatchRequest` requires it; the SQL function refuses it without)
            ops.append({"op": "release_lease"})
        rows = await self.writer.write(session_id, ops, lease_owner)
        versions = {
            op["agent"]["agent_id"]: int(row["version"])
            for op, row in zip(ops, rows, strict=True)
            if op["op"] == "update_agent"
        }
        statuses = [row["status"] for row in rows]
        return {
            "created_messages": statuses.count("created"),
            "existing_messages": statuses.count("existing"),
            "agent_versions": versions,
            "lease_ended": release_lease,
        }

    async def resolve_turn(self, session_id: str, turn_id: str) -> str:
        """Decide the outcome of a turn whose writer lost the answer to its batch, once and for all.

        A turn not recorded yet is recorded as aborted, so its batch, should it still arrive, is refused.

        Returns:
            The turn's record as JSON text (`status` committed or aborted).

        Raises:
            NotFound: the session does not exist (nothing of the turn is stored).
        """
        async with self.pool.acquire() as conn:
            text = await conn.fetchval(turns_sql.INSERT_TURN_TOMBSTONE, session_id, turn_id)
            if text is None:
                # Lost the race to a batch (committed meanwhile) or the session is gone: a fresh snapshot tells.
                text = await conn.fetchval(turns_sql.SELECT_TURN, session_id, turn_id)
        if text is None:
            raise NotFound(f"session {session_id!r} not found")
        logger.debug("session_id=<%s>, turn_id=<%s> | resolved turn", session_id, turn_id)
        return await self.writer.codec.open_text(str(text), sealing.TURN)
