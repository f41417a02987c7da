"""PostgreSQLSessionRepository against a live session backend on real PostgreSQL: every method of the contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from strands.types.exceptions import SessionException
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from test_session_agent import (
    BackendUnavailableError,
    PostgreSQLSessionRepository,
    SessionConflictError,
    SessionNotFoundError,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(backend_url: str) -> Iterator[PostgreSQLSessionRepository]:
    repository = PostgreSQLSessionRepository(base_url=backend_url)
    yield repository
    repository.close()


class FakeMultiAgent:
    """Stands in for a Strands `MultiAgentBase`: the repository only uses `id` and `serialize_state()`."""

    def __init__(self, id: str, state: dict[str, Any]) -> None:
        self.id = id
        self.state = state

    def serialize_state(self) -> dict[str, Any]:
        return self.state


def new_session(repo: PostgreSQLSessionRepository) -> str:
    sid = f"r-{uuid.uuid4().hex[:10]}"
    repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
    return sid


def msg(i: int, text: str = "") -> SessionMessage:
    role = "user" if i % 2 == 0 else "assistant"
    return SessionMessage(message={"role": role, "content": [{"text": text or f"m{i}"}]}, message_id=i)  # type: ignore[typeddict-item]


def test_session_create_read_missing_duplicate(repo: PostgreSQLSessionRepository) -> None:
    session = Session(session_id=f"r-{uuid.uuid4().hex[:10]}", session_type=SessionType.AGENT)
    assert repo.create_session(session) is session
    read = repo.read_session(session.session_id)
    assert read is not None and read.session_id == session.session_id and read.created_at == session.created_at
    assert repo.read_session("missing-" + uuid.uuid4().hex) is None
    with pytest.raises(SessionConflictError):
        repo.create_session(session)


def test_agent_create_read_update(repo: PostgreSQLSessionRepository) -> None:
    sid = new_session(repo)
    agent = SessionAgent(agent_id="a", state={"x": 1}, conversation_manager_state={"removed_message_count": 0})
    repo.create_agent(sid, agent)
    read = repo.read_agent(sid, "a")
    assert read is not None and read.state == {"x": 1} and read.created_at == agent.created_at
    assert repo.read_agent(sid, "missing") is None
    assert repo.read_agent("missing-session", "a") is None
    with pytest.raises(SessionException):
        repo.create_agent(sid, agent)
    with pytest.raises(SessionNotFoundError):
        repo.create_agent("missing-session", agent)
    agent.state = {"x": 2}
    repo.update_agent(sid, agent)
    assert repo.read_agent(sid, "a").state == {"x": 2}  # type: ignore[union-attr]
    with pytest.raises(SessionNotFoundError):
        repo.update_agent(sid, SessionAgent(agent_id="ghost", state={}, conversation_manager_state={}))


def test_stale_agent_write_is_refused(repo: PostgreSQLSessionRepository, backend_url: str) -> None:
    sid = new_session(repo)
    agent = SessionAgent(agent_id="a", state={}, conversation_manager_state={})
    repo.create_agent(sid, agent)
    other = PostgreSQLSessionRepository(base_url=backend_url)
    other.read_agent(sid, "a")
    repo.update_agent(sid, agent)  # version 2
    with pytest.raises(SessionConflictError):
        other.update_agent(sid, agent)  # still holds version 1
    other.close()


def test_messages_create_read_update_list_paginate(repo: PostgreSQLSessionRepository) -> None:
    sid = new_session(repo)
    repo.create_agent(sid, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    for i in range(7):
        repo.create_message(sid, "a", msg(i))
    repo.create_message(sid, "a", msg(3))  # identical retry: accepted
    with pytest.raises(SessionConflictError):
        repo.create_message(sid, "a", msg(3, "different"))
    assert [m.message_id for m in repo.list_messages(sid, "a")] == list(range(7))
    assert [m.message_id for m in repo.list_messages(sid, "a", limit=3, offset=2)] == [2, 3, 4]
    assert repo.list_messages(sid, "a", offset=50) == []
    assert repo.list_messages(sid, "ghost") == []
    assert repo.list_messages("ghost-session", "a") == []
    read = repo.read_message(sid, "a", 4)
    assert read is not None and read.message["content"][0]["text"] == "m4"
    assert repo.read_message(sid, "a", 99) is None
    redacted = msg(4)
    redacted.redact_message = {"role": "user", "content": [{"text": "[redacted]"}]}
    repo.update_message(sid, "a", redacted)
    assert repo.read_message(sid, "a", 4).to_message()["content"][0]["text"] == "[redacted]"  # type: ignore[union-attr]
    with pytest.raises(SessionNotFoundError):
        repo.update_message(sid, "a", msg(99))
    with pytest.raises(SessionNotFoundError):
        repo.create_message(sid, "ghost", msg(0))


def test_multi_agent_create_read_update(repo: PostgreSQLSessionRepository) -> None:
    sid = new_session(repo)
    graph = FakeMultiAgent("graph-1", {"type": "graph", "status": "executing", "completed_nodes": []})
    repo.create_multi_agent(sid, graph)  # type: ignore[arg-type]
    assert repo.read_multi_agent(sid, "graph-1") == graph.state
    assert repo.read_multi_agent(sid, "missing") is None
    with pytest.raises(SessionConflictError):
        repo.create_multi_agent(sid, graph)  # type: ignore[arg-type]
    graph.state = {"type": "graph", "status": "completed", "completed_nodes": ["a"]}
    repo.update_multi_agent(sid, graph)  # type: ignore[arg-type]
    assert repo.read_multi_agent(sid, "graph-1") == graph.state
    with pytest.raises(SessionNotFoundError):
        repo.update_multi_agent(sid, FakeMultiAgent("nope", {}))  # type: ignore[arg-type]


def test_delete_and_list_sessions(repo: PostgreSQLSessionRepository) -> None:
    actor = f"actor-{uuid.uuid4().hex[:6]}"
    ids = []
    for _ in range(3):
        sid = f"r-{uuid.uuid4().hex[:10]}"
        repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT), actor_id=actor)
        ids.append(sid)
    page = repo.list_sessions(actor_id=actor, limit=2)
    assert [s["session_id"] for s in page["items"]] == ids[::-1][:2] and page["next_cursor"]
    rest = repo.list_sessions(actor_id=actor, limit=2, cursor=page["next_cursor"])
    assert [s["session_id"] for s in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    repo.delete_session(ids[0])
    assert repo.read_session(ids[0]) is None
    with pytest.raises(SessionNotFoundError):
        repo.delete_session(ids[0])


def test_unreachable_backend_is_session_exception(port_factory: Any) -> None:
    dead = PostgreSQLSessionRepository(base_url=f"http://127.0.0.1:{port_factory()}", retries=2)
    with pytest.raises(BackendUnavailableError) as info:
        dead.read_session("x")
    assert isinstance(info.value, SessionException)
    assert isinstance(info.value.__cause__, httpx.TransportError)
    dead.close()


def test_api_key_is_sent(database_url: str, service_runner: Any, port_factory: Any) -> None:
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": database_url, "PORT": str(port), "SESSION_BACKEND_API_KEY": "k-123"}
    with service_runner("session-backend", env, url, health="/ready"):
        anonymous = PostgreSQLSessionRepository(base_url=url)
        with pytest.raises(SessionException, match="401"):
            anonymous.read_session("x")
        keyed = PostgreSQLSessionRepository(base_url=url, api_key="k-123")
        assert keyed.read_session("x") is None
        anonymous.close()
        keyed.close()
