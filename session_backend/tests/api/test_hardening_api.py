"""Hardening round 2 on the backend: bounded metadata and list pages, 422 for non-finite JSON numbers and for batch
timestamps a single create refuses, 422 for agents missing Strands' fields, 503 problem+json when PostgreSQL refuses
connections, and a `/ready` that reveals nothing about the database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from session_backend.app import create_app
from session_backend.testing import scratch_database

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def assert_problem(r: Any, status: int) -> None:
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith(PROBLEM)


def new_session(client: TestClient, **extra: Any) -> str:
    sid = f"h-{uuid.uuid4().hex[:12]}"
    r = client.post("/v1/sessions", json={"session_id": sid} | extra)
    assert r.status_code == 201, r.text
    return sid


def test_metadata_over_64_kib_is_refused_and_nothing_stored(make_settings: Any) -> None:
    with TestClient(create_app(make_settings())) as client:  # the default 16 MiB body limit
        sid = f"h-{uuid.uuid4().hex[:12]}"
        r = client.post("/v1/sessions", json={"session_id": sid, "metadata": {"blob": "x" * (65 * 1024)}})
        assert_problem(r, 413)
        assert "metadata" in r.json()["detail"]
        assert client.get(f"/v1/sessions/{sid}").status_code == 404
        new_session(client, metadata={"blob": "x" * (60 * 1024)})


def test_list_pages_are_bounded_in_rows_and_bytes(client: TestClient) -> None:
    actor = f"actor-{uuid.uuid4().hex[:8]}"
    for _ in range(30):
        new_session(client, actor_id=actor, metadata={"blob": "y" * (60 * 1024)})
    assert_problem(client.get("/v1/sessions", params={"limit": 5000}), 422)
    r = client.get("/v1/sessions", params={"actor_id": actor, "limit": 100})
    assert r.status_code == 200
    page = r.json()
    assert len(r.content) <= 1024 * 1024 + 64 * 1024, len(r.content)
    assert page["next_cursor"] is not None and 0 < len(page["items"]) < 30
    seen = len(page["items"])
    while page["next_cursor"]:
        params = {"actor_id": actor, "limit": 100, "cursor": page["next_cursor"]}
        page = client.get("/v1/sessions", params=params).json()
        seen += len(page["items"])
    assert seen == 30


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_422_not_null(client: TestClient, number: str) -> None:
    sid = f"h-{uuid.uuid4().hex[:12]}"
    body = '{"session_id": "' + sid + '", "metadata": {"x": ' + number + "}}"
    r = client.post("/v1/sessions", content=body, headers={"content-type": "application/json"})
    assert_problem(r, 422)
    assert client.get(f"/v1/sessions/{sid}").status_code == 404
    sid = new_session(client)
    assert client.post(f"/v1/sessions/{sid}/agents", json={"agent_id": "a"}).status_code == 201
    body = '{"message_id": 0, "message": {"role": "user", "content": [{"text": "hi", "n": ' + number + "}]}}"
    r = client.post(f"/v1/sessions/{sid}/agents/a/messages", content=body, headers={"content-type": "application/json"})
    assert_problem(r, 422)
    assert client.get(f"/v1/sessions/{sid}/agents/a/messages").json() == []


def test_batch_refuses_timestamps_a_single_create_refuses(client: TestClient) -> None:
    sid = new_session(client)
    assert client.post(f"/v1/sessions/{sid}/agents", json={"agent_id": "a"}).status_code == 201
    bad = {"message_id": 0, "message": {"role": "user", "content": [{"text": "hi"}]}, "created_at": "yesterday"}
    assert_problem(client.post(f"/v1/sessions/{sid}/agents/a/messages", json=bad), 422)
    batch = {"operations": [{"op": "create_message", "agent_id": "a", "message": bad}]}
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json=batch), 422)
    assert client.get(f"/v1/sessions/{sid}/agents/a/messages").json() == []


@pytest.mark.parametrize(
    "stamp",
    ["9999-12-31T23:59:59.999999", "0001-01-01T00:00:00", "0001-01-01T00:30:00+01:00", "9999-12-31T23:00:00-02:00"],
)
def test_timestamps_the_database_cannot_keep_are_422(client: TestClient, stamp: str) -> None:
    """datetime.min/max would be stored as -infinity/infinity (read back as null); others overflow once in UTC."""
    sid = f"h-{uuid.uuid4().hex[:12]}"
    assert_problem(client.post("/v1/sessions", json={"session_id": sid, "created_at": stamp}), 422)
    assert client.get(f"/v1/sessions/{sid}").status_code == 404
    sid = new_session(client)
    assert client.post(f"/v1/sessions/{sid}/agents", json={"agent_id": "a"}).status_code == 201
    bad = {"message_id": 0, "message": {"role": "user", "content": [{"text": "hi"}]}, "updated_at": stamp}
    assert_problem(client.post(f"/v1/sessions/{sid}/agents/a/messages", json=bad), 422)
    batch = {"operations": [{"op": "create_message", "agent_id": "a", "message": bad}]}
    assert_problem(client.post(f"/v1/sessions/{sid}/batch", json=batch), 422)
    assert client.get(f"/v1/sessions/{sid}/agents/a/messages").json() == []


def test_timestamps_just_inside_the_range_come_back_as_sent(client: TestClient) -> None:
    sid = f"h-{uuid.uuid4().hex[:12]}"
    stamp = "9999-12-31T23:59:59.999998+00:00"
    r = client.post("/v1/sessions", json={"session_id": sid, "created_at": stamp, "updated_at": stamp})
    assert r.status_code == 201, r.text
    assert r.json()["created_at"] == stamp


def test_metadata_integers_beyond_64_bits_are_kept_exactly(client: TestClient) -> None:
    """Issue 24: integers beyond 64 bits are stored and given back exactly (they were 422 before)."""
    sid = f"h-{uuid.uuid4().hex[:12]}"
    body = '{"session_id": "' + sid + '", "metadata": {"n": ' + "9" * 30 + "}}"
    r = client.post("/v1/sessions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    assert '"n": ' + "9" * 30 in client.get(f"/v1/sessions/{sid}").text


def test_put_agent_without_strands_fields_is_422_and_the_agent_stays_readable(client: TestClient) -> None:
    sid = new_session(client)
    assert client.post(f"/v1/sessions/{sid}/agents", json={"agent_id": "a"}).status_code == 201
    assert_problem(client.put(f"/v1/sessions/{sid}/agents/a", json={"agent_id": "a"}), 422)
    r = client.get(f"/v1/sessions/{sid}/agents/a")
    assert r.status_code == 200
    assert {"state", "conversation_manager_state"} <= set(r.json())


def test_refused_connections_are_503_problem_json_and_ready_reveals_nothing(
    pg_server_dsn: str, make_settings: Any
) -> None:
    with scratch_database(pg_server_dsn, prefix="refuse") as dsn:
        name = dsn.rsplit("/", 1)[-1].split("?")[0]
        with TestClient(create_app(make_settings(database_url=dsn)), raise_server_exceptions=False) as client:
            assert client.get("/ready").status_code == 200

            async def refuse() -> None:
                conn = await asyncpg.connect(pg_server_dsn)
                try:
                    await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                    await conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
                    )
                finally:
                    await conn.close()

            asyncio.run(refuse())
            r = client.get("/v1/sessions/x")
            assert_problem(r, 503)
            assert r.headers.get("retry-after")
            ready = client.get("/ready")
            assert ready.status_code == 503
            text = ready.text.lower()
            assert name not in text and "asyncpg" not in text and "allow" not in text
