"""A turn's memory extraction stored with the turn (real PostgreSQL): recorded pending by the turn's batch, handed to
the session's next lease holder, marked done in the transaction that stores its memories, kept by the sweeper."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from strands.types.content import Message
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from session_backend.db.housekeeping import Housekeeping
from session_backend.db.turns import TURN_RETENTION_SECONDS
from session_backend.sql.turns import MAX_PENDING_EXTRACTIONS

pytestmark = pytest.mark.integration

AGENT = "default"


def new_session(client: TestClient, actor_id: str) -> str:
    sid = f"ext-{uuid.uuid4().hex[:10]}"
    body = Session(session_id=sid, session_type=SessionType.AGENT).to_dict() | {"actor_id": actor_id}
    assert client.post("/v1/sessions", json=body).status_code == 201
    agent = SessionAgent(agent_id=AGENT, state={}, conversation_manager_state={}).to_dict()
    assert client.post(f"/v1/sessions/{sid}/agents", json=agent).status_code == 201
    return sid


def commit_turn(client: TestClient, sid: str, first_id: int, text: str, actor_id: str, **extraction: Any) -> str:
    """A turn's batch (prompt and answer) recording its extraction as pending; returns its turn id."""
    turn_id = uuid.uuid4().hex
    prompt: Message = {"role": "user", "content": [{"text": text}]}
    answer: Message = {"role": "assistant", "content": [{"text": "ok"}]}
    ops = [
        {"op": "create_message", "agent_id": AGENT, "message": SessionMessage(m, message_id=first_id + i).to_dict()}
        for i, m in enumerate((prompt, answer))
    ]
    pending = {"actor_id": actor_id, "agent_id": AGENT, "message_ids": [first_id, first_id + 1]} | extraction
    turn = {"turn_id": turn_id, "result": {"response": "ok"}, "extraction": pending}
    r = client.post(f"/v1/sessions/{sid}/batch", json={"operations": ops, "turn": turn})
    assert r.status_code == 200, r.text
    return turn_id


def lease(client: TestClient, sid: str) -> dict[str, Any]:
    owner = uuid.uuid4().hex
    r = client.post(f"/v1/sessions/{sid}/lease", json={"owner": owner, "ttl_seconds": 30})
    assert r.status_code == 200, r.text
    assert client.delete(f"/v1/sessions/{sid}/lease", params={"owner": owner}).status_code == 204
    return dict(r.json())


def store_extracted(
    client: TestClient, actor_id: str, sid: str, turn_id: str, contents: list[str], source_session: str | None = None
) -> Any:
    source = {"session_id": source_session or sid, "agent_id": AGENT, "message_ids": [0, 1]}
    memories = [{"content": c, "source": source} for c in contents]
    body = {"memories": memories, "turn": {"session_id": sid, "turn_id": turn_id}}
    return client.post(f"/v1/actors/{actor_id}/memories/batch", json=body)


def test_a_pending_extraction_is_handed_over_until_its_memories_are_stored(client: TestClient) -> None:
    actor_id = f"actor-{uuid.uuid4().hex[:8]}"
    sid = new_session(client, actor_id)
    turn_id = commit_turn(client, sid, 0, "I live in Lisbon.", actor_id)
    [pending] = lease(client, sid)["pending_extractions"]
    assert pending == {"turn_id": turn_id, "actor_id": actor_id, "agent_id": AGENT, "message_ids": [0, 1]}
    resolved = client.post(f"/v1/sessions/{sid}/turns/{turn_id}/resolve").json()
    assert resolved["extraction"] == {k: v for k, v in pending.items() if k != "turn_id"}
    assert resolved["extracted_at"] is None

    r = store_extracted(client, actor_id, sid, turn_id, ["I live in Lisbon"])
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    assert lease(client, sid)["pending_extractions"] == []
    assert client.post(f"/v1/sessions/{sid}/turns/{turn_id}/resolve").json()["extracted_at"] is not None
    # the same write again (its answer was lost, or a concurrent replay): the turn is done, nothing is stored
    r = store_extracted(client, actor_id, sid, turn_id, ["I live in Lisbon"])
    assert r.status_code == 200 and r.json() == {"items": [], "created": 0}
    [memory] = client.get(f"/v1/actors/{actor_id}/memories").json()["items"]
    assert memory["content"] == "I live in Lisbon"
    # ... not even after the actor forgot the memory
    assert client.delete(f"/v1/actors/{actor_id}/memories/{memory['memory_id']}").status_code == 204
    assert store_extracted(client, actor_id, sid, turn_id, ["I live in Lisbon"]).json()["created"] == 0
    assert client.get(f"/v1/actors/{actor_id}/memories").json()["items"] == []


def test_only_the_actor_a_turn_names_gets_its_memories(client: TestClient) -> None:
    actor_id, other = f"actor-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    sid = new_session(client, actor_id)
    turn_id = commit_turn(client, sid, 0, "I live in Lisbon.", actor_id)
    assert store_extracted(client, other, sid, turn_id, ["I live in Lisbon"]).json() == {"items": [], "created": 0}
    assert client.get(f"/v1/actors/{other}/memories").json()["items"] == []
    assert [p["turn_id"] for p in lease(client, sid)["pending_extractions"]] == [turn_id]


def test_a_turn_without_memories_is_marked_by_an_empty_batch(client: TestClient) -> None:
    actor_id = f"actor-{uuid.uuid4().hex[:8]}"
    sid = new_session(client, actor_id)
    turn_id = commit_turn(client, sid, 0, "I see.", actor_id)
    r = store_extracted(client, actor_id, sid, turn_id, [])
    assert r.status_code == 200 and r.json() == {"items": [], "created": 0}, r.text
    assert lease(client, sid)["pending_extractions"] == []
    # without a turn, an empty batch is still refused
    r = client.post(f"/v1/actors/{actor_id}/memories/batch", json={"memories": []})
    assert r.status_code == 422
    # a turn that is gone (or never was) marks nothing and is no error
    assert store_extracted(client, actor_id, sid, "no-such-turn", []).status_code == 200


def test_a_refused_write_leaves_the_turn_pending(client: TestClient) -> None:
    actor_id = f"actor-{uuid.uuid4().hex[:8]}"
    sid = new_session(client, actor_id)
    turn_id = commit_turn(client, sid, 0, "I live in Lisbon.", actor_id)
    r = store_extracted(client, actor_id, sid, turn_id, ["I live in Lisbon"], source_session="ghost")  # refused: 422
    assert r.status_code == 422, r.text
    assert [p["turn_id"] for p in lease(client, sid)["pending_extractions"]] == [turn_id]
    assert client.get(f"/v1/actors/{actor_id}/memories").json()["items"] == []


def test_bad_extraction_records_are_422_and_store_nothing(client: TestClient) -> None:
    actor_id = f"actor-{uuid.uuid4().hex[:8]}"
    sid = new_session(client, actor_id)
    bad: dict[str, Any]
    for bad in ({"actor_id": "bad id"}, {"message_ids": []}, {"message_ids": [-1]}, {"agent_id": None}):
        ops = [
            {
                "op": "create_message",
                "agent_id": AGENT,
                "message": SessionMessage({"role": "user", "content": [{"text": "x"}]}, message_id=0).to_dict(),
            }
        ]
        pending = {"actor_id": actor_id, "agent_id": AGENT, "message_ids": [0]} | bad
        turn = {"turn_id": uuid.uuid4().hex, "extraction": pending}
        r = client.post(f"/v1/sessions/{sid}/batch", json={"operations": ops, "turn": turn})
        assert r.status_code == 422, (bad, r.text)
    assert client.get(f"/v1/sessions/{sid}/agents/{AGENT}/messages").json() == []


def test_a_lease_hands_over_the_oldest_pending_first_and_at_most_its_bound(client: TestClient) -> None:
    actor_id = f"actor-{uuid.uuid4().hex[:8]}"
    sid = new_session(client, actor_id)
    turn_ids = [
        commit_turn(client, sid, 2 * i, f"I like item {i}.", actor_id) for i in range(MAX_PENDING_EXTRACTIONS + 2)
    ]
    handed = [p["turn_id"] for p in lease(client, sid)["pending_extractions"]]
    assert handed == turn_ids[:MAX_PENDING_EXTRACTIONS]


def test_the_sweeper_keeps_a_turn_whose_extraction_is_pending(client: TestClient, database_url: str) -> None:
    actor_id = f"actor-{uuid.uuid4().hex[:8]}"
    sid = new_session(client, actor_id)
    pending, done = (
        commit_turn(client, sid, 0, "I live in Lisbon.", actor_id),
        commit_turn(client, sid, 2, "x", actor_id),
    )
    assert store_extracted(client, actor_id, sid, done, []).status_code == 200

    async def age_and_sweep() -> list[str]:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            await pool.execute(
                "UPDATE session_turns SET created_at = now() - make_interval(secs => $2) WHERE session_id = $1",
                sid,
                TURN_RETENTION_SECONDS + 60,
            )
            await Housekeeping(pool).sweep_expired(1000)
            rows = await pool.fetch("SELECT turn_id FROM session_turns WHERE session_id = $1", sid)
            return [str(r["turn_id"]) for r in rows]
        finally:
            await pool.close()

    assert asyncio.run(age_and_sweep()) == [pending]


def test_erasing_an_actor_drops_its_pending_extractions_in_sessions_it_does_not_own(client: TestClient) -> None:
    """A pending extraction naming an erased actor, in a session the erasure keeps, never stores its memories."""
    owner, erased = (f"actor-{uuid.uuid4().hex[:8]}" for _ in range(2))
    sid = new_session(client, owner)
    turn_id = commit_turn(client, sid, 0, "I live in Lisbon.", erased)
    assert [p["actor_id"] for p in lease(client, sid)["pending_extractions"]] == [erased]
    assert client.delete(f"/v1/actors/{erased}").status_code == 200
    assert lease(client, sid)["pending_extractions"] == []
    r = store_extracted(client, erased, sid, turn_id, ["I live in Lisbon"])
    assert r.status_code == 200 and r.json()["created"] == 0, r.text
    assert client.get(f"/v1/actors/{erased}/memories").json()["items"] == []


def test_tokens_may_not_look_like_sealed_values(client: TestClient) -> None:
    """Turn ids, Idempotency-Keys and lease owners are stored in clear beside sealed values: the prefix is refused."""
    sid = new_session(client, f"actor-{uuid.uuid4().hex[:8]}")
    for turn in ({"turn_id": "~sb1~t", "result": {}}, {"turn_id": "t", "idempotency_key": "~sb1~k", "result": {}}):
        r = client.post(f"/v1/sessions/{sid}/batch", json={"operations": [], "turn": turn})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert client.post(f"/v1/sessions/{sid}/lease", json={"owner": "~sb1~o"}).status_code == 422
    assert client.post(f"/v1/sessions/{sid}/turns/t/resolve").json().get("status") != "committed"
