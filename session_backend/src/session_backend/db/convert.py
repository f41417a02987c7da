"""A session's message log to Strands' `SnapshotSessionManager` layout in storage and back (strands-agents #3663).

Both directions run in one transaction: nothing is half-converted. The snapshot is Strands 1.62's `Snapshot.to_dict()`
(schema 1.0, scope `agent`) under its key layout, so `SnapshotSessionManager(session_id,
storage=PostgreSQLStorage(url, prefix=...))` restores it, and `RepositorySessionManager` restores the way back.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from ..sql import agents as agents_sql
from ..sql import convert as convert_sql
from ..sql import functions as functions_sql
from ..sql import sessions as sessions_sql
from ..sql import storage as storage_sql
from . import sealing
from .encryption import Codec
from .errors import AlreadyExists, NotFound, StoreError, from_postgres
from .group_commit import awaiting_input, embed_content
from .storage import check_key, check_prefix, index_text

logger = logging.getLogger(__name__)

SNAPSHOT_SCHEMA_VERSION = "1.0"
LATEST = "snapshots/snapshot_latest.json"


class InvalidSnapshot(StoreError):
    """A stored snapshot is not one Strands 1.62 wrote (schema, scope or shape)."""

    status = 422
    title = "Unprocessable Content"


def agent_scope(prefix: str, session_id: str) -> str:
    """The key prefix of a session's agent snapshots, as `SnapshotSessionManager` lays them out.

    Args:
        prefix: the `PostgreSQLStorage` prefix the manager's storage uses ("" or ending with `/`).
        session_id: the session.
    """
    return f"{prefix}session/{session_id}/scopes/agent/"


def snapshot_data(agent: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The `Snapshot.data` of an agent of the message log: what `RepositorySessionManager` would restore.

    The restored window: messages from the conversation manager's `removed_message_count` on (redacted ones in their
    redacted form), after the summarizing manager's `summary_message` when it has one.
    """
    cm_state = agent["conversation_manager_state"] or {}
    window = [row["redact_message"] or row["message"] for row in messages][cm_state.get("removed_message_count", 0) :]
    if cm_state.get("summary_message"):
        window.insert(0, cm_state["summary_message"])
    internal = agent["internal_state"] or {}
    data = {"messages": window, "state": agent["state"], "conversation_manager_state": cm_state}
    data |= {k: internal[k] for k in ("interrupt_state", "model_state") if k in internal}
    return data


def log_of_snapshot(snapshot: Any, key: str) -> tuple[list[Any], dict[str, Any]]:
    """The messages and `SessionAgent` fields of a snapshot, as the message log stores them.

    The log holds the window only (`removed_message_count` 0); a summary at its head stays in the conversation
    manager's state, which `RepositorySessionManager` prepends on restore.

    Raises:
        InvalidSnapshot: not a Strands 1.62 agent snapshot.
    """
    if (
        not isinstance(snapshot, dict)
        or snapshot.get("schema_version") != SNAPSHOT_SCHEMA_VERSION
        or snapshot.get("scope", "agent") != "agent"
        or not isinstance(snapshot.get("data"), dict)
        or not isinstance(snapshot["data"].get("messages", []), list)
    ):
        raise InvalidSnapshot(f"{key} is not a Strands agent snapshot of schema {SNAPSHOT_SCHEMA_VERSION}")
    data = snapshot["data"]
    messages = list(data.get("messages", []))
    cm_state = dict(data.get("conversation_manager_state") or {})
    if "removed_message_count" in cm_state:
        cm_state["removed_message_count"] = 0
    if cm_state.get("summary_message") and messages and messages[0] == cm_state["summary_message"]:
        messages = messages[1:]
    internal = {k: data[k] for k in ("interrupt_state", "model_state") if k in data}
    return messages, {"state": data.get("state") or {}, "conversation_manager_state": cm_state, "internal": internal}


class SessionConverter:
    """Converts sessions between the message log and snapshots in storage.

    Args:
        pool: an asyncpg pool created by `session_backend.db.create_pool`.
        codec: encryption at rest: what is read is opened, what is written sealed (None: off).
    """

    def __init__(self, pool: asyncpg.Pool, codec: Codec | None = None) -> None:
        """Keep the pool; one connection and transaction per conversion."""
        self.pool = pool
        self.codec = codec or Codec(pool)

    async def convert(
        self, session_id: str, to: Literal["snapshot", "messages"], *, prefix: str = "", replace: bool = False
    ) -> list[dict[str, Any]]:
        """Convert a session's agents to `to`; the source is kept.

        Args:
            session_id: the session.
            to: `snapshot` (message log → each agent's `snapshot_latest`) or `messages` (the way back).
            prefix: the `PostgreSQLStorage` prefix of the snapshot side ("" or ending with `/`).
            replace: overwrite what the target already holds (an agent's snapshot, or its log); else 409.

        Returns:
            Per agent converted: `{agent_id, messages, key}` (messages converted, the snapshot's storage key).

        Raises:
            NotFound: no such session (`snapshot`), or no snapshot of it (`messages`).
            AlreadyExists: the target holds the agent and `replace` is false.
            InvalidSnapshot: a stored snapshot is not one Strands wrote.
            InvalidKey: the prefix breaks Strands' key rules.
        """
        if prefix:
            check_prefix(prefix)
        async with self.pool.acquire() as conn, conn.transaction():
            if to == "snapshot":
                done = await self._to_snapshot(conn, session_id, prefix, replace)
            else:
                done = await self._to_messages(conn, session_id, prefix, replace)
        logger.debug("session_id=<%s>, to=<%s>, agents=<%d> | converted session", session_id, to, len(done))
        return done

    async def _to_snapshot(self, conn: Any, session_id: str, prefix: str, replace: bool) -> list[dict[str, Any]]:
        if await conn.fetchval(sessions_sql.SESSION_IS_LIVE, session_id) is None:
            raise NotFound(f"session {session_id!r} not found")
        done = []
        created_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for row in await conn.fetch(convert_sql.SELECT_AGENTS, session_id):
            agent = {k: await self.codec.open_value(v, sealing.AGENT) for k, v in row.items()}
            key = check_key(f"{agent_scope(prefix, session_id)}{agent['agent_id']}/{LATEST}")
            if not replace and await conn.fetchval(convert_sql.OBJECT_EXISTS, key):
                raise AlreadyExists(f"{key} exists (replace it with replace: true)")
            messages = [
                {k: await self.codec.open_value(v, sealing.MESSAGE) for k, v in m.items()}
                for m in await conn.fetch(convert_sql.SELECT_MESSAGES, session_id, agent["agent_id"])
            ]
            data = snapshot_data(agent, messages)
            snapshot = {"scope": "agent", "schema_version": SNAPSHOT_SCHEMA_VERSION, "created_at": created_at}
            # Serialized as Strands serializes snapshots (stdlib json: integers of any size, NUL kept).
            value = json.dumps(snapshot | {"data": data, "app_data": {}}, ensure_ascii=False).encode()
            sealer = await self.codec.for_storage_key(conn, key)
            await conn.execute(storage_sql.UPSERT_OBJECT, key, sealer.data(value), index_text(self.codec, key, value))
            done.append({"agent_id": agent["agent_id"], "messages": len(data["messages"]), "key": key})
        return done

    async def _to_messages(self, conn: Any, session_id: str, prefix: str, replace: bool) -> list[dict[str, Any]]:
        scope = agent_scope(prefix, session_id)
        latest = re.compile(rf"{re.escape(scope)}(?P<agent_id>[^/]+)/{re.escape(LATEST)}")
        found = [
            (m["agent_id"], row)
            for row in await conn.fetch(convert_sql.SELECT_AGENT_OBJECTS, scope)
            if (m := latest.fullmatch(row["key"]))
        ]
        if not found:
            raise NotFound(f"no snapshot of session {session_id!r} under {scope!r}")
        if await conn.fetchval(sessions_sql.SESSION_IS_LIVE, session_id) is None:
            await conn.execute(sessions_sql.DELETE_EXPIRED_SESSION, session_id)
            await conn.fetchval(sessions_sql.INSERT_SESSION, session_id, "AGENT", None, {}, None, None, None)
        done = []
        now = datetime.now(UTC).isoformat()
        sealer = await self.codec.for_session(conn, session_id)
        for agent_id, row in found:
            try:
                snapshot = json.loads(await self.codec.open_data(row["value"]))
            except ValueError as e:
                raise InvalidSnapshot(f"{row['key']} is not JSON: {e}") from e
            messages, agent = log_of_snapshot(snapshot, row["key"])
            ops: list[dict[str, Any]] = []
            if await conn.fetchval(convert_sql.AGENT_EXISTS, session_id, agent_id):
                if not replace:
                    raise AlreadyExists(f"agent {agent_id!r} exists in session {session_id!r} (replace: true)")
                await conn.execute(convert_sql.DELETE_MESSAGES, session_id, agent_id)
                cm_state = agent["conversation_manager_state"]
                body = {"agent_id": agent_id, "state": agent["state"], "internal_state": agent["internal"]}
                ops.append({"op": "update_agent", "agent": body | {"conversation_manager_state": cm_state}})
            else:
                await conn.fetchrow(
                    agents_sql.INSERT_AGENT,
                    session_id,
                    agent_id,
                    sealer.value(sealing.AGENT, agent["state"]),
                    sealer.value(sealing.AGENT, agent["conversation_manager_state"]),
                    sealer.value(sealing.AGENT, agent["internal"]),
                    None,
                    None,
                    awaiting_input(agent["internal"]),
                )
            ops += [
                {
                    "op": "create_message",
                    "agent_id": agent_id,
                    "message": {
                        "message": m,
                        "message_id": i,
                        "redact_message": None,
                        "created_at": now,
                        "updated_at": now,
                    },
                }
                for i, m in enumerate(messages)
            ]
            if ops:
                try:
                    await conn.fetch(functions_sql.WRITE, session_id, embed_content(ops, sealer), None)
                except asyncpg.PostgresError as e:
                    raise from_postgres(e) or e from e
            done.append({"agent_id": agent_id, "messages": len(messages), "key": row["key"]})
        return done
