"""test_session_agent.models: `build_model` by provider, and Strands messages flattened for chat models."""

from __future__ import annotations

import pytest
from strands.types.content import Messages

from test_session_agent.models import build_model
from test_session_agent.models._streaming import to_chat_messages
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings


def test_scripted_provider_with_delays_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    # The scripted model's delays are its own configuration, not the service's settings.
    monkeypatch.setenv("SCRIPTED_FIRST_TOKEN_DELAY_MS", "250")
    monkeypatch.setenv("SCRIPTED_TOKEN_DELAY_MS", "5")
    settings = AgentSettings.model_validate({"model_provider": "scripted"})
    assert "scripted_token_delay_ms" not in AgentSettings.model_fields
    model = build_model(settings)
    assert isinstance(model, ScriptedModel)
    assert model.get_config() == {"first_token_delay": 0.25, "token_delay": 0.005}


def test_unknown_provider_is_refused() -> None:
    settings = AgentSettings.model_construct(model_provider="nonsense", model_id=None)
    with pytest.raises(ValueError, match="unknown MODEL_PROVIDER 'nonsense'"):
        build_model(settings)


def test_chat_messages_flatten_blocks() -> None:
    messages: Messages = [
        {"role": "user", "content": [{"text": "hello"}, {"text": "there"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "1", "name": "clock", "input": {"tz": "UTC"}}}]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "1", "status": "success", "content": [{"json": {"t": 1}}]}}],
        },
        {"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": b""}}}]},
    ]
    assert to_chat_messages(messages, "be brief") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello\nthere"},
        {"role": "assistant", "content": '[tool call clock: {"tz": "UTC"}]'},
        {"role": "user", "content": '{"t": 1}'},
        {"role": "user", "content": "[attachment omitted]"},
    ]
    assert to_chat_messages([], None) == []
