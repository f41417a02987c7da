"""`BidiWrites`: a `BidiAgent`'s conversation written through to the backend, off the event loop, in order."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from strands.bidi.agent import BidiAgent
from strands.bidi.hooks import BidiAgentStopEvent, BidiBeforeConnectionRestartEvent
from strands.hooks import MessageAddedEvent, MessageUpdatedEvent
from strands.types.session import SessionAgent, SessionMessage

if TYPE_CHECKING:
    from .session_manager import PostgreSQLSessionManager

logger = logging.getLogger(__name__)


class BidiWrites:
    """The hooks of `PostgreSQLSessionManager` for a `BidiAgent`: each message written as it is added or completed.

    Args:
        manager: the session manager whose session, records and batches these writes use.

    Attributes:
        kept_state: per agent id, the stored state a `BidiAgent` does not carry itself (kept across its writes).
    """

    def __init__(self, manager: PostgreSQLSessionManager) -> None:
        self._manager = manager
        self._write_lock: asyncio.Lock | None = None
        self._synced_state: dict[str, Any] = {}
        self.kept_state: dict[str, dict[str, Any]] = {}

    async def message_added(self, event: MessageAddedEvent[Any]) -> None:
        agent = event.agent
        if not isinstance(agent, BidiAgent):
            return
        # Strands' bookkeeping (next message_id, records held for redaction) stays on the loop; only HTTP leaves it.
        latest = self._manager._latest_agent_message[agent.agent_id]
        record = SessionMessage.from_message(event.message, latest.message_id + 1 if latest else 0)
        self._manager._latest_agent_message[agent.agent_id] = record
        self._manager._held_records.setdefault(agent.agent_id, []).append(record)
        await self.write(agent, {"op": "create_message", "agent_id": agent.agent_id, "message": record.to_dict()})

    async def message_updated(self, event: MessageUpdatedEvent[Any]) -> None:
        agent = event.agent
        if not isinstance(agent, BidiAgent):
            return
        # A response's placeholder message is replaced by its completed transcript, found by tracking id.
        for record in reversed(self._manager._held_records.get(agent.agent_id, [])):
            if record.message.get("tracking_id") == event.tracking_id:
                break
        else:
            logger.warning(
                "session_id=<%s>, tracking_id=<%s> | updated message not held",
                self._manager.session_id,
                event.tracking_id,
            )
            return
        record.message = event.message
        # A transcript completing its placeholder is no redaction: memories extracted from the message stay.
        op = {"op": "update_message", "agent_id": agent.agent_id, "message": record.to_dict(), "forget_memories": False}
        await self.write(agent, op)

    async def sync_agent(self, event: BidiAgentStopEvent | BidiBeforeConnectionRestartEvent) -> None:
        await self.write(event.agent)

    async def end_reply(self, agent: BidiAgent) -> None:
        """Store a `BidiAgent`'s state after one reply, as a turn's commit does: the update bumps the agent's version.

        Its messages are already stored (written through); the version bump tells every other copy of the session
        (another process's cached agent) that it is behind.

        Raises:
            SessionException: the backend refused (e.g. the lease fencing the writes is no longer held) or is down.
        """
        self._synced_state.pop(agent.agent_id, None)
        await self.write(agent)

    async def write(self, agent: BidiAgent, *operations: dict[str, Any]) -> None:
        """Send `operations`, plus the agent's state when it changed, as one batch on a worker thread, in order."""
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:
            ops = list(operations)
            session_agent = SessionAgent.from_agent(agent).to_dict() | self.kept_state.get(agent.agent_id, {})
            state = {k: session_agent[k] for k in ("state", "conversation_manager_state", "_internal_state")}
            if state != self._synced_state.get(agent.agent_id):
                ops.append(
                    {
                        "op": "update_agent",
                        "agent": session_agent,
                        "if_version": self._manager.agent_version(self._manager.session_id, agent.agent_id),
                    }
                )
            if not ops:
                return
            manager = self._manager
            incarnation = manager.incarnation(manager.session_id)
            await asyncio.to_thread(
                manager.apply_batch, manager.session_id, ops, manager.lease_owner, incarnation=incarnation
            )
            self._synced_state[agent.agent_id] = state
