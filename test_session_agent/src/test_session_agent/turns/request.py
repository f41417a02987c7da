"""A turn's inputs (`TurnRequest`, frozen) and its outcome (`TurnResult`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..profiles import AgentProfile

AGENT_ID = "default"
"""The agent id of every session's agent (one agent per session)."""

TextCallback = Callable[[str], None]
"""Called from a turn's worker thread with each text delta as the model writes it."""

ModelStartCallback = Callable[[], None]
"""Called from a turn's worker thread as each model call of the turn starts (a speculative one: its lease request
already sent). A streaming route sends its response headers then, while the model works, rather than before the
turn's work up to the model call, which they would compete with for the GIL."""


@dataclass(frozen=True)
class TurnRequest:
    """Everything one turn is asked to do.

    Attributes:
        session_id: the session of the turn (created in the backend when new).
        prompt: the user's message.
        actor_id: the actor of the turn: recorded on a new session, and whose long-term memory the agent has.
        idempotency_key: the client's Idempotency-Key: when a turn with this key is already committed in the
            session, its answer is returned and nothing runs or is stored.
        profile: the agent profile the turn runs with; None: the service's defaults (the session's active agent,
            when one is set, takes precedence).
        require_actor: the session must be `actor_id`'s (a device's own): another's reads as not found.
        on_text: called from the worker thread with each text delta as the model produces it.
        on_model_start: called from the worker thread as each model call starts (`ModelStartCallback`).
    """

    session_id: str
    prompt: str
    actor_id: str | None = None
    idempotency_key: str | None = None
    profile: AgentProfile | None = None
    require_actor: bool = False
    on_text: TextCallback | None = None
    on_model_start: ModelStartCallback | None = None


@dataclass
class TurnResult:
    """Outcome of one agent turn.

    Attributes:
        session_id: the session the turn ran in.
        response: the assistant's reply text.
        conversation_length: messages in the agent's conversation after the turn.
        cached: True when the agent came from the cache, False when it was rebuilt from the backend.
        duration_ms: wall time of the turn (waiting for the session excluded), in milliseconds.
        usage: token counts reported by the model (`inputTokens`, `outputTokens`, `totalTokens`).
        replayed: True when the answer is the stored one of an earlier turn with the same Idempotency-Key.
        injected_memory: the actor's memories folded into the model's input this turn (None: none).
        agent_id: the agent profile that answered (the session's active agent), else `AGENT_ID`.
        session_managed: False when the backend was down and a fresh agent answered without history
            (`SESSION_FALLBACK=stateless`); nothing of such a turn is stored, now or later.
        stop_reason: why the model stopped (Strands' `StopReason`: "end_turn", "max_tokens" for a reply cut at the
            model's `max_tokens`, ...); None when not known (a turn recorded before it was kept).
    """

    session_id: str
    response: str
    conversation_length: int
    cached: bool
    duration_ms: float
    usage: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False
    injected_memory: str | None = None
    agent_id: str = AGENT_ID
    session_managed: bool = True
    stop_reason: str | None = None

    @classmethod
    def from_record(cls, session_id: str, record: dict[str, Any], started: float, *, replayed: bool) -> TurnResult:
        """The result of a turn as its batch recorded it (`{"response", "conversation_length", "usage"}`)."""
        return cls(
            session_id=session_id,
            response=str(record.get("response", "")),
            conversation_length=int(record.get("conversation_length", 0)),
            cached=False,
            duration_ms=(time.perf_counter() - started) * 1000,
            usage=dict(record.get("usage") or {}),
            replayed=replayed,
            stop_reason=record.get("stop_reason"),
        )
