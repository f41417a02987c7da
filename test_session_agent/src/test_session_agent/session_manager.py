"""`PostgreSQLSessionManager`: Strands' `RepositorySessionManager` on `PostgreSQLSessionRepository`.

It commits each invocation's writes as one batch (one round trip, all or nothing); a `BidiAgent`'s messages, which
no invocation bounds, are written through as they are added or updated, off the event loop.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strands.agent.conversation_manager import NullConversationManager
from strands.bidi.agent import BidiAgent
from strands.bidi.hooks import BidiAgentStopEvent, BidiBeforeConnectionRestartEvent
from strands.hooks import (
    AfterInvocationEvent,
    AfterModelCallEvent,
    AfterMultiAgentInvocationEvent,
    AfterNodeCallEvent,
    AgentInitializedEvent,
    BeforeInvocationEvent,
    HookRegistry,
    MessageAddedEvent,
    MessageUpdatedEvent,
    MultiAgentInitializedEvent,
)
from strands.session.repository_session_manager import RepositorySessionManager
from strands.types.content import Message
from strands.types.session import SessionAgent, SessionMessage

from ._batch import coalesce, stored_messages
from ._bidi import BidiWrites
from ._context_window import StoredMessages
from ._http import DEFAULT_BASE_URL
from ._messages import gc_paused, max_tokens_result
from .exceptions import BackendUnavailableError
from .postgresql_session_repository import PostgreSQLSessionRepository

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnContext:
    """What the caller of a turn (e.g. the agent service, holding the session's lease) passes to `begin_turn`.

    Attributes:
        lease_owner: the turn's writes land only while this owner holds the session's lease (fencing); None: not
            fenced.
        turn_id: recorded with the turn's commit (with its answer), so a commit whose answer was lost can be
            resolved; None: a fresh id per commit, and an invocation that failed mid-way may still store its
            answered part.
        idempotency_key: the client's key recorded with the turn: a retry under it gets the stored answer.
        ends_lease: when set, the turn's commit also ends `lease_owner`'s lease (one request fewer); it is called
            just before the commit is sent, so the caller stops renewing the lease first.
        extraction: when set (with `turn_id`), called with the agent's messages the commit stores, as
            `(message_id, message)` pairs in order, just before it is sent; what it returns (`{actor_id, agent_id,
            message_ids}`, or None: nothing) is recorded with the turn as its pending memory extraction.
    """

    lease_owner: str | None = None
    turn_id: str | None = None
    idempotency_key: str | None = None
    ends_lease: Callable[[], None] | None = None
    extraction: Callable[[list[tuple[int, Message]]], dict[str, Any] | None] | None = None


class PostgreSQLSessionManager(RepositorySessionManager, PostgreSQLSessionRepository):
    """Session manager persisting a Strands agent in PostgreSQL via the session backend.

    Like Strands' `S3SessionManager`, it is both the `RepositorySessionManager` and its own repository::

        agent = Agent(session_manager=PostgreSQLSessionManager(session_id="user-42"))

    With `batch_writes` (the default) the messages and agent state an invocation produces are held in memory and
    committed in one backend transaction when the invocation ends, before the agent returns: one round trip per
    turn, and a turn is stored whole or not at all. An invocation that fails before the model answered stores
    nothing; one whose commit finds the backend unreachable raises, and its writes go out first with the next
    invocation's. Writes outside an invocation (agent creation, restore) go straight through.

    A `BidiAgent` streams without invocations, so its writes are never held: each message added (and each
    transcript update, `MessageUpdatedEvent`) is one `/batch` request on a worker thread (the event loop never
    waits on HTTP), with the agent's state when it changed; the state is also synced when the agent stops or
    restarts its connection. Its restore runs when the agent is built (Strands' `AgentInitializedEvent` is
    synchronous): build a `BidiAgent` off the event loop, e.g. with `asyncio.to_thread`.

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
        # The running turn's context, passed by its caller (`begin_turn`); None: writes are neither fenced nor recorded.
        self._context: TurnContext | None = None
        self._lease_ended = False
        # The turn id of the last batch that was sent but whose answer was lost (see `resolve_turn`).
        self.unresolved_turn_id: str | None = None
        self._pending: list[dict[str, Any]] | None = None
        # The running invocation's model stopped at `max_tokens`: Strands raises, yet the partial reply is answered.
        self._max_tokens = False
        self._unsent: list[dict[str, Any]] = []
        # BidiAgent writes: one at a time, in the order the agent made them; agent state as last stored.
        self._bidi = BidiWrites(self)
        self._restoring: Any = None
        # Per agent: what the backend holds of its messages, to record its reduced context window with each turn.
        self._stored: dict[str, StoredMessages] = {}
        RepositorySessionManager.__init__(self, session_id=session_id, session_repository=self)

    def begin_turn(self, context: TurnContext) -> None:
        """Run the next invocations (or a BidiAgent's writes) under `context`, until `end_turn`.

        Args:
            context: the lease that fences the writes, the turn recorded with the commit, and whether the commit
                ends the lease.
        """
        self._context = context
        self._lease_ended = False

    def end_turn(self) -> bool:
        """Forget the turn's context.

        Returns:
            Whether the turn's commit ended the lease (`TurnContext.ends_lease`), so the caller need not release it.
        """
        ended, self._context, self._lease_ended = self._lease_ended, None, False
        return ended

    def latest_message_id(self, agent_id: str) -> int | None:
        """The message_id of the agent's newest message (None: it has none yet, or it is not initialized)."""
        latest = self._latest_agent_message.get(agent_id)
        return latest.message_id if latest is not None else None

    @property
    def lease_owner(self) -> str | None:
        """The lease owner fencing the running turn's writes (None: not fenced)."""
        return self._context.lease_owner if self._context is not None else None

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        """Register the session hooks: Strands' own for `Agent`s, write batches, and BidiAgent write-through (async)."""
        # After-events run their callbacks in reverse order: registered first, the flush runs after Strands'
        # own AfterInvocationEvent sync of the agent, so that sync is part of the batch.
        registry.add_callback(AfterInvocationEvent, self._end_batch)
        registry.add_callback(AgentInitializedEvent, lambda event: self.initialize(event.agent))
        # Strands' own per-message callbacks are synchronous (blocking HTTP): they serve `Agent`s only here.
        registry.add_callback(MessageAddedEvent, self._agent_message_added)
        registry.add_callback(AfterInvocationEvent, lambda event: self.sync_agent(event.agent))
        registry.add_callback(BeforeInvocationEvent, self._begin_batch)
        registry.add_callback(AfterModelCallEvent, self._model_stopped)
        registry.add_callback(MessageAddedEvent, self._bidi.message_added)
        registry.add_callback(MessageUpdatedEvent, self._bidi.message_updated)
        registry.add_callback([BidiAgentStopEvent, BidiBeforeConnectionRestartEvent], self._bidi.sync_agent)
        registry.add_callback(MultiAgentInitializedEvent, lambda event: self.initialize_multi_agent(event.source))
        registry.add_callback(AfterNodeCallEvent, lambda event: self.sync_multi_agent(event.source))
        registry.add_callback(AfterMultiAgentInvocationEvent, lambda event: self.sync_multi_agent(event.source))

    def initialize(self, agent: Any, **kwargs: Any) -> None:
        """Restore (or create) the agent in the session.

        The cyclic GC is paused while thousands of restored messages become objects (they hold no cycles, and its
        passes dominated restore time).
        """
        self._restoring = agent
        try:
            with gc_paused():
                super().initialize(agent, **kwargs)
                if not isinstance(agent, BidiAgent):
                    self._restore_context_window(agent)
        finally:
            self._restoring = None

    def _restore_context_window(self, agent: Any) -> None:
        """Rebuild the context window the agent's last turn recorded (#4270, #4027); none: Strands' restore stands."""
        stored = self._stored[agent.agent_id] = StoredMessages()
        records = self._held_records.get(agent.agent_id, [])
        for record in records:
            stored.stored(record.message_id, record.to_message())
        if not records:
            return
        window = self.read_context_window(self.session_id, agent.agent_id)
        if window is None:
            return
        stored.window_stored = True
        agent.messages = [item["message"] for item in window]
        for item in window:
            if item["stored"]:
                stored.stored(item["message_id"], item["message"])
        logger.debug("session_id=<%s>, messages=<%d> | restored context window", self.session_id, len(window))

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """Read the agent; while restoring, reconcile what an `Agent` and a `BidiAgent` store of it.

        A BidiAgent has no conversation manager or model state: it keeps those an `Agent` stored (its writes send
        them back unchanged), and an `Agent` restoring what only a BidiAgent wrote starts its conversation manager
        afresh instead of refusing the empty state.
        """
        session_agent = super().read_agent(session_id, agent_id, **kwargs)
        agent = self._restoring
        if session_agent is None or agent is None:
            return session_agent
        if isinstance(agent, BidiAgent):
            self._bidi.kept_state[agent_id] = {
                "conversation_manager_state": session_agent.conversation_manager_state,
                "_internal_state": session_agent._internal_state,
            }
        elif not session_agent.conversation_manager_state and hasattr(agent, "conversation_manager"):
            session_agent.conversation_manager_state = agent.conversation_manager.get_state()
        return session_agent

    def append_message(self, message: Any, agent: Any, **kwargs: Any) -> None:
        """Append a message; one Strands merged into the latest (same `tracking_id`) replaces that one in place.

        Strands 1.62 merges a same-role continuation into the live message and reports it as added (strands-agents
        #4420): stored as a new row, a restore would show the turn twice. It is written as an update of the held
        row instead, so message ids stay contiguous (the backend also replaces a row by tracking id).
        """
        latest = self._latest_agent_message.get(agent.agent_id)
        tracking_id = message.get("tracking_id")
        if latest is not None and tracking_id is not None and latest.message.get("tracking_id") == tracking_id:
            logger.debug(
                "session_id=<%s>, tracking_id=<%s> | merged message replaces its row", self.session_id, tracking_id
            )
            latest.message = message
            self.update_message(self.session_id, agent.agent_id, latest)
            return
        super().append_message(message, agent, **kwargs)

    def _agent_message_added(self, event: MessageAddedEvent[Any]) -> None:
        if isinstance(event.agent, BidiAgent):
            return
        self.append_message(event.message, event.agent)
        self.sync_agent(event.agent)

    async def end_bidi_reply(self, agent: BidiAgent) -> None:
        """Store a `BidiAgent`'s state after one reply, as a turn's commit does (`BidiWrites.end_reply`).

        Raises:
            SessionException: the backend refused (e.g. the lease fencing the writes is no longer held) or is down.
        """
        await self._bidi.end_reply(agent)

    def _model_stopped(self, event: AfterModelCallEvent) -> None:
        if event.stop_response is not None and not event.retry:
            self._max_tokens = event.stop_response.stop_reason == "max_tokens"

    def _begin_batch(self, event: BeforeInvocationEvent) -> None:
        self._max_tokens = False
        if not self.batch_writes:
            return
        if self._unsent and self.unresolved_turn_id is not None:
            # The last commit was sent but unanswered: learn whether it landed before sending its writes again (a
            # landed one resent would meet its own new agent version and be refused for good).
            record = self.resolve_turn(self.session_id, self.unresolved_turn_id)
            self.unresolved_turn_id = None
            if record is not None and record["status"] == "committed":
                self._unsent = []
                self.read_agent(self.session_id, event.agent.agent_id)  # the version that commit wrote
        # Writes of an earlier invocation whose commit found the backend down go first: storage catches up with
        # what the agent holds in memory.
        self._pending, self._unsent = self._unsent, []

    def _end_batch(self, event: AfterInvocationEvent) -> None:
        pending, self._pending = self._pending, None
        if not pending:
            return
        messages = event.agent.messages
        last = messages[-1] if messages else None
        result = event.result
        if result is None and self._max_tokens and last is not None and last["role"] == "assistant":
            result = max_tokens_result(event.agent)  # Strands raises, and its guidance is to go on: a reply
        # A caller recording turns (the agent service) answers a failed invocation with an error, so none of it
        # may be stored, let alone recorded as the answer to its Idempotency-Key.
        context = self._context
        recorded = context is not None and context.turn_id is not None
        answered = result is not None or (
            not recorded
            and last is not None
            and (last["role"] == "assistant" or any("toolResult" in block for block in last["content"]))
        )
        if not answered:
            # The invocation failed before the model answered: the prompt alone is not a turn worth storing.
            logger.debug("session_id=<%s> | invocation failed, %d writes discarded", self.session_id, len(pending))
            return
        if not any(op["op"] == "update_agent" for op in pending):
            # Every committed turn bumps the agent's version, so a writer holding a stale copy is refused (412).
            pending.append({"op": "update_agent", "agent": SessionAgent.from_agent(event.agent).to_dict()})
        pending += self._context_window_ops(event.agent)
        operations = coalesce(pending, self._agent_versions, self.session_id)
        # Every batch names its turn, so that a commit whose answer is lost can be resolved (`_begin_batch`).
        answer = {
            "response": str(result).strip() if result is not None else "",
            "conversation_length": len(messages),
            "usage": dict(result.metrics.accumulated_usage) if result is not None else {},
            "stop_reason": result.stop_reason if result is not None else None,
        }
        turn_id = context.turn_id if context is not None and context.turn_id is not None else uuid.uuid4().hex
        turn = {
            "turn_id": turn_id,
            "idempotency_key": context.idempotency_key if context is not None else None,
            "result": answer,
        }
        if context is not None and context.extraction is not None:
            extraction = context.extraction(stored_messages(operations, event.agent.agent_id))
            if extraction is not None:
                turn["extraction"] = extraction
        release = context is not None and context.lease_owner is not None and context.ends_lease is not None
        if release:
            assert context is not None and context.ends_lease is not None
            context.ends_lease()
        try:
            self.apply_batch(
                self.session_id,
                operations,
                lease_owner=self.lease_owner,
                # A copy read from an earlier life of this session id must not write into a re-created one.
                incarnation=self.incarnation(self.session_id),
                turn=turn,
                release_lease=release,
            )
            self._lease_ended = release
        except BackendUnavailableError:
            self._unsent = pending
            self.unresolved_turn_id = turn_id
            raise

    def _context_window_ops(self, agent: Any) -> list[dict[str, Any]]:
        """The `set_context_window` operation recording the agent's window after the turn's reductions, if needed."""
        manager = getattr(agent, "conversation_manager", None)
        if manager is None or isinstance(manager, NullConversationManager):
            return []  # it never reduces: the log is the window (and no fingerprints are computed per turn)
        stored = self._stored.setdefault(agent.agent_id, StoredMessages())
        removed = getattr(manager, "removed_message_count", 0)
        window = stored.window(agent.messages, removed)
        if window is None and not stored.window_stored:
            return []
        stored.window_stored = window is not None
        return [{"op": "set_context_window", "agent_id": agent.agent_id, "window": window}]

    def create_message(self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any) -> None:
        """Append a message now, or at the end of the running invocation when batching."""
        self._stored.setdefault(agent_id, StoredMessages()).stored(
            session_message.message_id, session_message.to_message()
        )
        if self._pending is None:
            return super().create_message(session_id, agent_id, session_message, **kwargs)
        self._pending.append({"op": "create_message", "agent_id": agent_id, "message": session_message.to_dict()})

    def update_message(self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any) -> None:
        """Replace a message now, or at the end of the running invocation when batching."""
        self._stored.setdefault(agent_id, StoredMessages()).stored(
            session_message.message_id, session_message.to_message()
        )
        if self._pending is None:
            return super().update_message(session_id, agent_id, session_message, **kwargs)
        self._pending.append({"op": "update_message", "agent_id": agent_id, "message": session_message.to_dict()})

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Replace the agent's state now, or at the end of the running invocation when batching."""
        if self._pending is None:
            return super().update_agent(session_id, session_agent, **kwargs)
        self._pending.append({"op": "update_agent", "agent": session_agent.to_dict()})
