"""Every message and agent write goes through `Writer`: one call of `session_backend_write`, alone or in a group.

`GroupCommit` lets concurrent writes share one statement, one transaction and one WAL flush.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, NamedTuple

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from service_kit import jsoncodec

from ..sql import functions as functions_sql
from . import sealing
from .encryption import Codec
from .errors import NotStorable, from_postgres
from .sealing import Sealer

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


# Fields whose values travel as JSON text inside an operation (see `sql/functions.py`, version 3): per operation key,
# the kind of sealed value (`db/sealing.py`) and the fields of that object; a `None` stays JSON null.
_CONTENT_FIELDS = {
    "message": (sealing.MESSAGE, ("message", "redact_message")),
    "agent": (sealing.AGENT, ("state", "conversation_manager_state", "internal_state")),
}


def awaiting_input(internal_state: Any) -> bool:
    """Whether an agent's internal state holds a pending interrupt (Strands' `interrupt_state.activated`)."""
    interrupt = internal_state.get("interrupt_state") if isinstance(internal_state, dict) else None
    return isinstance(interrupt, dict) and interrupt.get("activated") in (True, "true")


def embed_content(operations: list[dict[str, Any]], sealer: Sealer = sealing.IDENTITY) -> list[dict[str, Any]]:
    """Copies of `operations` whose content values are JSON text (`service_kit.jsoncodec`), as the SQL function reads.

    Content is sealed by `sealer` (the identity with encryption off); what the function needs to know of it travels
    beside it: a message's Strands `tracking_id`, whether an agent awaits input.

    Raises:
        ValueError: a value the codec cannot encode (lone surrogates).
    """
    embedded: list[dict[str, Any]] = []
    for op in operations:
        original = op
        op = dict(op)
        for key, (kind, fields) in _CONTENT_FIELDS.items():
            if isinstance(op.get(key), dict):
                op[key] = {k: sealer.text(kind, _text(v)) if k in fields else v for k, v in op[key].items()}
        message = op.get("message")
        if isinstance(message, dict):
            # Strands' tracking id (#4420) beside the content, which the function cannot read inside JSON text.
            content = original.get("message", {}).get("message")
            message["tracking_id"] = content.get("tracking_id") if isinstance(content, dict) else None
        agent = op.get("agent")
        if isinstance(agent, dict) and "internal_state" in agent:
            agent["awaiting_input"] = awaiting_input(original["agent"]["internal_state"])
        if "result" in op:
            op["result"] = sealer.text(sealing.TURN, _text(op["result"]))
        if "window" in op:
            op["window"] = sealer.text(sealing.WINDOW, _text(op["window"]))
        embedded.append(op)
    return embedded


def _text(value: Any) -> str | None:
    return None if value is None else jsoncodec.dumps(value).decode()


class Writer:
    """Runs `session_backend_write` for the stores, through `GroupCommit` when it is on.

    Args:
        pool: the app's pool.
        group_commit: most concurrent writes applied in one statement and transaction; 0 or 1: each on its own.
        codec: seals content before it is written (None: encryption off, the identity).
    """

    def __init__(self, pool: asyncpg.Pool, group_commit: int = 0, codec: Codec | None = None) -> None:
        self.pool = pool
        self.group_commit = GroupCommit(pool, group_commit) if group_commit > 1 else None
        self.codec = codec or Codec(pool)

    async def write(
        self, session_id: str, operations: list[dict[str, Any]], lease_owner: str | None = None
    ) -> list[asyncpg.Record]:
        """Run `session_backend_write` (one statement, so all or nothing); its SQLSTATEs become domain errors.

        With group commit on, the write shares its statement and transaction with concurrent ones (`GroupCommit`).

        Args:
            session_id: the session written to.
            operations: the function's operations, in order.
            lease_owner: when given, write only while this owner holds the session's live lease (fencing).

        Returns:
            The function's rows (`status`, `version`, `body`), one per operation.

        Raises:
            StoreError: what the function signals (nothing is written); NotStorable: a value the codec refuses;
                NotFound: no such session (with encryption on, found before the write, to choose its data key).
        """
        sealer = await self.codec.for_session(self.pool, session_id)
        try:
            operations = embed_content(operations, sealer)
        except ValueError as e:
            raise NotStorable(str(e)) from e
        if self.group_commit is not None:
            try:
                text = jsoncodec.dumps(operations).decode()
            except ValueError:
                text = None  # refused by the json codec below, with the error a client gets without group commit
            if text is not None:
                return await self.group_commit.write(session_id, text, lease_owner)
        try:
            return await self.pool.fetch(functions_sql.WRITE, session_id, operations, lease_owner)
        except asyncpg.PostgresError as e:
            error = from_postgres(e)
            if error is None:
                raise
            raise error from e
