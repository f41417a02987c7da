"""Agent profiles (`/v1/agent-profiles`): every route and error on a real PostgreSQL, and profiles surviving a restart
of the backend process."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
BASE = "/v1/agent-profiles"

SUPPORT = {
    "name": "Customer support",
    "system_prompt": "You help customers of Example Corp.",
    "model_config": {"provider": "bedrock", "model_id": "anthropic.claude", "max_tokens": 1024, "temperature": 0.2},
    "tools": ["lookup_order", "refund"],
}


def assert_problem(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["status"] == status


def test_create_generates_an_id_and_round_trips(client: TestClient) -> None:
    r = client.post(BASE, json=SUPPORT)
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["agent_id"]) == 32 and int(body["agent_id"], 16) >= 0
    assert {k: body[k] for k in SUPPORT} == SUPPORT
    assert body["created_at"] == body["updated_at"] and body["created_at"].endswith("+00:00")
    assert client.get(f"{BASE}/{body['agent_id']}").json() == body


def test_create_with_defaults_and_a_chosen_id(client: TestClient) -> None:
    agent_id = f"p-{uuid.uuid4().hex[:8]}"
    r = client.post(BASE, json={"name": "minimal", "agent_id": agent_id})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["agent_id"] == agent_id
    assert body["system_prompt"] is None and body["model_config"] == {} and body["tools"] == []


def test_create_with_a_taken_id_is_409(client: TestClient) -> None:
    agent_id = f"p-{uuid.uuid4().hex[:8]}"
    assert client.post(BASE, json={"name": "first", "agent_id": agent_id}).status_code == 201
    assert_problem(client.post(BASE, json={"name": "second", "agent_id": agent_id}), 409)
    assert client.get(f"{BASE}/{agent_id}").json()["name"] == "first"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "x", "agent_id": "bad id"},
        {"name": "x", "agent_id": ".."},
        {"name": "x", "model_config": {"temperature": 3}},
        {"name": "x", "model_config": {"max_tokens": 0}},
        {"name": "x", "model_config": {"provider": "Not A Provider"}},
        {"name": "x", "model_config": {"unknown": 1}},
        {"name": "x", "tools": ["bad name"]},
        {"name": "x", "tools": ["calc", "calc"]},
        {"name": "x", "tools": [f"t{i}" for i in range(129)]},
        {"name": "x", "tools": "calc"},
    ],
)
def test_invalid_bodies_are_422_and_store_nothing(client: TestClient, body: dict[str, Any]) -> None:
    before = len(client.get(BASE, params={"limit": 1000}).json()["items"])
    assert_problem(client.post(BASE, json=body), 422)
    assert len(client.get(BASE, params={"limit": 1000}).json()["items"]) == before


def test_system_prompt_over_100k_characters_is_422(make_settings: Callable[..., Any]) -> None:
    from session_backend.app import create_app

    with TestClient(create_app(make_settings())) as c:  # default 16 MiB body limit
        assert c.post(BASE, json={"name": "x", "system_prompt": "p" * 100_000}).status_code == 201
        assert_problem(c.post(BASE, json={"name": "x", "system_prompt": "p" * 100_001}), 422)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "lone \\ud800 surrogate"}',
        b'{"name": "x", "system_prompt": "\\udfff"}',
        b'{"name": "x", "model_config": {"model_id": "\\ud800"}}',
        b'{"name": "nul \\u0000 byte"}',
    ],
)
def test_text_postgresql_cannot_store_is_422(client: TestClient, raw: bytes) -> None:
    assert_problem(client.post(BASE, content=raw, headers={"Content-Type": "application/json"}), 422)


def test_get_update_delete_unknown_are_404(client: TestClient) -> None:
    assert_problem(client.get(f"{BASE}/nope"), 404)
    assert_problem(client.put(f"{BASE}/nope", json={"name": "x"}), 404)
    assert_problem(client.delete(f"{BASE}/nope"), 404)
    assert_problem(client.get(f"{BASE}/bad id"), 422)


def test_update_replaces_content_and_keeps_id_and_created_at(client: TestClient) -> None:
    created = client.post(BASE, json=SUPPORT).json()
    agent_id = created["agent_id"]
    r = client.put(f"{BASE}/{agent_id}", json={"name": "renamed", "tools": ["calc"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["agent_id"] == agent_id and body["created_at"] == created["created_at"]
    assert body["updated_at"] > created["updated_at"]
    assert (body["name"], body["system_prompt"], body["model_config"], body["tools"]) == ("renamed", None, {}, ["calc"])
    assert client.get(f"{BASE}/{agent_id}").json() == body
    assert_problem(client.put(f"{BASE}/{agent_id}", json={"name": "x", "agent_id": "other"}), 422)
    assert_problem(client.put(f"{BASE}/{agent_id}", json={"name": ""}), 422)
    # the matching agent_id in the body is accepted
    assert client.put(f"{BASE}/{agent_id}", json={"name": "same", "agent_id": agent_id}).status_code == 200


def test_delete_then_gone(client: TestClient) -> None:
    agent_id = client.post(BASE, json={"name": "temp"}).json()["agent_id"]
    r = client.delete(f"{BASE}/{agent_id}")
    assert r.status_code == 204 and r.content == b""
    assert_problem(client.get(f"{BASE}/{agent_id}"), 404)
    assert_problem(client.delete(f"{BASE}/{agent_id}"), 404)


def test_list_is_keyset_paginated_by_agent_id(client: TestClient) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    ids = [f"{prefix}-{i:02d}" for i in range(7)]
    for agent_id in reversed(ids):
        assert client.post(BASE, json={"name": agent_id, "agent_id": agent_id}).status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(BASE, params=params).json()
        assert len(page["items"]) <= 3
        seen += [p["agent_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and [s for s in seen if s.startswith(prefix)] == ids
    assert_problem(client.get(BASE, params={"limit": 0}), 422)
    assert_problem(client.get(BASE, params={"limit": 1001}), 422)
    assert_problem(client.get(BASE, params={"cursor": "not a cursor"}), 422)


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    assert_problem(client.post(BASE, json={"name": "big", "system_prompt": "x" * 70_000}), 413)


def test_session_names_its_profile_in_metadata(client: TestClient) -> None:
    agent_id = client.post(BASE, json={"name": "linked"}).json()["agent_id"]
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    body = {"session_id": session_id, "session_type": "AGENT", "metadata": {"agent_profile_id": agent_id}}
    assert client.post("/v1/sessions", json=body).status_code == 201
    assert client.get(f"/v1/sessions/{session_id}").json()["metadata"]["agent_profile_id"] == agent_id


def test_api_key_is_required_when_set_on_profiles_and_memories(make_settings: Callable[..., Any]) -> None:
    from session_backend.app import create_app

    with TestClient(create_app(make_settings(api_key="k3y"))) as c:
        assert_problem(c.get(BASE), 401)
        assert_problem(c.get("/v1/actors/a/memories"), 401)
        assert_problem(c.post("/v1/actors/a/memories", json={"content": "x"}), 401)
        assert c.get(BASE, headers={"Authorization": "Bearer k3y"}).status_code == 200


def test_profiles_survive_a_backend_restart(
    database_url: str,
    port_factory: Callable[[], int],
    service_runner: Callable[..., Any],
    tmp_path: Path,
) -> None:
    def backend(port: int) -> Any:
        env = {"DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1", "SESSION_BACKEND_API_KEY": ""}
        return service_runner("session-backend", env, f"http://127.0.0.1:{port}", health="/ready", log=tmp_path / "log")

    port = port_factory()
    with backend(port):
        created = httpx.post(f"http://127.0.0.1:{port}{BASE}", json=SUPPORT).json()
    port = port_factory()
    with backend(port):
        assert httpx.get(f"http://127.0.0.1:{port}{BASE}/{created['agent_id']}").json() == created
