"""PostgreSQLSessionManager on an in-memory backend: one batch per invocation, coalesced agent updates."""

from __future__ import annotations

from typing import Any

import orjson
from strands import Agent

from test_session_agent import PostgreSQLSessionManager, TurnContext
from test_session_agent._batch import coalesce
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.testing import FakeBackend


def agent_op(turns: int, agent_id: str = "default") -> dict[str, Any]:
    return {"op": "update_agent", "agent": {"agent_id": agent_id, "state": {"turns": turns}}}


def message_op(i: int) -> dict[str, Any]:
    return {"op": "create_message", "agent_id": "default", "message": {"message_id": i}}


def test_coalesce_keeps_messages_in_order_and_the_last_update_of_each_agent() -> None:
    pending = [message_op(0), agent_op(1), message_op(1), agent_op(1, "other"), agent_op(2), message_op(2)]
    versions = {("s", "default"): 7}
    assert coalesce(pending, versions, "s") == [
        message_op(0),
        message_op(1),
        agent_op(1, "other") | {"if_version": None},  # never seen: unconditional
        agent_op(2) | {"if_version": 7},
        message_op(2),
    ]
    assert pending[1] == agent_op(1)  # the caller's list is left as it was


def build(backend: FakeBackend, **kwargs: Any) -> Agent:
    manager = PostgreSQLSessionManager("s", client=backend.client(), **kwargs)
    return Agent(model=ScriptedModel(), agent_id="default", session_manager=manager, callback_handler=None)


def test_an_invocation_is_one_batch(backend: FakeBackend) -> None:
    agent = build(backend)
    # a new session: nothing to restore
    assert backend.paths() == ["GET /v1/sessions/s", "POST /v1/sessions", "POST /v1/sessions/s/agents"]
    backend.requests.clear()
    agent("hello")
    assert backend.paths() == ["POST /v1/sessions/s/batch"]
    operations = orjson.loads(backend.requests[0].content)["operations"]
    messages = [op for op in operations if op["op"] == "create_message"]
    (update,) = [op for op in operations if op["op"] == "update_agent"]
    assert [op["message"]["message_id"] for op in messages] == [0, 1]
    assert update["if_version"] == 1
    assert [m["message"]["role"] for m in backend.messages[("s", "default")].values()] == ["user", "assistant"]
    assert backend.agents[("s", "default")]["version"] == 2


def test_restore_reads_what_was_written(backend: FakeBackend) -> None:
    build(backend)("hello")
    restored = build(backend)
    assert [m["role"] for m in restored.messages] == ["user", "assistant"]


def test_without_batching_each_write_is_a_request(backend: FakeBackend) -> None:
    agent = build(backend, batch_writes=False)
    backend.requests.clear()
    agent("hello")
    assert "POST /v1/sessions/s/batch" not in backend.paths()
    assert backend.paths().count("POST /v1/sessions/s/agents/default/messages") == 2


def test_a_turn_context_fences_records_and_ends_the_lease_in_the_commit(backend: FakeBackend) -> None:
    agent = build(backend)
    manager = agent._session_manager
    assert isinstance(manager, PostgreSQLSessionManager)
    backend.requests.clear()
    stopped: list[int] = []
    context = TurnContext(
        lease_owner="me", turn_id="t1", idempotency_key="k1", ends_lease=lambda: stopped.append(len(backend.requests))
    )
    manager.begin_turn(context)
    agent("hello")
    assert manager.end_turn() is True
    assert stopped == [0]  # called before the commit was sent
    body = orjson.loads(backend.requests[-1].content)
    assert body["lease_owner"] == "me" and body["release_lease"] is True
    assert body["turn"]["turn_id"] == "t1" and body["turn"]["idempotency_key"] == "k1"
    # After end_turn nothing of the context is left: the next invocation is neither fenced nor ends a lease.
    assert manager.lease_owner is None and manager.end_turn() is False
    agent("again")
    body = orjson.loads(backend.requests[-1].content)
    assert "lease_owner" not in body and "release_lease" not in body and body["turn"]["idempotency_key"] is None


def test_a_context_without_ends_lease_keeps_the_lease(backend: FakeBackend) -> None:
    agent = build(backend)
    manager = agent._session_manager
    assert isinstance(manager, PostgreSQLSessionManager)
    manager.begin_turn(TurnContext(lease_owner="me", turn_id="t2"))
    agent("hello")
    assert manager.end_turn() is False
    body = orjson.loads(backend.requests[-1].content)
    assert body["lease_owner"] == "me" and "release_lease" not in body
