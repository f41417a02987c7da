"""`DELETE /v1/actors/{actor_id}`: an actor's erasure, its receipt and its audit record, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def message(i: int, text: str) -> dict[str, Any]:
    return {
        "message": {"role": "user" if i % 2 == 0 else "assistant", "content": [{"text": text}]},
        "message_id": i,
        "redact_message": None,
        "created_at": "2025-01-01T00:00:00.000000+00:00",
        "updated_at": "2025-01-01T00:00:00.000000+00:00",
    }


def seed_session(client: TestClient, actor_id: str, texts: list[str]) -> str:
    sid = new_id("s")
    body = {"session_id": sid, "session_type": "AGENT", "actor_id": actor_id}
    assert client.post("/v1/sessions", json=body).status_code == 201
    agent = {"agent_id": "default", "state": {}, "conversation_manager_state": {}}
    assert client.post(f"/v1/sessions/{sid}/agents", json=agent).status_code == 201
    for i, text in enumerate(texts):
        assert client.post(f"/v1/sessions/{sid}/agents/default/messages", json=message(i, text)).status_code == 201
    return sid


def fetch(database_url: str, query: str, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(database_url)
        try:
            return [tuple(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def test_erase_actor_deletes_everything_of_it_and_nothing_else(client: TestClient, database_url: str) -> None:
    alice, bob = new_id("alice"), new_id("bob")
    a1 = seed_session(client, alice, ["alice one", "reply"])
    a2 = seed_session(client, alice, ["alice two"])
    b1 = seed_session(client, bob, ["bob one"])
    assert client.post(f"/v1/sessions/{a1}/multi-agents", json={"id": "g", "state": {"x": 1}}).status_code == 201
    assert client.post(f"/v1/sessions/{a1}/lease", json={"owner": "w", "ttl_seconds": 30}).status_code == 200
    assert client.post(f"/v1/sessions/{a1}/turns/t-1/resolve").status_code == 200  # a turn record (tombstone)
    fork = client.post(f"/v1/sessions/{a2}/fork", json={"new_session_id": new_id("fork")})
    assert fork.status_code == 201
    for key in (f"session/{a2}/agents/default/snapshot_latest", f"session/{a2}/x", f"session/{b1}/x"):
        assert client.put("/v1/storage/objects", params={"key": key}, content=b"alice secret").status_code == 204
    for actor in (alice, bob):
        assert client.post(f"/v1/actors/{actor}/memories", json={"content": f"{actor} lives in Paris"}).status_code
    owned = client.post("/v1/agent-profiles", json={"name": "p", "owner_actor_id": alice}).json()["agent_id"]
    other = client.post("/v1/agent-profiles", json={"name": "q", "owner_actor_id": bob}).json()["agent_id"]
    # Bob's session handed over to Alice's profile loses the hand-over
    assert client.put(f"/v1/sessions/{b1}/active-agent", json={"agent_id": owned}).status_code == 200

    r = client.delete(f"/v1/actors/{alice}")
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["counts"] == {
        "sessions": 3,  # two of hers and the fork (its actor is the source's)
        "agents": 3,
        "messages": 4,  # 2 + 1 + the fork's copy of 1
        "multi_agents": 1,
        "turns": 1,
        "leases": 1,
        "active_agents": 1,
        "storage_objects": 2,
        "memories": 1,
        "profiles": 1,
    }
    assert sorted(receipt["session_ids"]) == sorted([a1, a2, fork.json()["session"]["session_id"]])
    uuid.UUID(receipt["erase_id"])

    # nothing of Alice is left in any table; Bob's rows are all there
    for table in ("sessions", "actor_memories"):
        assert fetch(database_url, f"SELECT 1 FROM {table} WHERE actor_id = $1", alice) == []
    assert fetch(database_url, "SELECT 1 FROM agent_profiles WHERE owner_actor_id = $1", alice) == []
    for table in ("agents", "messages", "multi_agents", "session_turns", "session_leases"):
        assert fetch(database_url, f"SELECT 1 FROM {table} WHERE session_id = ANY($1)", receipt["session_ids"]) == []
    assert fetch(database_url, "SELECT key FROM storage_objects WHERE key LIKE 'session/%'") == [(f"session/{b1}/x",)]
    assert client.get(f"/v1/sessions/{b1}/agents/default/messages").json()[0]["message"]["content"][0]["text"] == (
        "bob one"
    )
    assert client.get(f"/v1/agent-profiles/{other}").status_code == 200
    assert len(client.get(f"/v1/actors/{bob}/memories").json()["items"]) == 1
    assert client.get(f"/v1/sessions/{b1}/active-agent").status_code == 404

    # the audit record: counts and time, the actor only as a digest, no content
    [(digest, counts)] = fetch(
        database_url, "SELECT actor_digest, counts FROM erasures WHERE erase_id = $1", uuid.UUID(receipt["erase_id"])
    )
    assert digest == hashlib.sha256(alice.encode()).hexdigest()
    assert alice not in str(counts) and "secret" not in str(counts)

    # idempotent: again, nothing to delete, a new receipt of zeros
    again = client.delete(f"/v1/actors/{alice}").json()
    assert set(again["counts"].values()) == {0} and again["erase_id"] != receipt["erase_id"]


def test_erase_actor_with_nothing_and_bad_ids(client: TestClient) -> None:
    r = client.delete(f"/v1/actors/{new_id('nobody')}")
    assert r.status_code == 200 and set(r.json()["counts"].values()) == {0}
    assert client.delete("/v1/actors/a%2Fb").status_code in (404, 422)
    assert client.delete(f"/v1/actors/{'x' * 300}").status_code == 422
