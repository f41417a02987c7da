"""test_session_agent._messages: backend message pages → Strands `SessionMessage`s."""

from __future__ import annotations

import gc

import orjson
from strands.types.session import SessionMessage

from test_session_agent._messages import gc_paused, session_message, session_messages


def test_round_trip_with_bytes_and_redaction() -> None:
    original = SessionMessage(
        message={"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}]},
        message_id=3,
        redact_message={"role": "user", "content": [{"text": "[redacted]"}]},
    )
    page = orjson.dumps([original.to_dict()])
    assert b"__bytes_encoded__" in page
    (restored,) = session_messages(page)
    assert restored.message == original.message
    assert restored.redact_message == original.redact_message
    assert (restored.message_id, restored.created_at, restored.updated_at) == (
        original.message_id,
        original.created_at,
        original.updated_at,
    )


def test_without_bytes_values_are_taken_as_they_are() -> None:
    data = SessionMessage(message={"role": "assistant", "content": [{"text": "hi"}]}, message_id=0).to_dict()
    assert session_message(data, decode=False).message == {"role": "assistant", "content": [{"text": "hi"}]}
    assert session_messages(b"[]") == []


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()
