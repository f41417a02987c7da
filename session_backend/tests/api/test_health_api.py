"""Operations on the backend: sliding expiry, the active agent of a session (routes and lease), `/metrics`."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from session_backend.app import create_app
from session_backend.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def swept(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """A backend app whose sweeper runs every 0.2 s."""
    with TestClient(create_app(make_settings(sweep_interval_seconds=0.2))) as c:
        yield c


def _sql(database_url: str, statement: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval(statement, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _session(client: TestClient, ttl: int | None = None) -> str:
    sid = f"ops-{uuid.uuid4().hex[:10]}"
    body: dict[str, Any] = {"session_id": sid, "actor_id": "dev-1"}
    if ttl is not None:
        body["ttl_seconds"] = ttl
    assert client.post("/v1/sessions", json=body).status_code == 201
    agent = {"agent_id": "default", "state": {}, "conversation_manager_state": {}}
    assert client.post(f"/v1/sessions/{sid}/agents", json=agent).status_code == 201
    return sid


def _message(i: int) -> dict[str, Any]:
    return {"message_id": i, "message": {"role": "user", "content": [{"text": f"m{i}"}]}}


def test_every_write_slides_the_expiry(client: TestClient, database_url: str) -> None:
    sid = _session(client, ttl=3600)
    # as if created an hour minus 10 s ago: 10 s left
    _sql(database_url, "UPDATE sessions SET expires_at = now() + interval '10 seconds' WHERE session_id = $1", sid)
    before = datetime.fromisoformat(client.get(f"/v1/sessions/{sid}").json()["expires_at"])
    ops = [{"op": "create_message", "agent_id": "default", "message": _message(0)}]
    assert client.post(f"/v1/sessions/{sid}/batch", json={"operations": ops}).status_code == 200
    after = datetime.fromisoformat(client.get(f"/v1/sessions/{sid}").json()["expires_at"])
    assert (after - before).total_seconds() > 3000
    # a session without a lifetime keeps none
    forever = _session(client)
    ops = [{"op": "create_message", "agent_id": "default", "message": _message(0)}]
    assert client.post(f"/v1/sessions/{forever}/batch", json={"operations": ops}).status_code == 200
    assert client.get(f"/v1/sessions/{forever}").json()["expires_at"] is None
    # a refused batch moves nothing
    _sql(database_url, "UPDATE sessions SET expires_at = now() + interval '10 seconds' WHERE session_id = $1", sid)
    before = client.get(f"/v1/sessions/{sid}").json()["expires_at"]
    bad = [{"op": "create_message", "agent_id": "nobody", "message": _message(1)}]
    assert client.post(f"/v1/sessions/{sid}/batch", json={"operations": bad}).status_code == 404
    assert client.get(f"/v1/sessions/{sid}").json()["expires_at"] == before


def test_active_agent_routes_and_lease(client: TestClient) -> None:
    profile = f"spec-{uuid.uuid4().hex[:8]}"
    assert client.post("/v1/agent-profiles", json={"agent_id": profile, "name": "Specialist"}).status_code == 201
    sid = _session(client)
    path = f"/v1/sessions/{sid}/active-agent"
    assert client.get(path).status_code == 404
    assert client.delete(path).status_code == 404
    assert client.put(path, json={"agent_id": "no-such-profile"}).status_code == 422
    assert client.put(path, json={"agent_id": "bad id!"}).status_code == 422
    assert client.put("/v1/sessions/no-such-session/active-agent", json={"agent_id": profile}).status_code == 404
    r = client.put(path, json={"agent_id": profile})
    assert r.status_code == 200 and r.json()["agent_id"] == profile and r.json()["expires_at"] is None
    assert client.get(path).json()["agent_id"] == profile
    lease = client.post(f"/v1/sessions/{sid}/lease", json={"owner": "w1"}).json()
    assert lease["active_agent"]["agent_id"] == profile and lease["actor_id"] == "dev-1"
    assert client.delete(f"/v1/sessions/{sid}/lease", params={"owner": "w1"}).status_code == 204
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404
    assert client.post(f"/v1/sessions/{sid}/lease", json={"owner": "w1"}).json()["active_agent"] is None
    client.delete(f"/v1/sessions/{sid}/lease", params={"owner": "w1"})
    # with a TTL the choice lapses by itself
    r = client.put(path, json={"agent_id": profile, "ttl_seconds": 0.5})
    assert r.status_code == 200 and r.json()["expires_at"] is not None
    time.sleep(0.7)
    assert client.get(path).status_code == 404
    # a deleted profile routes nothing
    client.put(path, json={"agent_id": profile})
    assert client.delete(f"/v1/agent-profiles/{profile}").status_code == 204
    assert client.get(path).status_code == 404
    # a session that does not exist yet: lease without actor or active agent
    fresh = client.post(f"/v1/sessions/new-{uuid.uuid4().hex[:8]}/lease", json={"owner": "w2"}).json()
    assert fresh["actor_id"] is None and fresh["active_agent"] is None


def test_metrics_count_requests_sweeps_and_database(swept: TestClient, database_url: str) -> None:
    profile = f"mgr-{uuid.uuid4().hex[:8]}"
    swept.post("/v1/agent-profiles", json={"agent_id": profile, "name": "Manager"})
    routed = _session(swept)
    swept.put(f"/v1/sessions/{routed}/active-agent", json={"agent_id": profile})
    before = _samples(swept)
    doomed = [_session(swept, ttl=3600) for _ in range(3)]
    assert swept.get("/v1/sessions/no-such").status_code == 404
    _sql(
        database_url, "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE session_id = ANY($1)", doomed
    )
    time.sleep(1.2)  # the sweeper's rounds, and the database counts' refresh interval
    after = _samples(swept)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("session_backend_expired_sessions_deleted_total") >= 3
    assert delta("session_backend_errors_total", kind="NotFound") >= 1
    assert delta("http_requests_total", handler="/v1/sessions", method="POST", status="2xx") == 3
    assert delta("http_requests_total", handler="/v1/sessions/{session_id}", method="GET", status="4xx") == 1
    assert after[("session_backend_sessions_per_active_agent", (("agent_id", profile),))] == 1
    assert after[("session_backend_active_sessions", ())] >= 1
    assert ("session_backend_active_leases", ()) in after
    assert ("session_backend_db_pool_connections", (("state", "in_use"),)) in after
    assert any(name == "http_request_duration_seconds_bucket" for name, _ in after)


def test_start_up_objects_are_frozen_for_the_apps_life_only(make_settings: Callable[..., Settings]) -> None:
    # Full collections skip what start-up built while the app serves; nothing stays frozen once it has stopped.
    gc.unfreeze()
    with TestClient(create_app(make_settings())) as c:
        assert c.get("/health").status_code == 200
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
