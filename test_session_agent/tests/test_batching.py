"""PostgreSQLSessionManager commits each invocation's writes in one request, whole or not at all."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterable
from typing import Any

import httpx
import pytest
from strands import Agent

from test_session_agent import PostgreSQLSessionManager, PostgreSQLSessionRepository
from test_session_agent.models.scripted import ScriptedModel

pytestmark = pytest.mark.integration


def counting_client(base_url: str, counter: Counter[str]) -> httpx.Client:
    def hook(request: httpx.Request) -> None:
        counter[f"{request.method} {request.url.path.rsplit('/', 1)[-1]}"] += 1

    return httpx.Client(base_url=base_url, event_hooks={"request": [hook]})


def test_one_request_per_turn(backend_url: str) -> None:
    calls: Counter[str] = Counter()
    client = counting_client(backend_url, calls)
    sid = f"b-{uuid.uuid4().hex[:8]}"
    agent = Agent(
        model=ScriptedModel(),
        agent_id="default",
        callback_handler=None,
        session_manager=PostgreSQLSessionManager(sid, client=client),
    )
    agent("hello")
    calls.clear()
    for i in range(5):
        agent(f"turn {i}")
    assert calls == Counter({"POST batch": 5})
    stored = PostgreSQLSessionRepository(base_url=backend_url).list_messages(sid, "default")
    assert [m.message["role"] for m in stored] == ["user", "assistant"] * 6


class FailingModel(ScriptedModel):
    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterable[Any]:
        raise RuntimeError("model exploded")
        yield  # pragma: no cover


def test_failed_invocation_stores_nothing(backend_url: str) -> None:
    sid = f"b-{uuid.uuid4().hex[:8]}"
    agent = Agent(
        model=ScriptedModel(),
        agent_id="default",
        callback_handler=None,
        session_manager=PostgreSQLSessionManager(sid, base_url=backend_url),
    )
    agent("first")
    agent.model = FailingModel()
    with pytest.raises(Exception, match="model exploded"):
        agent("second")
    stored = PostgreSQLSessionRepository(base_url=backend_url).list_messages(sid, "default")
    assert [m.message["content"][0]["text"] for m in stored][:1] == ["first"] and len(stored) == 2


def test_write_through_without_batching(backend_url: str) -> None:
    calls: Counter[str] = Counter()
    sid = f"b-{uuid.uuid4().hex[:8]}"
    agent = Agent(
        model=ScriptedModel(),
        agent_id="default",
        callback_handler=None,
        session_manager=PostgreSQLSessionManager(sid, client=counting_client(backend_url, calls), batch_writes=False),
    )
    agent("hello")
    assert calls["POST messages"] == 2 and calls["POST batch"] == 0


def test_turn_committed_while_backend_was_down_is_sent_with_the_next_turn(backend_url: str) -> None:
    sid = f"b-{uuid.uuid4().hex[:8]}"
    manager = PostgreSQLSessionManager(sid, base_url=backend_url, retries=1)
    agent = Agent(model=ScriptedModel(), agent_id="default", callback_handler=None, session_manager=manager)
    agent("one")
    real = manager._client
    manager._client = httpx.Client(base_url="http://127.0.0.1:9")  # nothing listens there: backend "down"
    with pytest.raises(Exception, match="unavailable"):
        agent("two")
    manager._client = real
    agent("three")
    stored = PostgreSQLSessionRepository(base_url=backend_url).list_messages(sid, "default")
    assert [m.message["content"][0]["text"] for m in stored if m.message["role"] == "user"] == ["one", "two", "three"]
    assert [m.message_id for m in stored] == list(range(6))
