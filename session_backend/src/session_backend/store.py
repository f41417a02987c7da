"""SessionStore: every read and write of sessions, agents, messages and multi-agent state, over one asyncpg pool.

Reads return JSON text built by PostgreSQL (passed to HTTP clients as is), with what routes need beside it (an
agent's version); writes raise the domain errors of `session_backend.errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from .errors import AlreadyExists, NotFound, SessionBusy, UnknownReference, from_postgres
from .sql import active_agents as active_agents_sql
from .sql import agents as agents_sql
from .sql import fork as fork_sql
from .sql import functions as functions_sql
from .sql import leases as leases_sql
from .sql import messages as messages_sql
from .sql import multi_agents as multi_agents_sql
from .sql import sessions as sessions_sql
from .sql import turns as turns_sql

logger = logging.getLogger(__name__)


# A list page stops once it holds this much JSON: a page of sessions with large metadata stays small in memory on both
# sides (the agent service passes pages through).
MAX_PAGE_BYTES = 1024 * 1024


# How long a turn's record (its Idempotency-Key and answer) is kept: far beyond any client's retries.
TURN_RETENTION_SECONDS = 24 * 3600


class StoredAgent(NamedTuple):
    """An agent as stored: its `version` (the ETag) and its JSON text (which holds the same version)."""

    version: int
    body: str


# Errors that undo one item of a group but would not have happened to it alone (locks taken in another order by a
# concurrent group): the item is written again on its own.
_RETRY_ALONE = frozenset({"40P01", "40001"})

# Groups in flight at once per process: one fills while another is on the wire.
GROUP_COMMIT_CONCURRENCY = 2


class _Pending(NamedTuple):
    session_id: str
    operations: str  # JSON text
    lease_owner: str | None
    future: asyncio.Future[list[asyncpg.Record]]


def _write_error(error: asyncpg.PostgresError) -> Exception:
    return from_postgres(error) or error


class GroupCommit:
    """Concurrent calls of `session_backend_write` share one statement, one transaction and one WAL flush.

    Each caller queues its write; while fewer than `GROUP_COMMIT_CONCURRENCY` groups are in flight, a group task
    takes up to `max_items` queued writes (oldest first) and applies them with `session_backend_write_many`, each
    in its own subtransaction, and goes on while writes are queued. A caller is answered only once the statement,
    and with it its transaction, has committed. A group of one runs `session_backend_write` itself.

    Args:
        pool: the store's pool.
        max_items: most writes in one group (at least 2).
    """

    def __init__(self, pool: asyncpg.Pool, max_items: int) -> None:
        self.pool = pool
        self.max_items = max_items
        self._queue: deque[_Pending] = deque()
        self._groups = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, session_id: str, operations: str, lease_owner: str | None) -> list[asyncpg.Record]:
        """Apply `operations` (JSON text of `session_backend_write`'s list) in the next group; wait for its commit.

        Returns:
            The function's rows (`status`, `version`, `body`), one per operation.

        Raises:
            StoreError: what `session_backend_write` signals for this write alone (nothing of it is written).
            asyncpg.PostgresError: any other refusal of this write by PostgreSQL (e.g. a DataError).
            Exception: what the group's connection raised (e.g. `asyncpg.ConnectionDoesNotExistError`): the outcome
                of the whole group is unknown, as for a single statement whose connection broke.
        """
        future: asyncio.Future[list[asyncpg.Record]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(session_id, operations, lease_owner, future))
        self._start()
        return await future

    def _start(self) -> None:
        while self._queue and self._groups < GROUP_COMMIT_CONCURRENCY:
            self._groups += 1
            task = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Pending]:
        count = min(self.max_items, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]

    async def _run(self) -> None:
        group: list[_Pending] = []
        try:
            async with self.pool.acquire() as conn:
                while self._queue:
                    group = self._take()
                    healthy = await self._apply(conn, group)
                    group = []
                    if not healthy or conn.is_closed():  # the next group takes another connection
                        break
        except BaseException as e:  # the pool gave no connection (the database is down) or the task was cancelled
            for pending in group or self._take():
                if pending.future.done():
                    continue
                if isinstance(e, asyncio.CancelledError):
                    pending.future.cancel()
                else:
                    pending.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
        finally:
            self._groups -= 1
            self._start()

    async def _apply(self, conn: PoolConnectionProxy[asyncpg.Record], group: list[_Pending]) -> bool:
        """Apply `group` on `conn` and answer each of its writes; False when the connection failed under it."""
        retry: list[int] = []
        try:
            if len(group) == 1:
                (pending,) = group
                try:
                    rows = await conn.fetch(
                        functions_sql.WRITE_TEXT, pending.session_id, pending.operations, pending.lease_owner
                    )
                except asyncpg.PostgresError as e:
                    if not pending.future.done():  # done: its caller was cancelled
                        pending.future.set_exception(_write_error(e))
                else:
                    if not pending.future.done():
                        pending.future.set_result(rows)
                return True
            # Writes to different sessions are independent: one lock order (by session id, arrival order within a
            # session) keeps concurrent groups from deadlocking each other over session rows.
            group.sort(key=lambda p: p.session_id)
            results = await conn.fetch(
                functions_sql.WRITE_MANY,
                [p.session_id for p in group],
                [p.operations for p in group],
                [p.lease_owner for p in group],
            )
        except Exception as e:
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(e)
            return False
        written: list[list[asyncpg.Record]] = [[] for _ in group]
        errors: dict[int, Exception] = {}
        for row in results:
            index = row["item"] - 1
            code = row["error_code"]
            if code is None:
                written[index].append(row)
            elif code in _RETRY_ALONE:
                retry.append(index)
            else:
                fields = {"C": code, "M": row["error_message"], "D": row["error_detail"] or None}
                fields["H"] = row["error_hint"] or None
                errors[index] = _write_error(asyncpg.PostgresError.new({k: v for k, v in fields.items() if v}))
        for index, pending in enumerate(group):
            if index in retry or pending.future.done():
                continue
            if index in errors:
                pending.future.set_exception(errors[index])
            else:
                pending.future.set_result(written[index])
        for index in retry:
            if not await self._apply(conn, [group[index]]):
                return False
        return True


class SessionStore:
    """Store of the Strands session model in PostgreSQL.

    Args:
        pool: an asyncpg pool created by `session_backend.db.create_pool` (jsonb codec installed).
        group_commit: most concurrent writes applied in one statement and transaction (`GroupCommit`); 0 or 1: each
            write on its own.
    """

    def __init__(self, pool: asyncpg.Pool, *, group_commit: int = 0) -> None:
        self.pool = pool
        self.group_commit = GroupCommit(pool, group_commit) if group_commit > 1 else None

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
            The page as JSON texts (at most `limit` rows and about `MAX_PAGE_BYTES`), and the keyset position to
            continue from (None on the last page).
        """
        after_ts, after_id = after if after else (None, None)
        rows = await self.pool.fetch(
            sessions_sql.LIST_SESSIONS, actor_id, after_ts, after_id, limit + 1, MAX_PAGE_BYTES
        )
        page = rows[:limit]
        more = bool(rows) and int(rows[0]["fetched"]) > len(page)
        next_key = (page[-1][0], page[-1][1]) if more else None
        return [r[2] for r in page], next_key

    async def delete_session(self, session_id: str) -> None:
        """Delete a session with its agents, messages and multi-agent state (one statement, cascading).

        Raises:
            NotFound: no such live session.
        """
        deleted = await self.pool.fetchval(sessions_sql.DELETE_SESSION, session_id)
        if deleted is None:
            raise NotFound(f"session {session_id!r} not found")
        logger.debug("session_id=<%s> | deleted session", session_id)

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
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        if row["session"] is None:
            raise AlreadyExists(f"session {new_session_id!r} already exists")
        logger.debug("session_id=<%s>, new_session_id=<%s> | forked session", session_id, new_session_id)
        return str(row["session"]), {k: int(row[k]) for k in ("agents", "messages", "multi_agents")}

    async def sweep_expired(self, batch_size: int) -> int:
        """Delete expired sessions in batches of `batch_size` until none is left, expired leases and old turn records.

        Returns:
            The number of sessions deleted.
        """
        await self.pool.execute(leases_sql.SWEEP_EXPIRED_LEASES)
        await self.pool.execute(active_agents_sql.SWEEP_EXPIRED_ACTIVE_AGENTS)
        await self.pool.execute(turns_sql.SWEEP_OLD_TURNS, TURN_RETENTION_SECONDS)
        total = 0
        while True:
            status = await self.pool.execute(sessions_sql.SWEEP_EXPIRED, batch_size)
            count = int(status.split()[-1])
            total += count
            if count < batch_size:
                return total

    async def counts(self) -> dict[str, Any]:
        """What the metrics endpoint shows of the database (a few aggregate queries; call once per scrape).

        Returns:
            `{"sessions": live sessions, "leases": live leases, "active_agents": {agent_id: live sessions routed}}`.
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(sessions_sql.COUNT_LIVE)
            assert row is not None  # an aggregate always yields its row
            by_agent = await conn.fetch(active_agents_sql.COUNT_BY_AGENT)
        return {
            "sessions": int(row["sessions"]),
            "leases": int(row["leases"]),
            "active_agents": {r["agent_id"]: int(r["sessions"]) for r in by_agent},
        }

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
            "incarnation": int | None, "turn": dict | None, "actor_id": str | None, "active_agent": dict | None}`.

        Raises:
            SessionBusy: another owner holds a live lease (`retry_after`: seconds until it expires).
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(leases_sql.ACQUIRE_LEASE, session_id, owner, ttl_seconds, idempotency_key)
            if row is not None:
                return dict(row)
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

    # agents

    async def create_agent(self, session_id: str, agent: dict[str, Any]) -> StoredAgent:
        """Create an agent from a Strands `SessionAgent.to_dict()`-shaped mapping (validated by the caller).

        Returns:
            The stored agent (`version` 1).

        Raises:
            NotFound: the session does not exist.
            AlreadyExists: the agent exists.
        """
        row = await self._insert_in_live_session(
            agents_sql.INSERT_AGENT,
            session_id,
            f"agent {agent['agent_id']!r}",
            agent["agent_id"],
            agent["state"],
            agent["conversation_manager_state"],
            agent["internal_state"],
            agent["created_at"],
            agent["updated_at"],
        )
        return StoredAgent(row["version"], row["body"])

    async def get_agent(self, session_id: str, agent_id: str) -> StoredAgent:
        """Return the agent.

        Raises:
            NotFound: no such session or agent.
        """
        row = await self.pool.fetchrow(agents_sql.SELECT_AGENT, session_id, agent_id)
        if row is None:
            raise NotFound(f"agent {agent_id!r} not found in session {session_id!r}")
        return StoredAgent(row["version"], row["body"])

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
        (row,) = await self._write(session_id, [op])
        return StoredAgent(row["version"], row["body"])

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
            `{"created_messages", "existing_messages", "agent_versions": {agent_id: version}, "lease_released"}`.

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
        if release_lease:
            if lease_owner is None:
                raise ValueError("release_lease needs lease_owner")
            ops.append({"op": "release_lease"})
        rows = await self._write(session_id, ops, lease_owner)
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
            "lease_released": release_lease,
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
        return str(text)

    async def _write(
        self, session_id: str, operations: list[dict[str, Any]], lease_owner: str | None = None
    ) -> list[asyncpg.Record]:
        """Run `session_backend_write` (one statement, so all or nothing); its SQLSTATEs become domain errors.

        With group commit on, the write shares its statement and transaction with concurrent ones (`GroupCommit`).
        """
        if self.group_commit is not None:
            try:
                text = orjson.dumps(operations).decode()
            except orjson.JSONEncodeError:
                text = None  # refused by the jsonb codec below, with the error a client gets without group commit
            if text is not None:
                return await self.group_commit.write(session_id, text, lease_owner)
        try:
            return await self.pool.fetch(functions_sql.WRITE, session_id, operations, lease_owner)
        except asyncpg.PostgresError as e:
            error = from_postgres(e)
            if error is None:
                raise
            raise error from e

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
        (row,) = await self._write(session_id, [op])
        return row["status"] == "created", str(row["body"])

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
        op = {"op": "update_message", "agent_id": agent_id, "message": message | {"message_id": message_id}}
        (row,) = await self._write(session_id, [op])
        return str(row["body"])

    async def list_messages(self, session_id: str, agent_id: str, *, offset: int, limit: int | None) -> str:
        """Return messages ordered by `message_id` as one JSON array text.

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
        row = await self._insert_in_live_session(
            multi_agents_sql.INSERT_MULTI_AGENT, session_id, f"multi-agent {multi_agent_id!r}", multi_agent_id, state
        )
        return str(row[0])

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
