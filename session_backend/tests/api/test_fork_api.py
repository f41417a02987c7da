"""`POST /v1/sessions/{session_id}/fork`: a server-side copy of a session, its statuses, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def new_id(prefix: str = "fork") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def message(i: int, text: str) -> dict[str, Any]:
    return {
        "message": {"role": "user" if i % 2 == 0 else "assistant", "content": [{"text": text}]},
        "message_id": i,
        "redact_message": None,
        "created_at": "2025-01-01T00:00:00.000000+00:00",
        "updated_at": "2025-01-01T00:00:00.000000+00:00",
    }


def seed(client: TestClient, **session: Any) -> str:
    sid = new_id("src")
    assert client.post("/v1/sessions", json={"session_id": sid, "session_type": "AGENT"} | session).status_code == 201
    for agent_id in ("default", "helper"):
        agent = {"agent_id": agent_id, "state": {"k": agent_id}, "conversation_manager_state": {}}
        assert client.post(f"/v1/sessions/{sid}/agents", json=agent).status_code == 201
    for i, text in enumerate(["one", "two", "three"]):
        assert client.post(f"/v1/sessions/{sid}/agents/default/messages", json=message(i, text)).status_code == 201
    ma = client.post(f"/v1/sessions/{sid}/multi-agents", json={"id": "graph", "state": {"step": 2}})
    assert ma.status_code == 201
    return sid


def test_fork_copies_everything_and_leaves_the_source_untouched(client: TestClient) -> None:
    sid = seed(client, actor_id="alice", metadata={"topic": "x"})
    before = client.get(f"/v1/sessions/{sid}/agents/default/messages").json()
    target = new_id()
    r = client.post(f"/v1/sessions/{sid}/fork", json={"new_session_id": target})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["agents"], body["messages"], body["multi_agents"]) == (2, 3, 1)
    assert body["session"]["session_id"] == target and body["session"]["actor_id"] == "alice"
    assert body["session"]["metadata"] == {"topic": "x", "forked_from": sid}

    assert client.get(f"/v1/sessions/{target}/agents/default/messages").json() == before
    assert client.get(f"/v1/sessions/{target}/agents/helper").json()["state"] == {"k": "helper"}
    assert client.get(f"/v1/sessions/{target}/multi-agents/graph").json()["state"] == {"step": 2}

    # The two sessions diverge: a write to the fork is not seen by the source, and the fork's agents start over.
    assert client.post(f"/v1/sessions/{target}/agents/default/messages", json=message(3, "four")).status_code == 201
    assert client.get(f"/v1/sessions/{target}/agents/default").json()["version"] == 1
    assert client.get(f"/v1/sessions/{sid}/agents/default/messages").json() == before
    assert client.get(f"/v1/sessions/{sid}").json()["metadata"] == {"topic": "x"}

    # Deleting the source leaves the fork whole.
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert len(client.get(f"/v1/sessions/{target}/agents/default/messages").json()) == 4


def test_fork_of_an_empty_session_and_overrides(client: TestClient) -> None:
    sid = new_id("src")
    assert client.post("/v1/sessions", json={"session_id": sid}).status_code == 201
    target = new_id()
    r = client.post(f"/v1/sessions/{sid}/fork", json={"new_session_id": target, "ttl_seconds": 60, "actor_id": "bob"})
    assert r.status_code == 201, r.text
    assert (r.json()["agents"], r.json()["messages"]) == (0, 0)
    assert r.json()["session"]["actor_id"] == "bob" and r.json()["session"]["expires_at"] is not None


def test_fork_errors(client: TestClient) -> None:
    sid = seed(client)
    r = client.post(f"/v1/sessions/{new_id('missing')}/fork", json={"new_session_id": new_id()})
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM

    taken = seed(client)
    r = client.post(f"/v1/sessions/{sid}/fork", json={"new_session_id": taken})
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    # Nothing was copied into the existing session.
    assert len(client.get(f"/v1/sessions/{taken}/agents/default/messages").json()) == 3

    bad: list[dict[str, Any]] = [{"new_session_id": "bad/id"}, {"new_session_id": ".."}, {}]
    for body in [*bad, {"new_session_id": "ok", "ttl_seconds": 0}]:
        r = client.post(f"/v1/sessions/{sid}/fork", json=body)
        assert r.status_code == 422, body
    assert client.post("/v1/sessions/bad id/fork", json={"new_session_id": new_id()}).status_code == 422
    assert client.get(f"/v1/sessions/{sid}/agents/default/messages").status_code == 200
