"""Every route of the REST contract, with its success and error statuses, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any, Literal

import asyncpg
import orjson
import pytest
from fastapi.testclient import TestClient
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from session_backend.testing import ENCRYPTION_MODES

# The REST contract holds with encryption at rest off and on.
pytestmark = [pytest.mark.integration, pytest.mark.parametrize(**ENCRYPTION_MODES)]

PROBLEM = "application/problem+json"


def new_id(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_session(client: TestClient, **extra: Any) -> str:
    sid = new_id()
    body = Session(session_id=sid, session_type=SessionType.AGENT).to_dict() | extra
    r = client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return sid


def make_agent(client: TestClient, sid: str, aid: str = "agent-1") -> dict[str, Any]:
    agent = SessionAgent(agent_id=aid, state={"k": 1}, conversation_manager_state={"removed_message_count": 0})
    r = client.post(f"/v1/sessions/{sid}/agents", json=agent.to_dict())
    assert r.status_code == 201, r.text
    return dict(r.json())


def message(i: int, text: str | None = None) -> dict[str, Any]:
    role: Literal["user", "assistant"] = "user" if i % 2 == 0 else "assistant"
    return SessionMessage(message={"role": role, "content": [{"text": text or f"m{i}"}]}, message_id=i).to_dict()


def assert_problem(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["title"] and "detail" in body and "type" in body


# health


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    r = client.get("/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


# sessions


def test_create_and_get_session_round_trips_strands_form(client: TestClient) -> None:
    session = Session(session_id=new_id(), session_type=SessionType.AGENT)
    r = client.post("/v1/sessions", json=session.to_dict() | {"actor_id": "alice", "metadata": {"team": "x"}})
    assert r.status_code == 201
    got = client.get(f"/v1/sessions/{session.session_id}")
    assert got.status_code == 200
    body = got.json()
    assert body["session_id"] == session.session_id
    assert body["session_type"] == "AGENT"
    assert body["actor_id"] == "alice" and body["metadata"] == {"team": "x"} and body["expires_at"] is None
    assert body["created_at"] == session.created_at
    restored = Session.from_dict(body)
    assert restored.session_id == session.session_id


def test_create_session_twice_is_409(client: TestClient) -> None:
    sid = make_session(client)
    assert_problem(client.post("/v1/sessions", json={"session_id": sid, "session_type": "AGENT"}), 409)


def test_get_unknown_session_is_404(client: TestClient) -> None:
    assert_problem(client.get("/v1/sessions/nope-" + uuid.uuid4().hex), 404)


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "x" * 257, "", "a\x00b", ".", "..", "has space", "ü", "semi;colon"])
def test_invalid_session_ids_are_422_and_nothing_is_stored(client: TestClient, bad_id: str) -> None:
    before = client.get("/v1/sessions", params={"limit": 1000}).json()["items"]
    r = client.post("/v1/sessions", json={"session_id": bad_id, "session_type": "AGENT"})
    assert_problem(r, 422)
    after = client.get("/v1/sessions", params={"limit": 1000}).json()["items"]
    assert len(after) == len(before)


@pytest.mark.parametrize("bad_id", ["..", ".", "x" * 257, "has space", "a%00b"])
def test_invalid_ids_in_path_are_422(client: TestClient, bad_id: str) -> None:
    sid = make_session(client)
    # httpx normalises "." and ".." segments, so those are percent-encoded to reach the route.
    quoted = bad_id.replace(".", "%2E")
    assert_problem(client.get(f"/v1/sessions/{quoted}"), 422)
    assert_problem(client.post(f"/v1/sessions/{sid}/agents/{quoted}/messages", json=message(0)), 422)
    r = client.post(f"/v1/sessions/{sid}/agents", json={"agent_id": bad_id, "state": {}})
    assert_problem(r, 422)


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post("/v1/sessions", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(r, 422)


def test_wrong_shapes_are_422(client: TestClient) -> None:
    assert_problem(client.post("/v1/sessions", json=[1, 2]), 422)
    assert_problem(client.post("/v1/sessions", json={"session_id": "ok", "ttl_seconds": -5}), 422)
    assert_problem(client.post("/v1/sessions", json={"session_id": "ok", "created_at": "yesterday"}), 422)
    assert_problem(client.post("/v1/sessions", json={"session_id": "ok", "metadata": "str"}), 422)


def test_body_over_limit_is_413(client: TestClient) -> None:
    big = {"session_id": new_id(), "metadata": {"blob": "x" * 70_000}}
    assert_problem(client.post("/v1/sessions", json=big), 413)
    assert client.get(f"/v1/sessions/{big['session_id']}").status_code == 404


def test_nul_inside_json_is_stored_exactly(client: TestClient) -> None:
    """Issue 24: U+0000 in a message (it was a 422) is stored and read back, also as an identical retry."""
    sid = make_session(client)
    make_agent(client, sid)
    r = client.post(f"/v1/sessions/{sid}/agents/agent-1/messages", json=message(0, "a\x00b"))
    assert r.status_code == 201, r.text
    assert client.post(f"/v1/sessions/{sid}/agents/agent-1/messages", json=message(0, "a\x00b")).status_code == 200
    assert_problem(client.post(f"/v1/sessions/{sid}/agents/agent-1/messages", json=message(0, "a\x00c")), 409)
    stored = client.get(f"/v1/sessions/{sid}/agents/agent-1/messages").json()
    assert stored[0]["message"] == message(0, "a\x00b")["message"]


def test_list_sessions_newest_first_with_cursor_and_actor_filter(client: TestClient) -> None:
    actor = new_id("actor")
    ids = [make_session(client, actor_id=actor) for _ in range(5)]
    make_session(client, actor_id=new_id("other"))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"actor_id": actor, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/sessions", params=params)
        assert r.status_code == 200
        page = r.json()
        seen += [s["session_id"] for s in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert pages == 3


def test_list_sessions_by_last_write_within_and_across_seconds(client: TestClient, database_url: str) -> None:
    """`order_by=updated_at` reads an index on the write's second (migration 18) and sorts within the second: the
    order is exactly by `updated_at`, page after page; and no index holds `updated_at` itself, so the write that moves
    it can be a HOT update."""
    actor = new_id("actor")
    ids = [make_session(client, actor_id=actor) for _ in range(6)]
    # Three in one second, in an order unlike their creation's; three in the seconds before.
    stamps = ["2026-01-02T03:04:05.900", "2026-01-02T03:04:05.100", "2026-01-02T03:04:05.500"]
    stamps += ["2026-01-02T03:04:04.999", "2026-01-02T03:04:03.000", "2026-01-02T03:04:04.000"]

    async def backdate() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            for sid, stamp in zip(ids, stamps, strict=True):
                await conn.execute(
                    "UPDATE sessions SET updated_at = $2::text::timestamptz WHERE session_id = $1", sid, stamp + "+00"
                )
            return list(
                await conn.fetchval(
                    "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a"
                    " ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
                    " WHERE i.indrelid = 'sessions'::regclass"
                )
            )
        finally:
            await conn.close()

    assert "updated_at" not in asyncio.run(backdate())
    expected = [sid for _, sid in sorted(zip(stamps, ids, strict=True), reverse=True)]
    walked: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"actor_id": actor, "order_by": "updated_at", "limit": 1}
        page = client.get("/v1/sessions", params=params | ({"cursor": cursor} if cursor else {})).json()
        walked += [s["session_id"] for s in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert walked == expected
    whole = client.get("/v1/sessions", params={"actor_id": actor, "order_by": "updated_at"}).json()
    assert [s["session_id"] for s in whole["items"]] == expected


def test_list_sessions_bad_params_are_422(client: TestClient) -> None:
    assert_problem(client.get("/v1/sessions", params={"limit": 0}), 422)
    assert_problem(client.get("/v1/sessions", params={"limit": 100000}), 422)
    assert_problem(client.get("/v1/sessions", params={"cursor": "!!garbage!!"}), 422)
    assert_problem(client.get("/v1/sessions", params={"actor_id": "a/b"}), 422)


def test_delete_session_cascades(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    client.post(f"/v1/sessions/{sid}/agents/agent-1/messages", json=message(0))
    client.post(f"/v1/sessions/{sid}/multi-agents", json={"id": "graph", "state": {"a": 1}})
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert_problem(client.get(f"/v1/sessions/{sid}"), 404)
    assert_problem(client.get(f"/v1/sessions/{sid}/agents/agent-1"), 404)
    assert_problem(client.get(f"/v1/sessions/{sid}/agents/agent-1/messages/0"), 404)
    assert_problem(client.get(f"/v1/sessions/{sid}/multi-agents/graph"), 404)
    assert_problem(client.delete(f"/v1/sessions/{sid}"), 404)
    # the id is free again and starts empty
    assert client.post("/v1/sessions", json={"session_id": sid}).status_code == 201
    assert_problem(client.get(f"/v1/sessions/{sid}/agents/agent-1"), 404)


# agents


def test_agent_create_get_put(client: TestClient) -> None:
    sid = make_session(client)
    agent = SessionAgent(
        agent_id="a1",
        state={"n": 1},
        conversation_manager_state={"removed_message_count": 3},
        _internal_state={"interrupt_state": {"activated": False}},
    )
    r = client.post(f"/v1/sessions/{sid}/agents", json=agent.to_dict())
    assert r.status_code == 201 and r.headers["etag"] == '"1"'
    got = client.get(f"/v1/sessions/{sid}/agents/a1")
    assert got.status_code == 200
    body = got.json()
    assert body["_internal_state"] == {"interrupt_state": {"activated": False}}
    assert body["conversation_manager_state"] == {"removed_message_count": 3}
    assert body["created_at"] == agent.created_at
    assert SessionAgent.from_dict(body).state == {"n": 1}

    agent.state = {"n": 2}
    r = client.put(f"/v1/sessions/{sid}/agents/a1", json=agent.to_dict())
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["state"] == {"n": 2}


def test_agent_errors(client: TestClient) -> None:
    sid = make_session(client)
    body = SessionAgent(agent_id="a1", state={}, conversation_manager_state={}).to_dict()
    assert_problem(client.post("/v1/sessions/missing-session/agents", json=body), 404)
    assert client.post(f"/v1/sessions/{sid}/agents", json=body).status_code == 201
    assert_problem(client.post(f"/v1/sessions/{sid}/agents", json=body), 409)
    assert_problem(client.get(f"/v1/sessions/{sid}/agents/ghost"), 404)
    ghost = body | {"agent_id": "ghost"}
    assert_problem(client.put(f"/v1/sessions/{sid}/agents/ghost", json=ghost), 404)
    assert_problem(client.put(f"/v1/sessions/{sid}/agents/a1", json=ghost), 422)


def test_agent_if_match_rejects_stale_write(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid, "a1")
    body = SessionAgent(agent_id="a1", state={"w": 1}, conversation_manager_state={}).to_dict()
    assert client.put(f"/v1/sessions/{sid}/agents/a1", json=body, headers={"If-Match": '"1"'}).status_code == 200
    assert_problem(client.put(f"/v1/sessions/{sid}/agents/a1", json=body, headers={"If-Match": '"1"'}), 412)
    assert_problem(client.put(f"/v1/sessions/{sid}/agents/a1", json=body, headers={"If-Match": "junk"}), 422)
    assert client.get(f"/v1/sessions/{sid}/agents/a1").json()["version"] == 2


# messages


def test_messages_create_get_put_list(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    base = f"/v1/sessions/{sid}/agents/agent-1/messages"
    for i in range(5):
        r = client.post(base, json=message(i))
        assert r.status_code == 201, r.text
        assert r.json()["message_id"] == i
    r = client.get(base)
    assert r.status_code == 200
    assert [m["message_id"] for m in r.json()] == [0, 1, 2, 3, 4]
    assert [m["message_id"] for m in client.get(base, params={"offset": 1, "limit": 2}).json()] == [1, 2]
    assert client.get(base, params={"offset": 10}).json() == []
    assert client.get(f"{base}/3").json()["message"]["content"][0]["text"] == "m3"

    redacted = message(3) | {"redact_message": {"role": "assistant", "content": [{"text": "[redacted]"}]}}
    r = client.put(f"{base}/3", json=redacted)
    assert r.status_code == 200
    got = SessionMessage.from_dict(client.get(f"{base}/3").json())
    assert got.to_message()["content"][0]["text"] == "[redacted]"


def test_message_retry_is_200_and_different_content_is_409(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    base = f"/v1/sessions/{sid}/agents/agent-1/messages"
    first = message(0)
    assert client.post(base, json=first).status_code == 201
    retry = first | {"created_at": "2030-01-01T00:00:00+00:00", "updated_at": "2030-01-01T00:00:00+00:00"}
    r = client.post(base, json=retry)
    assert r.status_code == 200
    assert r.json()["created_at"] == first["created_at"]
    assert_problem(client.post(base, json=message(0, "something else")), 409)
    assert len(client.get(base).json()) == 1


def test_message_errors(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    base = f"/v1/sessions/{sid}/agents/agent-1/messages"
    assert_problem(client.post(f"/v1/sessions/{sid}/agents/ghost/messages", json=message(0)), 404)
    assert_problem(client.post(f"/v1/sessions/ghost-{sid}/agents/agent-1/messages", json=message(0)), 404)
    assert_problem(client.get(f"{base}/0"), 404)
    assert_problem(client.put(f"{base}/0", json=message(0)), 404)
    assert_problem(client.get(f"/v1/sessions/{sid}/agents/ghost/messages"), 404)
    assert_problem(client.post(base, json=message(0) | {"message_id": -1}), 422)
    assert_problem(client.post(base, json={"message_id": 0, "message": "text"}), 422)
    assert client.post(base, json=message(0)).status_code == 201
    assert_problem(client.put(f"{base}/0", json=message(1)), 422)
    assert_problem(client.get(base, params={"offset": -1}), 422)
    assert_problem(client.get(base, params={"limit": 0}), 422)
    assert_problem(client.get(f"{base}/notanumber"), 422)


def test_message_bytes_round_trip_base64(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    raw = bytes(range(256))
    msg = SessionMessage(
        message={"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": raw}}}]}, message_id=0
    )
    assert client.post(f"/v1/sessions/{sid}/agents/agent-1/messages", json=msg.to_dict()).status_code == 201
    got = client.get(f"/v1/sessions/{sid}/agents/agent-1/messages/0").json()
    encoded = got["message"]["content"][0]["image"]["source"]["bytes"]
    assert encoded["__bytes_encoded__"] is True and base64.b64decode(encoded["data"]) == raw
    restored = SessionMessage.from_dict(got)
    assert restored.message["content"][0]["image"]["source"]["bytes"] == raw


# multi-agents


def test_multi_agent_create_get_put(client: TestClient) -> None:
    sid = make_session(client)
    base = f"/v1/sessions/{sid}/multi-agents"
    r = client.post(base, json={"id": "swarm", "state": {"status": "executing", "node_history": []}})
    assert r.status_code == 201
    assert client.get(f"{base}/swarm").json() == {"id": "swarm", "state": {"status": "executing", "node_history": []}}
    r = client.put(f"{base}/swarm", json={"id": "swarm", "state": {"status": "completed"}})
    assert r.status_code == 200
    assert client.get(f"{base}/swarm").json()["state"] == {"status": "completed"}


def test_multi_agent_errors(client: TestClient) -> None:
    sid = make_session(client)
    base = f"/v1/sessions/{sid}/multi-agents"
    assert_problem(client.post("/v1/sessions/ghost-x/multi-agents", json={"id": "g", "state": {}}), 404)
    assert client.post(base, json={"id": "g", "state": {}}).status_code == 201
    assert_problem(client.post(base, json={"id": "g", "state": {}}), 409)
    assert_problem(client.get(f"{base}/nope"), 404)
    assert_problem(client.put(f"{base}/nope", json={"state": {}}), 404)
    assert_problem(client.put(f"{base}/g", json={"id": "other", "state": {}}), 422)
    assert_problem(client.post(base, json={"id": "a/b", "state": {}}), 422)


# batches


def test_batch_applies_a_turn_atomically(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    agent = SessionAgent(agent_id="agent-1", state={"n": 1}, conversation_manager_state={}).to_dict()
    ops = [
        {"op": "create_message", "agent_id": "agent-1", "message": message(0)},
        {"op": "create_message", "agent_id": "agent-1", "message": message(1)},
        {"op": "update_message", "agent_id": "agent-1", "message": message(1, "edited")},
        {"op": "update_agent", "agent": agent, "if_version": 1},
    ]
    r = client.post(f"/v1/sessions/{sid}/batch", json={"operations": ops})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "created_messages": 2,
        "existing_messages": 0,
        "agent_versions": {"agent-1": 2},
        "lease_ended": False,
    }
    msgs = client.get(f"/v1/sessions/{sid}/agents/agent-1/messages").json()
    assert [m["message"]["content"][0]["text"] for m in msgs] == ["m0", "edited"]

    # a stale version rolls the whole batch back: message 2 is not stored
    stale = [{"op": "create_message", "agent_id": "agent-1", "message": message(2)}, ops[3]]
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": stale}), 412)
    # a conflicting message rolls back too
    clash = [
        {"op": "create_message", "agent_id": "agent-1", "message": message(2)},
        {"op": "create_message", "agent_id": "agent-1", "message": message(0, "other")},
    ]
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": clash}), 409)
    assert len(client.get(f"/v1/sessions/{sid}/agents/agent-1/messages").json()) == 2
    # an identical retry is accepted; message 1 was edited since, so re-sending its first content is a conflict
    assert client.post(f"/v1/sessions/{sid}/batch", json={"operations": ops[:1]}).json()["existing_messages"] == 1
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": ops[1:2]}), 409)


def test_batch_errors(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    create = {"op": "create_message", "agent_id": "agent-1", "message": message(0)}
    assert_problem(client.post("/v1/sessions/ghost-s/batch", json={"operations": [create]}), 404)
    ghost = create | {"agent_id": "ghost"}
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": [create, ghost]}), 404)
    assert client.get(f"/v1/sessions/{sid}/agents/agent-1/messages").json() == []
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": []}), 422)
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": [{"op": "drop_table"}]}), 422)
    bad_id = create | {"agent_id": "../x"}
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": [bad_id]}), 422)


# leases


def test_lease_acquire_renew_busy_release_takeover(client: TestClient) -> None:
    sid = new_id("lease")  # a lease may be taken before the session exists
    r = client.post(f"/v1/sessions/{sid}/lease", json={"owner": "A", "ttl_seconds": 30})
    assert r.status_code == 200 and r.json()["owner"] == "A"
    locked_at = r.json()["locked_at"]
    renewed = client.post(f"/v1/sessions/{sid}/lease", json={"owner": "A", "ttl_seconds": 60}).json()
    assert renewed["locked_at"] == locked_at and renewed["expires_at"] > r.json()["expires_at"]
    busy = client.post(f"/v1/sessions/{sid}/lease", json={"owner": "B", "ttl_seconds": 30})
    assert_problem(busy, 409)
    assert "busy" in busy.json()["detail"] and int(busy.headers["retry-after"]) >= 1
    assert_problem(client.delete(f"/v1/sessions/{sid}/lease", params={"owner": "B"}), 404)
    assert client.delete(f"/v1/sessions/{sid}/lease", params={"owner": "A"}).status_code == 204
    assert client.post(f"/v1/sessions/{sid}/lease", json={"owner": "B", "ttl_seconds": 0.2}).status_code == 200
    import time

    time.sleep(0.3)  # B's lease expired: A takes it over
    assert client.post(f"/v1/sessions/{sid}/lease", json={"owner": "A", "ttl_seconds": 30}).status_code == 200


def test_batch_releases_the_lease_with_its_commit(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    assert client.post(f"/v1/sessions/{sid}/lease", json={"owner": "me", "ttl_seconds": 30}).status_code == 200
    # A batch that fails writes nothing and releases nothing.
    missing = {"op": "create_message", "agent_id": "nobody", "message": message(0)}
    body = {"operations": [missing], "lease_owner": "me", "release_lease": True}
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json=body), 404)
    assert_problem(client.post(f"/v1/sessions/{sid}/lease", json={"owner": "other", "ttl_seconds": 30}), 409)
    # Without its owner there is no lease to release: 422, nothing written.
    op = {"op": "create_message", "agent_id": "agent-1", "message": message(0)}
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": [op], "release_lease": True}), 422)
    assert_problem(
        client.post(f"/v1/sessions/{sid}/batch", json={"operations": [op], "lease_owner": "me", "release_lease": 1}),
        422,
    )
    assert client.get(f"/v1/sessions/{sid}/agents/agent-1/messages").json() == []
    r = client.post(f"/v1/sessions/{sid}/batch", json={"operations": [op], "lease_owner": "me", "release_lease": True})
    assert r.status_code == 200, r.text
    assert r.json()["created_messages"] == 1 and r.json()["lease_ended"] is True
    # The lease ended with the commit: another writer takes it at once.
    assert client.post(f"/v1/sessions/{sid}/lease", json={"owner": "other", "ttl_seconds": 30}).status_code == 200


def test_a_take_over_waits_for_the_fenced_writes_in_flight(client: TestClient, database_url: str) -> None:
    """The fence holds the lease row until the writes commit: a take-over after the lease expired mid-commit
    waits for them, so the old writer's batch is ordered before the new owner's reads."""
    import threading
    import time

    sid = make_session(client)
    make_agent(client, sid)
    assert client.post(f"/v1/sessions/{sid}/lease", json={"owner": "old", "ttl_seconds": 1}).status_code == 200
    took: dict[str, float] = {}

    def take_over() -> None:
        r = client.post(f"/v1/sessions/{sid}/lease", json={"owner": "new", "ttl_seconds": 30})
        took["status"], took["at"] = r.status_code, time.monotonic()

    async def slow_writer() -> float:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                ops = (
                    '[{"op": "create_message", "agent_id": "agent-1", "message": '
                    + orjson.dumps(message(0)).decode()
                    + "}]"
                )
                await conn.fetch("SELECT * FROM session_backend_write($1, $2::json, $3)", sid, ops, "old")
                await asyncio.sleep(1.5)  # the lease expires while this transaction is still open
                thread = threading.Thread(target=take_over)
                thread.start()
                await asyncio.sleep(1.0)
                assert "at" not in took  # the take-over waits on the lease row
                # Read before the COMMIT is sent: PostgreSQL frees the row as it commits, before this client hears
                # back, so a time read after the block could come after the take-over's answer.
                committing = time.monotonic()
            await asyncio.to_thread(thread.join, 10)
            return committing
        finally:
            await conn.close()

    committing = asyncio.run(slow_writer())
    assert took["status"] == 200 and took["at"] >= committing
    assert len(client.get(f"/v1/sessions/{sid}/agents/agent-1/messages").json()) == 1


def test_lease_bad_input(client: TestClient) -> None:
    assert_problem(client.post("/v1/sessions/x/lease", json={"owner": "", "ttl_seconds": 30}), 422)
    assert_problem(client.post("/v1/sessions/x/lease", json={"owner": "a b", "ttl_seconds": 30}), 422)
    assert_problem(client.post("/v1/sessions/x/lease", json={"owner": "a", "ttl_seconds": 0}), 422)
    assert_problem(client.post("/v1/sessions/x/lease", json={"owner": "a", "ttl_seconds": 99999}), 422)
    assert_problem(client.delete("/v1/sessions/x/lease"), 422)


def test_batch_is_fenced_by_the_lease(client: TestClient) -> None:
    sid = make_session(client)
    make_agent(client, sid)
    op = {"op": "create_message", "agent_id": "agent-1", "message": message(0)}
    r = client.post(f"/v1/sessions/{sid}/batch", json={"operations": [op], "lease_owner": "me"})
    assert_problem(r, 409)
    assert "lease" in r.json()["detail"]
    client.post(f"/v1/sessions/{sid}/lease", json={"owner": "me", "ttl_seconds": 30})
    assert client.post(f"/v1/sessions/{sid}/batch", json={"operations": [op], "lease_owner": "me"}).status_code == 200
    op1 = {"op": "create_message", "agent_id": "agent-1", "message": message(1)}
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json={"operations": [op1], "lease_owner": "other"}), 409)
    assert len(client.get(f"/v1/sessions/{sid}/agents/agent-1/messages").json()) == 1
