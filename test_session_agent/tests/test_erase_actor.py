"""Erasing an actor (issue 26, part 1) end to end, on real processes: Alice has a repository session (through her own
profile), a snapshot session, a fork, memories and a profile, and a turn of hers is in flight (scripted model with a
delay) when she is erased. Afterwards nothing of her is readable through any route (list, search, fetch by id, fork,
snapshot listing) nor in any table, the in-flight turn ends in 404/409 without writing anything back, and the
receipt's counts are the rows that were there."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

ALICE, BOB, ADMIN = "alice-key-0123456789", "bob-key-9876543210", "admin-key-5555555555"
KEYS = {"AGENT_API_KEYS": f"{ALICE}:alice,{BOB}:bob", "AGENT_ADMIN_KEYS": f"{ADMIN}:ops"}
MARK = "zebracorn"  # in everything Alice writes, so a scan of every table can look for it


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Services:
    repository: str  # SESSION_MANAGER=repository
    snapshot: str  # SESSION_MANAGER=snapshot
    slow: str  # repository, the scripted model waits before its first token (the in-flight turn)


@pytest.fixture(scope="module")
def services(backend_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: Any) -> Iterator[Services]:
    logs = tmp_path_factory.mktemp("agents")
    envs = {
        "repository": scripted_agent_env(backend_url, port_factory(), **KEYS),
        "snapshot": scripted_agent_env(backend_url, port_factory(), SESSION_MANAGER="snapshot", **KEYS),
        # long enough that the erasure surely lands while the model waits (the test does not wait for it: the turn is
        # answered 404/409 once the model is done)
        "slow": scripted_agent_env(backend_url, port_factory(), SCRIPTED_FIRST_TOKEN_DELAY_MS="15000", **KEYS),
    }
    with (
        service_runner("test-session-agent", envs["repository"][0], envs["repository"][1], log=logs / "repo.log"),
        service_runner("test-session-agent", envs["snapshot"][0], envs["snapshot"][1], log=logs / "snapshot.log"),
        service_runner("test-session-agent", envs["slow"][0], envs["slow"][1], log=logs / "slow.log"),
    ):
        yield Services(envs["repository"][1], envs["snapshot"][1], envs["slow"][1])


def sql(database_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(database_url)
        try:
            return [tuple(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def rows_with_mark(database_url: str) -> dict[str, int]:
    """Rows of every table of the database whose text (bytea values: whose bytes) contain MARK."""

    async def run() -> dict[str, int]:
        conn = await asyncpg.connect(database_url)
        try:
            found: dict[str, int] = {}
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for (table,) in tables:
                n = await conn.fetchval(f'SELECT count(*) FROM "{table}" t WHERE t::text ILIKE $1', f"%{MARK}%")
                found[table] = int(n)
            found["storage_objects (bytes)"] = int(
                await conn.fetchval(
                    "SELECT count(*) FROM storage_objects WHERE position($1::bytea IN value) > 0", MARK.encode()
                )
            )
            return {k: v for k, v in found.items() if v}
        finally:
            await conn.close()

    return asyncio.run(run())


def expected_counts(database_url: str, session_ids: list[str]) -> dict[str, int]:
    """What the receipt must report: the rows of each kind the actor has now."""
    per_session = {
        "sessions": "sessions",
        "agents": "agents",
        "messages": "messages",
        "multi_agents": "multi_agents",
        "turns": "session_turns",
        "leases": "session_leases",
        "active_agents": "session_active_agents",
    }
    counts = {
        kind: sql(database_url, f"SELECT count(*) FROM {table} WHERE session_id = ANY($1)", session_ids)[0][0]
        for kind, table in per_session.items()
    }
    counts["storage_objects"] = sql(
        database_url,
        "SELECT count(*) FROM storage_objects o, unnest($1::text[]) s WHERE starts_with(o.key, 'session/' || s || '/')",
        session_ids,
    )[0][0]
    counts["memories"] = sql(database_url, "SELECT count(*) FROM actor_memories WHERE actor_id = 'alice'")[0][0]
    counts["profiles"] = sql(database_url, "SELECT count(*) FROM agent_profiles WHERE owner_actor_id = 'alice'")[0][0]
    return counts


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_erase_an_actor_while_a_turn_of_hers_is_in_flight(
    services: Services, backend_url: str, database_url: str
) -> None:
    s = services
    a = auth(ALICE)
    # her profile, and a repository session through it (two turns)
    profile = {"name": "Alice's", "system_prompt": f"{MARK} prompt", "model_config": {"provider": "scripted"}}
    agent_id = httpx.post(f"{s.repository}/api/v1/agents", json=profile, headers=a).json()["agent_id"]
    r = httpx.post(
        f"{s.repository}/api/v1/agents/{agent_id}/invoke", json={"prompt": f"{MARK} one"}, headers=a, timeout=60
    )
    assert r.status_code == 200, r.text
    repo_sid = r.json()["session_id"]
    r = httpx.post(
        f"{s.repository}/api/v1/agents/{agent_id}/invoke",
        json={"prompt": f"{MARK} two", "session_id": repo_sid},
        headers={**a, "Idempotency-Key": "k-1"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    # a fork of it
    r = httpx.post(f"{s.repository}/sessions/{repo_sid}/fork", json={}, headers=a)
    assert r.status_code == 201, r.text
    fork_sid = r.json()["session_id"]
    # a snapshot session
    r = httpx.post(f"{s.snapshot}/process", json={"prompt": f"{MARK} snapshot"}, headers=a, timeout=60)
    assert r.status_code == 200, r.text
    snap_sid = r.json()["session_id"]
    assert httpx.get(f"{s.snapshot}/sessions/{snap_sid}/snapshots", headers=a).json()["items"]
    # memories: one stored, one extracted from a turn
    r = httpx.post(f"{s.repository}/api/v1/actors/alice/memories", json={"content": f"{MARK} likes tea"}, headers=a)
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{s.repository}/process",
        json={"prompt": f"I live in {MARK}ville.", "session_id": fork_sid},
        headers=a,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    # Bob, who must keep everything
    r = httpx.post(f"{s.repository}/process", json={"prompt": "bob's own words"}, headers=auth(BOB), timeout=60)
    bob_sid = r.json()["session_id"]
    alice_sessions = sorted([repo_sid, fork_sid, snap_sid])
    assert {x["session_id"] for x in httpx.get(f"{s.repository}/sessions", headers=a).json()["items"]} == set(
        alice_sessions
    )

    # a turn of hers in flight on the slow process: it holds the session's lease while its model waits
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            httpx.post,
            f"{s.slow}/api/v1/agents/{agent_id}/invoke",
            json={"prompt": f"I live in {MARK}burg. {MARK} three", "session_id": repo_sid},
            headers=a,
            timeout=120,
        )
        wait_for(
            lambda: sql(database_url, "SELECT 1 FROM session_leases WHERE session_id = $1", repo_sid) != [],
            "the in-flight turn's lease",
        )
        expected = expected_counts(database_url, alice_sessions)
        # Bob may not erase Alice; Alice may erase herself (an admin key may erase anyone: below)
        assert httpx.delete(f"{s.repository}/api/v1/actors/alice", headers=auth(BOB)).status_code == 404
        started = time.monotonic()
        r = httpx.delete(f"{s.repository}/api/v1/actors/alice", headers=a, timeout=60)
        print(f"erase answered in {time.monotonic() - started:.3f} s: {r.text}")
        assert r.status_code == 200, r.text
        receipt = r.json()
        turn = in_flight.result()
    assert not in_flight.running()
    print(f"in-flight turn answered {turn.status_code}: {turn.text}")
    assert turn.status_code in (404, 409), turn.text

    # the receipt's counts are what was there
    assert receipt["counts"] == expected, (receipt["counts"], expected)
    assert expected["sessions"] == 3 and expected["messages"] >= 8 and expected["storage_objects"] >= 2
    assert expected["memories"] == 2 and expected["profiles"] == 1 and expected["leases"] == 1
    assert expected["turns"] >= 1
    assert sorted(receipt["session_ids"]) == alice_sessions

    # nothing readable through any route, on every process
    for url in (s.repository, s.snapshot, s.slow):
        assert httpx.get(f"{url}/sessions", headers=a).json()["items"] == []
        for sid in alice_sessions:
            assert httpx.get(f"{url}/sessions/{sid}/history", headers=a).status_code == 404
            assert httpx.get(f"{url}/sessions/{sid}/snapshots", headers=a).status_code == 404
            assert httpx.post(f"{url}/sessions/{sid}/fork", json={}, headers=a).status_code == 404
            assert httpx.get(f"{url}/api/v1/sessions/{sid}/active-agent", headers=a).status_code == 404
        memories = httpx.get(f"{url}/api/v1/actors/alice/memories", params={"query": MARK}, headers=a)
        assert memories.json()["items"] == []
        assert httpx.get(f"{url}/api/v1/actors/alice/memories", headers=a).json()["items"] == []
        assert httpx.get(f"{url}/api/v1/agents/{agent_id}", headers=a).status_code == 404
        assert agent_id not in httpx.get(f"{url}/api/v1/agents", headers=auth(ADMIN)).text
        r = httpx.post(
            f"{url}/api/v1/agents/{agent_id}/invoke", json={"prompt": "hi", "session_id": repo_sid}, headers=a
        )
        assert r.status_code == 404
    backend = backend_url
    for sid in alice_sessions:
        assert httpx.get(f"{backend}/v1/sessions/{sid}").status_code == 404
    assert httpx.get(f"{backend}/v1/storage/search", params={"query": MARK}).json()["items"] == []
    assert httpx.get(f"{backend}/v1/storage/keys", params={"prefix": f"session/{snap_sid}/"}).json()["items"] == []
    # nor in any table: no row anywhere holds her words, her ids or her actor
    assert rows_with_mark(database_url) == {}
    for sid in alice_sessions:
        assert rows_with_sid(database_url, sid) == {}
    assert sql(database_url, "SELECT 1 FROM sessions WHERE actor_id = 'alice'") == []
    assert sql(database_url, "SELECT 1 FROM actor_memories WHERE actor_id = 'alice'") == []
    assert sql(database_url, "SELECT 1 FROM agent_profiles WHERE owner_actor_id = 'alice'") == []
    # the audit record: id, counts, time; no content
    [(counts,)] = sql(database_url, "SELECT counts FROM erasures WHERE erase_id = $1::uuid", receipt["erase_id"])
    assert json.loads(counts) == expected
    # Bob's session is untouched
    assert len(httpx.get(f"{s.repository}/sessions/{bob_sid}/history", headers=auth(BOB)).json()["messages"]) == 2

    # the snapshot process still holds its cached agent of her snapshot session: a new turn on that id starts an empty
    # session (the incarnation it was built from is gone), nothing of the old conversation comes back
    r = httpx.post(f"{s.snapshot}/process", json={"prompt": "new life", "session_id": snap_sid}, headers=a, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["conversation_length"] == 2 and MARK not in r.text
    history = httpx.get(f"{s.snapshot}/sessions/{snap_sid}/history", headers=a).json()["messages"]
    assert len(history) == 2 and MARK not in str(history)
    assert rows_with_mark(database_url) == {}
    httpx.delete(f"{s.snapshot}/sessions/{snap_sid}", headers=a)

    # idempotent, and an admin key may erase anyone: nothing left, all zeros
    again = httpx.delete(f"{s.repository}/api/v1/actors/alice", headers=auth(ADMIN)).json()
    assert set(again["counts"].values()) == {0}
    assert rows_with_mark(database_url) == {}


def rows_with_sid(database_url: str, session_id: str) -> dict[str, int]:
    """Rows of every table whose text (storage: key) contains the session id."""

    async def run() -> dict[str, int]:
        conn = await asyncpg.connect(database_url)
        try:
            found: dict[str, int] = {}
            for (table,) in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
                n = await conn.fetchval(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE $1', f"%{session_id}%")
                if n:
                    found[table] = int(n)
            return found
        finally:
            await conn.close()

    return asyncio.run(run())
