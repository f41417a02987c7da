"""Strands 1.62's open persistence issues, each reproduced with Strands itself on our client, and fixed server-side.

Each test is named after the upstream strands-agents issue it reproduces.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from strands import Agent
from strands.agent import _continuation
from strands.hooks import BeforeModelCallEvent
from strands.types.content import Message

from test_session_agent import PostgreSQLSessionManager
from test_session_agent.models.scripted import ScriptedModel

pytestmark = pytest.mark.integration


def _agent(backend_url: str, session_id: str, **kwargs: Any) -> Agent:
    return Agent(
        model=ScriptedModel(),
        agent_id="default",
        session_manager=PostgreSQLSessionManager(session_id, base_url=backend_url),
        callback_handler=None,
        **kwargs,
    )


def test_issue_4420_continuation_merged_into_live_message_is_one_message_after_restore(backend_url: str) -> None:
    """#4420: a same-role continuation merged into the live message was stored as an extra row (same tracking_id)."""
    session_id = f"i4420-{uuid.uuid4().hex[:10]}"
    agent = _agent(backend_url, session_id)

    def continue_with_more_input(event: BeforeModelCallEvent) -> None:
        # What Strands' background tasks do: a user-role input that Strands merges into the prompt (same role).
        if len(event.agent.messages) == 1:
            more: list[Message] = [{"role": "user", "content": [{"text": "and more"}]}]
            _continuation.add_input(event, _continuation._ContinuationInput(args=more))

    agent.hooks.add_callback(BeforeModelCallEvent, continue_with_more_input)
    agent("first")
    live = agent.messages
    assert [m["role"] for m in live] == ["user", "assistant"]
    assert [b["text"] for b in live[0]["content"]] == ["first", "and more"]
    agent("second")

    restored = _agent(backend_url, session_id).messages
    assert [m["content"] for m in restored] == [m["content"] for m in agent.messages]
    tracking_ids = [m["tracking_id"] for m in restored]
    assert len(set(tracking_ids)) == len(tracking_ids) == 4
    history = httpx.get(f"{backend_url}/v1/sessions/{session_id}/agents/default/messages").json()
    assert [m["message_id"] for m in history] == [0, 1, 2, 3]
    assert [m["message"]["tracking_id"] for m in history] == tracking_ids


def test_issue_4420_stock_repository_session_manager_gets_one_row_per_tracking_id(backend_url: str) -> None:
    """#4420 with Strands' own `RepositorySessionManager` on our repository: the backend replaces by tracking id."""
    from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

    from test_session_agent import PostgreSQLSessionRepository

    session_id = f"i4420s-{uuid.uuid4().hex[:10]}"
    repo = PostgreSQLSessionRepository(base_url=backend_url)
    repo.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
    repo.create_agent(session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    first = {"role": "user", "content": [{"text": "first"}], "tracking_id": "t-0"}
    merged = {"role": "user", "content": [{"text": "first"}, {"text": "and more"}], "tracking_id": "t-0"}
    repo.create_message(session_id, "a", SessionMessage(message=first, message_id=0))  # type: ignore[arg-type]
    repo.create_message(session_id, "a", SessionMessage(message=merged, message_id=1))  # type: ignore[arg-type]
    stored = repo.list_messages(session_id, "a")
    assert [(m.message_id, m.message) for m in stored] == [(0, merged)]
    repo.close()
