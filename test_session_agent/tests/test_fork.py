"""Checkpoints and fork on the agent service, with each `SESSION_MANAGER`: `GET /sessions/{id}/snapshots` and
`POST /sessions/{id}/fork` from the latest state or a given snapshot, the original untouched."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from test_session_agent import PostgreSQLStorage
from test_session_agent.api.app import create_app
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings

pytestmark = pytest.mark.integration

UNKNOWN_SNAPSHOT = "01890a5d-ac96-774b-bcce-b302099a8057"


def make_client(agent_settings: AgentSettings, manager: str) -> Iterator[TestClient]:
    settings = agent_settings.model_copy(update={"session_manager": manager})
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        yield client


@pytest.fixture(scope="module")
def repository_service(agent_settings: AgentSettings) -> Iterator[TestClient]:
    yield from make_client(agent_settings, "repository")


@pytest.fixture(scope="module")
def snapshot_service(agent_settings: AgentSettings) -> Iterator[TestClient]:
    yield from make_client(agent_settings, "snapshot")


def converse(client: TestClient, *prompts: str) -> str:
    sid = f"fork-{uuid.uuid4().hex[:8]}"
    for prompt in prompts:
        assert client.post("/process", json={"prompt": prompt, "session_id": sid}).status_code == 200
    return sid


def texts(client: TestClient, sid: str) -> list[str]:
    r = client.get(f"/sessions/{sid}/history")
    assert r.status_code == 200, r.text
    return [b.get("text", "") for m in r.json()["messages"] for b in m["content"]]


def reply(client: TestClient, sid: str, prompt: str) -> str:
    r = client.post("/process", json={"prompt": prompt, "session_id": sid})
    assert r.status_code == 200, r.text
    return str(r.json()["response"])


def test_repository_fork_copies_messages_and_leaves_the_original_untouched(repository_service: TestClient) -> None:
    client = repository_service
    sid = converse(client, "I am Ada", "I like tea")
    original = texts(client, sid)
    r = client.post(f"/sessions/{sid}/fork", json={})
    assert r.status_code == 201, r.text
    fork = r.json()
    assert fork["forked_from"] == sid and fork["snapshot_id"] is None and fork["conversation_length"] == 4
    assert texts(client, fork["session_id"]) == original
    assert reply(client, fork["session_id"], "on the fork").startswith("turn 3; history 5 messages; first: I am Ada")
    assert texts(client, sid) == original
    assert reply(client, sid, "on the original").startswith("turn 3; history 5 messages")
    # Repository sessions have no immutable snapshots.
    assert client.get(f"/sessions/{sid}/snapshots").json() == {"session_id": sid, "items": []}
    assert client.post(f"/sessions/{sid}/fork", json={"snapshot_id": UNKNOWN_SNAPSHOT}).status_code == 404


def test_fork_errors(repository_service: TestClient) -> None:
    client = repository_service
    sid = converse(client, "hello")
    taken = converse(client, "other")
    assert client.post(f"/sessions/{sid}/fork", json={"new_session_id": taken}).status_code == 409
    assert client.post("/sessions/nope-never/fork", json={}).status_code == 404
    assert client.get("/sessions/nope-never/snapshots").status_code == 404
    assert client.post(f"/sessions/{sid}/fork", json={"snapshot_id": "latest"}).status_code == 422
    assert client.post(f"/sessions/{sid}/fork", json={"new_session_id": "a/b"}).status_code == 422
    named = f"named-{uuid.uuid4().hex[:6]}"
    r = client.post(f"/sessions/{sid}/fork", json={"new_session_id": named})
    assert r.status_code == 201 and r.json()["session_id"] == named


def test_snapshot_sessions_checkpoint_every_turn_and_fork_from_latest_or_a_snapshot(
    snapshot_service: TestClient, backend_url: str
) -> None:
    client = snapshot_service
    sid = converse(client, "I am Ada", "I like tea")
    original = texts(client, sid)
    assert len(original) == 4
    snapshots = client.get(f"/sessions/{sid}/snapshots").json()["items"]
    assert len(snapshots) == 2
    assert snapshots[0]["snapshot_id"] < snapshots[1]["snapshot_id"]
    assert snapshots[0]["created_at"] <= snapshots[1]["created_at"]

    # From the first checkpoint: the conversation as it was after turn 1.
    first = snapshots[0]["snapshot_id"]
    r = client.post(f"/sessions/{sid}/fork", json={"snapshot_id": first})
    assert r.status_code == 201, r.text
    early = r.json()
    assert early["snapshot_id"] == first and early["conversation_length"] == 2
    assert texts(client, early["session_id"]) == original[:2]
    assert [s["snapshot_id"] for s in client.get(f"/sessions/{early['session_id']}/snapshots").json()["items"]] == [
        first
    ]
    assert reply(client, early["session_id"], "what now?").startswith("turn 2; history 3 messages; first: I am Ada")

    # From the latest state: everything, checkpoints included.
    r = client.post(f"/sessions/{sid}/fork", json={})
    assert r.status_code == 201, r.text
    latest = r.json()
    assert latest["conversation_length"] == 4 and texts(client, latest["session_id"]) == original
    assert len(client.get(f"/sessions/{latest['session_id']}/snapshots").json()["items"]) == 2

    # The original is untouched by both forks and by the turns on them.
    assert texts(client, sid) == original
    assert client.get(f"/sessions/{sid}/snapshots").json()["items"] == snapshots
    assert client.post(f"/sessions/{sid}/fork", json={"snapshot_id": UNKNOWN_SNAPSHOT}).status_code == 404

    # Deleting a snapshot session deletes its snapshots; the forks keep theirs.
    assert client.delete(f"/sessions/{sid}").status_code == 204
    assert client.get(f"/sessions/{sid}/snapshots").status_code == 404
    assert asyncio.run(PostgreSQLStorage(backend_url).list(f"session/{sid}/")) == []
    assert texts(client, latest["session_id"]) == original
