"""Session expiry (404 once expired, swept in batches) and the API-key switch."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from session_backend.app import create_app
from session_backend.db.group_commit import Writer
from session_backend.db.housekeeping import Housekeeping
from session_backend.db.pool import create_pool
from session_backend.db.sessions import SessionStore

pytestmark = pytest.mark.integration


def _expire_now(database_url: str, session_ids: list[str]) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE session_id = ANY($1)", session_ids
            )
        finally:
            await conn.close()

    asyncio.run(run())


def test_ttl_sets_expires_at_and_expired_reads_as_404(client: TestClient, database_url: str) -> None:
    sid = f"ttl-{uuid.uuid4().hex[:8]}"
    r = client.post("/v1/sessions", json={"session_id": sid, "ttl_seconds": 3600})
    assert r.status_code == 201 and r.json()["expires_at"] is not None
    client.post(f"/v1/sessions/{sid}/agents", json={"agent_id": "a", "state": {}, "conversation_manager_state": {}})
    _expire_now(database_url, [sid])
    assert client.get(f"/v1/sessions/{sid}").status_code == 404
    assert client.get(f"/v1/sessions/{sid}/agents/a").status_code == 404
    assert sid not in [s["session_id"] for s in client.get("/v1/sessions", params={"limit": 1000}).json()["items"]]
    # an expired id can be created afresh, without the old agent
    assert client.post("/v1/sessions", json={"session_id": sid}).status_code == 201
    assert client.get(f"/v1/sessions/{sid}/agents/a").status_code == 404


def test_sweeper_deletes_expired_sessions_in_batches(database_url: str) -> None:
    async def run() -> tuple[int, int, int]:
        pool = await create_pool(database_url)
        try:
            store = SessionStore(Writer(pool))
            ids = [f"sweep-{uuid.uuid4().hex[:8]}" for _ in range(7)]
            for sid in ids:
                await store.create_session(sid, "AGENT", ttl_seconds=60)
            await store.create_session(f"keep-{uuid.uuid4().hex[:8]}", "AGENT", ttl_seconds=3600)
            await pool.execute(
                "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE session_id = ANY($1)", ids
            )
            deleted = await Housekeeping(pool).sweep_expired(batch_size=3)
            left = await pool.fetchval("SELECT count(*) FROM sessions WHERE session_id = ANY($1)", ids)
            kept = await pool.fetchval("SELECT count(*) FROM sessions WHERE session_id LIKE 'keep-%'")
            return deleted, left, kept
        finally:
            await pool.close()

    deleted, left, kept = asyncio.run(run())
    assert deleted >= 7 and left == 0 and kept >= 1


def test_background_sweeper_runs_on_its_interval(database_url: str, make_settings: Any) -> None:
    settings = make_settings(sweep_interval_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        sid = f"bg-{uuid.uuid4().hex[:8]}"
        assert client.post("/v1/sessions", json={"session_id": sid, "ttl_seconds": 60}).status_code == 201
        _expire_now(database_url, [sid])

        async def count() -> int:
            conn = await asyncpg.connect(database_url)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM sessions WHERE session_id = $1", sid))
            finally:
                await conn.close()

        deadline = time.monotonic() + 10
        while asyncio.run(count()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert asyncio.run(count()) == 0


def test_api_key_required_on_v1_only(make_settings: Any) -> None:
    settings = make_settings(api_key="s3cret-key")
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        r = client.get("/v1/sessions")
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/v1/sessions", headers={"Authorization": "Basic s3cret-key"}).status_code == 401
        ok = client.get("/v1/sessions", headers={"Authorization": "Bearer s3cret-key"})
        assert ok.status_code == 200
        r = client.post("/v1/sessions", json={"session_id": "unauth"})
        assert r.status_code == 401
        assert client.get("/v1/sessions/unauth", headers={"Authorization": "Bearer s3cret-key"}).status_code == 404
