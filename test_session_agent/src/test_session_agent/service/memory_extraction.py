"""Memory extraction exactly once per turn, across agent-process restarts: its progress is stored with the turn.

A committed turn that leaves facts to extract records so in its turn record (`pending`, called by the commit); the
memories are then stored with the turn named, which marks it extracted in the same backend transaction (`finish`).
A process killed in between leaves the turn pending: the session's lease hands it to the next holder (a replay of
the turn or the session's next turn), which runs the same `finish`, reading the turn's messages back from the
backend. Memory writes are idempotent (an actor's identical content is stored once), so a `finish` repeated after a
crash between its write and its answer stores nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from strands.types.content import Message

from ..exceptions import BackendRequestError, BackendUnavailableError, SessionConflictError
from ..memory_text import FirstPersonExtractor
from ..observability import AgentMetrics
from ..postgresql_session_repository import PostgreSQLSessionRepository
from ..turns.backend import ServiceBackend

logger = logging.getLogger(__name__)


class TurnExtraction:
    """Extracts a committed turn's facts into its actor's memories, once (`FirstPersonExtractor`, deterministic).

    Args:
        backend: stores the memories and marks the turn extracted (`ServiceBackend.store_extracted`).
        repository: reads a pending turn's messages back (recovery after a restart).
        extractor: the facts of a turn's messages (the same messages always give the same facts).
        metrics: where facts left out are counted (`agent_memories_not_extracted_total{reason}`).
    """

    def __init__(
        self,
        backend: ServiceBackend,
        repository: PostgreSQLSessionRepository,
        extractor: FirstPersonExtractor,
        metrics: AgentMetrics,
    ) -> None:
        self.backend = backend
        self.repository = repository
        self.extractor = extractor
        self.metrics = metrics

    def pending(self, actor_id: str, agent_id: str, messages: Sequence[tuple[int, Message]]) -> dict[str, Any] | None:
        """What a turn about to be committed leaves to extract (`TurnContext.extraction`).

        Args:
            actor_id: whose memories the facts become.
            agent_id: the agent whose messages these are.
            messages: the turn's messages the commit stores, `(message_id, message)` in order.

        Returns:
            `{actor_id, agent_id, message_ids}` to record with the turn, or None when its messages hold no fact (the
            turn then needs no extraction at all, and no request).
        """
        facts, dropped = self.extractor.facts([message for _, message in messages])
        if not facts and not dropped:
            return None
        return {"actor_id": actor_id, "agent_id": agent_id, "message_ids": [message_id for message_id, _ in messages]}

    def finish(self, session_id: str, pending: dict[str, Any], messages: Sequence[Message] | None = None) -> bool:
        """Store a committed turn's facts as memories and mark the turn extracted (one transaction); never raises.

        The one path for a turn just committed (its messages given) and for a pending turn handed over by a lease
        (`messages` None: read back from the backend, as committed, redactions included).

        Args:
            session_id: the turn's session.
            pending: the turn's extraction record with its turn id: `{turn_id, actor_id, agent_id, message_ids}`
                (`turn_id` None: a turn of a snapshot session, which has no record: best effort, `messages` given).
            messages: the turn's messages when the caller holds them (in `message_ids` order).

        Returns:
            True when the turn is extracted now (or was already); False when it stays pending (the backend was
            unreachable: the session's next lease hands it over again).
        """
        actor_id, agent_id, message_ids = pending["actor_id"], pending["agent_id"], list(pending["message_ids"])
        turn_id: str | None = pending.get("turn_id")
        try:
            if messages is None:
                messages = self._read(session_id, agent_id, message_ids)
            facts, dropped = self.extractor.facts(messages)
            # A turn without a record (a snapshot session's) has no message rows to name as the source.
            source = {"session_id": session_id, "agent_id": agent_id, "message_ids": message_ids} if turn_id else None
            memories = [{"content": f.content, "metadata": f.metadata or {}, "source": source} for f in facts]
            try:
                self.backend.store_extracted(actor_id, memories, session_id, turn_id)
            except (SessionConflictError, BackendRequestError) as e:
                # Refused for good (the actor holds its most memories; a fact refused): retried, it would be refused
                # after every later turn. The turn is marked extracted without them.
                logger.warning("session_id=<%s>, turn_id=<%s>, error=<%s> | memories refused", session_id, turn_id, e)
                self.backend.store_extracted(actor_id, [], session_id, turn_id)
                dropped = dropped | {"refused": len(memories)}
        except BackendUnavailableError as e:
            logger.warning(
                "session_id=<%s>, turn_id=<%s>, error=<%s> | extraction stays pending", session_id, turn_id, e
            )
            return False
        except Exception:
            logger.exception("session_id=<%s>, turn_id=<%s> | extraction failed; it stays pending", session_id, turn_id)
            return False
        for reason, count in dropped.items():
            if count:
                logger.warning(
                    "session_id=<%s>, reason=<%s>, count=<%d> | facts not extracted", session_id, reason, count
                )
                self.metrics.memories_not_extracted.labels(reason=reason).inc(count)
        logger.debug("session_id=<%s>, turn_id=<%s>, facts=<%d> | turn extracted", session_id, turn_id, len(memories))
        return True

    def finish_all(self, session_id: str, pending: Sequence[dict[str, Any]]) -> None:
        """`finish` each pending extraction a session's lease handed over, oldest first (messages read back)."""
        for extraction in pending:
            self.finish(session_id, extraction)

    def _read(self, session_id: str, agent_id: str, message_ids: list[int]) -> list[Message]:
        messages = []
        for message_id in message_ids:
            stored = self.repository.read_message(session_id, agent_id, message_id)
            if stored is not None:  # gone: its session was deleted meanwhile (and the turn with it)
                messages.append(stored.to_message())
        return messages


class TurnMessages:
    """One turn's part in extraction: what its commit records (`record`), then its `finish` once it is committed.

    A turn of a repository session (`PostgreSQLSessionManager`) records its pending extraction with its commit; a
    snapshot session's turn has no turn record, so its facts (read from the agent's messages of the turn) are stored
    after it, best effort.

    Args:
        extraction: the service's `TurnExtraction`.
        actor_id: whose memories the turn's facts become; None: the agent has no memory (nothing is extracted).
        agent: the turn's Strands agent.
        recorded: whether the agent's session manager records turns (calls `TurnContext.extraction`).
    """

    def __init__(self, extraction: TurnExtraction, actor_id: str | None, agent: Any, recorded: bool) -> None:
        self.extraction = extraction
        self.actor_id = actor_id
        self.agent = agent
        self.recorded = recorded
        self._committed: tuple[dict[str, Any], list[Message]] | None = None
        self._start = 0

    def begin(self) -> None:
        """Note where the turn's messages start in the agent's (for a turn without a record)."""
        self._start = len(self.agent.messages) + _removed(self.agent)  # counted from the conversation's start

    def record(self, messages: list[tuple[int, Message]]) -> dict[str, Any] | None:
        """`TurnContext.extraction`: the pending extraction the commit records (kept for `finish`), or None."""
        assert self.actor_id is not None
        pending = self.extraction.pending(self.actor_id, self.agent.agent_id, messages)
        self._committed = (pending, [message for _, message in messages]) if pending is not None else None
        return pending

    def finish(self, session_id: str, turn_id: str) -> None:
        """Extract the committed turn `turn_id` (see `TurnExtraction.finish`); nothing without memory or facts."""
        if self.actor_id is None:
            return
        if self.recorded:
            if self._committed is not None:
                pending, messages = self._committed
                self.extraction.finish(session_id, pending | {"turn_id": turn_id}, messages)
            return
        messages = list(self.agent.messages[max(0, self._start - _removed(self.agent)) :])
        pending = {"actor_id": self.actor_id, "agent_id": self.agent.agent_id, "message_ids": [], "turn_id": None}
        self.extraction.finish(session_id, pending, messages)


def _removed(agent: Any) -> int:
    """Messages the agent's conversation manager has removed from its context so far."""
    return int(getattr(agent.conversation_manager, "removed_message_count", 0) or 0)
