"""`PostgreSQLSessionManager`: Strands' `RepositorySessionManager` on `PostgreSQLSessionRepository`.

It commits each invocation's writes as one batch (one round trip, all or nothing).
"""

from __future__ import annotations

import logging
from typing import Any

from strands.hooks import AfterInvocationEvent, BeforeInvocationEvent, HookRegistry
from strands.session.repository_session_manager import RepositorySessionManager
from strands.types.session import SessionAgent, SessionMessage

from ._http import DEFAULT_BASE_URL
from ._messages import gc_paused
from .exceptions import BackendUnavailableError
from .postgresql_session_repository import PostgreSQLSessionRepository

logger = logging.getLogger(__name__)


class PostgreSQLSessionManager(RepositorySessionManager, PostgreSQLSessionRepository):
    """Session manager persisting a Strands agent in PostgreSQL via the session backend.

    Like Strands' `S3SessionManager`, it is both the `RepositorySessionManager` and its own repository::

        agent = Agent(session_manager=PostgreSQLSessionManager(session_id="user-42"))

    With `batch_writes` (the default) the messages and agent state an invocation produces are held in memory and
    committed in one backend transaction when the invocation ends, before the agent returns: one round trip per
    turn, and a turn is stored whole or not at all. An invocation that fails before the model answered stores
    nothing; one whose commit finds the backend unreachable raises, and its writes go out first with the next
    invocation's. Writes outside an invocation (agent creation, restore) go straight through.

    Args:
        session_id: id of the session; created in the backend when it does not exist.
        base_url: URL of the session backend.
        api_key: bearer token for the backend.
        batch_writes: buffer each invocation's writes and commit them together (False: one request per write).
        **kwargs: passed to `PostgreSQLSessionRepository` (`timeout`, `client`, `retries`, `actor_id`,
            `ttl_seconds`).

    Raises:
        SessionException: the backend is unreachable or refused to read or create the session.
    """

    def __init__(
        self,
        session_id: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        batch_writes: bool = True,
        **kwargs: Any,
    ) -> None:
        PostgreSQLSessionRepository.__init__(self, base_url=base_url, api_key=api_key, **kwargs)
        self.batch_writes = batch_writes
        # Set by a caller holding the session's lease (the agent service): batches are then fenced by it.
        self.lease_owner: str | None = None
        # Set by a caller before an invocation (`{"turn_id", "idempotency_key"}`): the batch records the turn, with
        # its answer, so a retry under the same key gets that answer and a lost commit can be resolved.
        self.turn: dict[str, Any] | None = None
        # The turn id of the last batch that was sent but whose answer was lost (see `resolve_turn`).
        self.unresolved_turn_id: str | None = None
        self._pending: list[dict[str, Any]] | None = None
        self._unsent: list[dict[str, Any]] = []
        RepositorySessionManager.__init__(self, session_id=session_id, session_repository=self)

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        """Register Strands' session hooks, plus the start and end of each invocation's write batch."""
        # After-events run their callbacks in reverse order: registered first, the flush runs after Strands'
        # own AfterInvocationEvent sync of the agent, so that sync is part of the batch.
        registry.add_callback(AfterInvocationEvent, self._end_batch)
        super().register_hooks(registry, **kwargs)
        registry.add_callback(BeforeInvocationEvent, self._begin_batch)

    def initialize(self, agent: Any, **kwargs: Any) -> None:
        """Restore (or create) the agent in the session.

        The cyclic GC is paused while thousands of restored messages become objects (they hold no cycles, and its
        passes dominated restore time).
        """
        with gc_paused():
            super().initialize(agent, **kwargs)

    def _begin_batch(self, event: BeforeInvocationEvent) -> None:
        if self.batch_writes:
            # Writes of an earlier invocation whose commit found the backend down go first: storage catches up
            # with what the agent holds in memory.
            self._pending, self._unsent = self._unsent, []

    def _end_batch(self, event: AfterInvocationEvent) -> None:
        pending, self._pending = self._pending, None
        if not pending:
            return
        messages = event.agent.messages
        last = messages[-1] if messages else None
        answered = event.result is not None or (
            last is not None
            and (last["role"] == "assistant" or any("toolResult" in block for block in last["content"]))
        )
        if not answered:
            # The invocation failed before the model answered: the prompt alone is not a turn worth storing.
            logger.debug("session_id=<%s> | invocation failed, %d writes discarded", self.session_id, len(pending))
            return
        if not any(op["op"] == "update_agent" for op in pending):
            # Every committed turn bumps the agent's version, so a writer holding a stale copy is refused (412).
            pending.append({"op": "update_agent", "agent": SessionAgent.from_agent(event.agent).to_dict()})
        operations = _coalesce(pending, self._agent_versions, self.session_id)
        turn = None
        if self.turn is not None:
            result = event.result
            answer = {
                "response": str(result).strip() if result is not None else "",
                "conversation_length": len(messages),
                "usage": dict(result.metrics.accumulated_usage) if result is not None else {},
            }
            turn = self.turn | {"result": answer}
        try:
            self.apply_batch(
                self.session_id,
                operations,
                lease_owner=self.lease_owner,
                # A copy read from an earlier life of this session id must not write into a re-created one.
                incarnation=self.incarnation(self.session_id),
                turn=turn,
            )
        except BackendUnavailableError:
            self._unsent = pending
            self.unresolved_turn_id = turn["turn_id"] if turn is not None else None
            raise

    def create_message(self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any) -> None:
        """Append a message now, or at the end of the running invocation when batching."""
        if self._pending is None:
            return super().create_message(session_id, agent_id, session_message, **kwargs)
        self._pending.append({"op": "create_message", "agent_id": agent_id, "message": session_message.to_dict()})

    def update_message(self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any) -> None:
        """Replace a message now, or at the end of the running invocation when batching."""
        if self._pending is None:
            return super().update_message(session_id, agent_id, session_message, **kwargs)
        self._pending.append({"op": "update_message", "agent_id": agent_id, "message": session_message.to_dict()})

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Replace the agent's state now, or at the end of the running invocation when batching."""
        if self._pending is None:
            return super().update_agent(session_id, session_agent, **kwargs)
        self._pending.append({"op": "update_agent", "agent": session_agent.to_dict()})


def _coalesce(
    pending: list[dict[str, Any]], versions: dict[tuple[str, str], int], session_id: str
) -> list[dict[str, Any]]:
    """Keep every message write in order; of several updates of one agent keep the last.

    The update kept is conditional on the version read before the turn (`if_version`).
    """
    last_update = {op["agent"]["agent_id"]: i for i, op in enumerate(pending) if op["op"] == "update_agent"}
    out = []
    for i, op in enumerate(pending):
        if op["op"] == "update_agent":
            agent_id = op["agent"]["agent_id"]
            if last_update[agent_id] != i:
                continue
            op = op | {"if_version": versions.get((session_id, agent_id))}
        out.append(op)
    return out
