"""PostgreSQLSessionRepository against an in-memory backend (`httpx.MockTransport`): the Strands contract, retries,
conditional agent updates, and errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from test_session_agent import (
    BackendRequestError,
    BackendUnavailableError,
    PostgreSQLSessionRepository,
    SessionConflictError,
    SessionNotFoundError,
)
from test_session_agent.testing import FakeBackend

MakeRepository = Callable[..., PostgreSQLSessionRepository]


def agent(agent_id: str = "default", turns: int = 0) -> SessionAgent:
    return SessionAgent(agent_id=agent_id, state={"turns": turns}, conversation_manager_state={})


def message(i: int) -> SessionMessage:
    return SessionMessage(message={"role": "user", "content": [{"text": f"m{i}"}]}, message_id=i)


def test_session_round_trip_and_absence(make_repository: MakeRepository, backend: FakeBackend) -> None:
    repo = make_repository(actor_id="alice", ttl_seconds=60)
    session = Session(session_id="s/1", session_type=SessionType.AGENT)
    assert repo.create_session(session) is session
    assert backend.sessions["s/1"]["actor_id"] == "alice" and backend.sessions["s/1"]["ttl_seconds"] == 60
    assert backend.paths()[-1] == "POST /v1/sessions"
    read = repo.read_session("s/1")
    assert read is not None and read.session_id == "s/1"
    assert backend.requests[-1].url.raw_path == b"/v1/sessions/s%2F1"
    assert repo.read_session("nope") is None
    with pytest.raises(SessionConflictError):
        repo.create_session(session)
    repo.delete_session("s/1")
    with pytest.raises(SessionNotFoundError):
        repo.delete_session("s/1")


def test_agent_updates_are_conditional_on_the_version_seen(
    make_repository: MakeRepository, backend: FakeBackend
) -> None:
    repo = make_repository()
    repo.create_session(Session(session_id="s", session_type=SessionType.AGENT))
    repo.create_agent("s", agent())
    assert repo.agent_version("s", "default") == 1
    repo.update_agent("s", agent(turns=1))
    assert backend.requests[-1].headers["If-Match"] == '"1"'
    assert repo.agent_version("s", "default") == 2

    other = make_repository()  # another writer, who read version 2
    assert other.read_agent("s", "default") is not None
    other.update_agent("s", agent(turns=2))
    with pytest.raises(SessionConflictError):
        repo.update_agent("s", agent(turns=3))  # still holds version 2: refused, not overwritten
    assert backend.agents[("s", "default")]["state"] == {"turns": 2}
    assert repo.read_agent("s", "missing") is None


def test_messages_in_order_with_offset_and_limit(make_repository: MakeRepository) -> None:
    repo = make_repository()
    repo.create_session(Session(session_id="s", session_type=SessionType.AGENT))
    repo.create_agent("s", agent())
    for i in (2, 0, 1, 3):
        repo.create_message("s", "default", message(i))
    assert [m.message_id for m in repo.list_messages("s", "default")] == [0, 1, 2, 3]
    assert [m.message_id for m in repo.list_messages("s", "default", limit=2, offset=1)] == [1, 2]
    assert repo.list_messages("s", "unknown") == []
    assert repo.read_message("s", "default", 9) is None


def test_idempotent_reads_retry_through_a_restart(make_repository: MakeRepository, backend: FakeBackend) -> None:
    repo = make_repository(retries=3)
    backend.fail = [503, 502]
    assert repo.read_session("s") is None
    assert len(backend.requests) == 3


def test_outage_beyond_the_retries_is_unavailable(make_repository: MakeRepository, backend: FakeBackend) -> None:
    repo = make_repository(retries=2)
    backend.fail = [503, 503, 503]
    with pytest.raises(BackendUnavailableError):
        repo.read_session("s")
    assert len(backend.requests) == 2


def test_creates_are_not_resent_after_the_backend_answered(
    make_repository: MakeRepository, backend: FakeBackend
) -> None:
    repo = make_repository(retries=3)
    backend.fail = [503]
    with pytest.raises(BackendUnavailableError):
        repo.create_session(Session(session_id="s", session_type=SessionType.AGENT))
    assert len(backend.requests) == 1


def test_conditional_batch_is_not_resent(make_repository: MakeRepository, backend: FakeBackend) -> None:
    repo = make_repository(retries=3)
    backend.fail = [503]
    operations = [{"op": "update_agent", "agent": agent().to_dict(), "if_version": 1}]
    with pytest.raises(BackendUnavailableError):
        repo.apply_batch("s", operations)
    assert len(backend.requests) == 1


def test_batch_remembers_agent_versions(make_repository: MakeRepository, backend: FakeBackend) -> None:
    repo = make_repository()
    repo.create_session(Session(session_id="s", session_type=SessionType.AGENT))
    repo.create_agent("s", agent())
    result = repo.apply_batch(
        "s",
        [
            {"op": "create_message", "agent_id": "default", "message": message(0).to_dict()},
            {"op": "update_agent", "agent": agent(turns=1).to_dict(), "if_version": 1},
        ],
        lease_owner="me",
    )
    assert result == {"created_messages": 1, "existing_messages": 0, "agent_versions": {"default": 2}}
    assert repo.agent_version("s", "default") == 2
    assert b'"lease_owner":"me"' in backend.requests[-1].content


def test_invalid_request_carries_the_status(make_repository: MakeRepository, backend: FakeBackend) -> None:
    repo = make_repository()
    backend.fail = [422]
    with pytest.raises(BackendRequestError) as info:
        repo.list_sessions()
    assert info.value.status == 422 and "injected" in str(info.value)


def test_api_key_is_sent(make_repository: MakeRepository, backend: FakeBackend) -> None:
    make_repository(api_key="secret").read_session("s")
    assert backend.requests[-1].headers["Authorization"] == "Bearer secret"
