"""Backend JSON → Strands `SessionMessage`s, fast enough for a restore of thousands of messages; a cut-off reply."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from strands.agent.agent_result import AgentResult
from strands.types.session import SessionMessage, decode_bytes_values

from . import _json


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block.

    Restored objects hold no cycles, and the collector's passes over them tripled the decode time of a restore.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def session_message(data: dict[str, Any], decode: bool) -> SessionMessage:
    """Build a `SessionMessage` from its `to_dict()` form, field by field.

    `SessionMessage.from_dict` inspects the class signature per key, which dominates a restore.

    Args:
        data: the message as the backend returns it.
        decode: turn Strands' `__bytes_encoded__` values back into bytes (only needed when the page holds any).

    Returns:
        The message.
    """
    message, redact = data["message"], data.get("redact_message")
    if decode:
        message = decode_bytes_values(message)
        redact = decode_bytes_values(redact) if redact is not None else None
    return SessionMessage(
        message=message,
        message_id=data["message_id"],
        redact_message=redact,
        created_at=data["created_at"],
        updated_at=data["updated_at"],
    )


def session_messages(content: bytes) -> list[SessionMessage]:
    """Decode a backend page of messages (a JSON array of `SessionMessage.to_dict()`), bytes only when present."""
    decode = b"__bytes_encoded__" in content
    with gc_paused():
        return [session_message(m, decode) for m in _json.loads(content)]


def max_tokens_result(agent: Any) -> AgentResult:
    """The result of an invocation that Strands ended with `MaxTokensReachedException`: its partial reply.

    Strands' guidance for that exception: the partial message is already in `agent.messages` (tool uses in it
    replaced by error results) and the conversation continues with the next call. So the reply is answered and
    stored as what the model produced, with `stop_reason` "max_tokens".

    Args:
        agent: the agent whose invocation reached the model's `max_tokens`.

    Returns:
        An `AgentResult` on the agent's last message (the partial reply).
    """
    return AgentResult(stop_reason="max_tokens", message=agent.messages[-1], metrics=agent.event_loop_metrics, state={})
