"""Hardening round 2 with real processes: no resurrected conversation through a second agent process, no duplicate
turn when the backend is slower than the client timeout, no session stuck after a backend crash mid-turn."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from test_session_agent import PostgreSQLSessionRepository

pytestmark = pytest.mark.integration

SCRIPTED = {"MODEL_PROVIDER": "scripted", "SESSION_WAIT_SECONDS": "60"}


def stored_user_texts(backend_url: str, session_id: str) -> list[str]:
    repo = PostgreSQLSessionRepository(base_url=backend_url)
    try:
        messages = repo.list_messages(session_id, "default")
    finally:
        repo.close()
    return [b["text"] for m in messages if m.message["role"] == "user" for b in m.message["content"] if "text" in b]


def test_deleted_conversation_does_not_come_back_through_another_process(
    backend_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    session_id = f"resurrect-{uuid.uuid4().hex[:8]}"
    ports = [port_factory(), port_factory()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    env = SCRIPTED | {"SESSION_BACKEND_URL": backend_url}
    with (
        service_runner("test-session-agent", env | {"PORT": str(ports[0])}, urls[0], log=tmp_path / "a.log"),
        service_runner("test-session-agent", env | {"PORT": str(ports[1])}, urls[1], log=tmp_path / "b.log"),
    ):
        a, b = urls

        def turn(url: str, prompt: str) -> str:
            r = httpx.post(f"{url}/process", json={"prompt": prompt, "session_id": session_id}, timeout=60)
            assert r.status_code == 200, r.text
            return str(r.json()["response"])

        # B caches the session with two turns of the old conversation.
        turn(b, "old secret one")
        turn(b, "old secret two")
        # A deletes it and starts afresh under the same id (one turn: agent versions line up with B's copy's).
        assert httpx.delete(f"{a}/sessions/{session_id}", timeout=30).status_code == 204
        turn(a, "fresh start")
        turn(a, "fresh again")
        # B's next turn must see only the new conversation.
        reply = turn(b, "what do you remember?")
    assert "first: fresh start" in reply, reply
    assert "old secret" not in reply
    assert stored_user_texts(backend_url, session_id) == ["fresh start", "fresh again", "what do you remember?"]


def test_expired_and_recreated_session_is_not_resurrected_by_a_cached_agent(
    backend_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    session_id = f"expire-{uuid.uuid4().hex[:8]}"
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = SCRIPTED | {"SESSION_BACKEND_URL": backend_url, "PORT": str(port)}
    with service_runner("test-session-agent", env, url, log=tmp_path / "a.log"):
        r = httpx.post(f"{url}/process", json={"prompt": "old secret", "session_id": session_id}, timeout=60)
        assert r.status_code == 200
        # Re-created directly in the backend, as an expiry followed by a new start elsewhere would leave it.
        state = {"__name__": "SlidingWindowConversationManager", "removed_message_count": 0}
        agent = {"agent_id": "default", "state": {}, "conversation_manager_state": state}
        with httpx.Client(base_url=backend_url, timeout=30) as backend:
            assert backend.delete(f"/v1/sessions/{session_id}").status_code == 204
            assert backend.post("/v1/sessions", json={"session_id": session_id}).status_code == 201
            assert backend.post(f"/v1/sessions/{session_id}/agents", json=agent).status_code == 201
            # one update: the version of the new agent catches up with the cached copy's
            assert backend.put(f"/v1/sessions/{session_id}/agents/default", json=agent).status_code == 200
        r = httpx.post(f"{url}/process", json={"prompt": "new", "session_id": session_id}, timeout=60)
        assert r.status_code == 200, r.text
    assert "old secret" not in r.json()["response"]
    assert stored_user_texts(backend_url, session_id) == ["new"]


def _lock_table_for(database_url: str, table: str, seconds: float, ready: threading.Event) -> threading.Thread:
    async def hold() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                ready.set()
                await asyncio.sleep(seconds)
        finally:
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(hold()), daemon=True)
    thread.start()
    return thread


def test_retries_with_idempotency_key_under_a_table_lock_store_the_turn_once(
    backend_url: str, database_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    session_id = f"idem-{uuid.uuid4().hex[:8]}"
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = SCRIPTED | {"SESSION_BACKEND_URL": backend_url, "PORT": str(port), "SESSION_BACKEND_TIMEOUT_SECONDS": "2"}
    with service_runner("test-session-agent", env, url, log=tmp_path / "a.log"):
        r = httpx.post(f"{url}/process", json={"prompt": "first", "session_id": session_id}, timeout=60)
        assert r.status_code == 200
        ready = threading.Event()
        locker = _lock_table_for(database_url, "messages", 12.0, ready)
        assert ready.wait(10)
        key = uuid.uuid4().hex
        statuses = []
        answer = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = httpx.post(
                f"{url}/process",
                json={"prompt": "pay the invoice", "session_id": session_id},
                headers={"Idempotency-Key": key},
                timeout=60,
            )
            statuses.append(r.status_code)
            if r.status_code == 200:
                answer = r.json()
                break
            assert r.status_code in (409, 503), r.text
            time.sleep(1)
        locker.join()
        assert answer is not None, statuses
        # a retry after the success returns the same answer and stores nothing
        again = httpx.post(
            f"{url}/process",
            json={"prompt": "pay the invoice", "session_id": session_id},
            headers={"Idempotency-Key": key},
            timeout=60,
        )
        assert again.status_code == 200
        assert again.json()["response"] == answer["response"]
    texts = stored_user_texts(backend_url, session_id)
    print(f"attempts={len(statuses)} statuses={statuses} stored={texts}")
    assert texts.count("pay the invoice") == 1, texts
    assert texts == ["first", "pay the invoice"]


def test_a_lease_left_by_a_backend_crash_mid_turn_does_not_block_the_session(
    database_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    session_id = f"stuck-{uuid.uuid4().hex[:8]}"
    backend_port, agent_port = port_factory(), port_factory()
    backend = f"http://127.0.0.1:{backend_port}"
    url = f"http://127.0.0.1:{agent_port}"
    backend_env = {"DATABASE_URL": database_url, "PORT": str(backend_port), "SESSION_BACKEND_API_KEY": ""}
    env = SCRIPTED | {
        "SESSION_BACKEND_URL": backend,
        "PORT": str(agent_port),
        "SCRIPTED_FIRST_TOKEN_DELAY_MS": "1500",
        "SESSION_LEASE_TTL_SECONDS": "30",
    }
    with service_runner("test-session-agent", env, url, log=tmp_path / "agent.log"):
        with service_runner("session-backend", backend_env, backend, health="/ready", log=tmp_path / "b1.log") as proc:
            r = httpx.post(f"{url}/process", json={"prompt": "one", "session_id": session_id}, timeout=60)
            assert r.status_code == 200
            result: dict[str, Any] = {}

            def slow_turn() -> None:
                result["r"] = httpx.post(f"{url}/process", json={"prompt": "two", "session_id": session_id}, timeout=60)

            t = threading.Thread(target=slow_turn)
            t.start()
            time.sleep(0.7)  # the lease is taken, the model is thinking
            proc.kill()
            proc.wait()
            t.join()
            assert result["r"].status_code == 503
        with service_runner("session-backend", backend_env, backend, health="/ready", log=tmp_path / "b2.log"):
            started = time.monotonic()
            r = httpx.post(f"{url}/process", json={"prompt": "three", "session_id": session_id}, timeout=60)
            blocked = time.monotonic() - started
            assert r.status_code == 200, r.text
            print(f"blocked after backend SIGKILL mid-turn: {blocked:.2f} s")
            assert blocked < 5.0

            # the lease is released when the turn ends
            async def lease_rows() -> int:
                conn = await asyncpg.connect(database_url)
                try:
                    return int(
                        await conn.fetchval("SELECT count(*) FROM session_leases WHERE session_id = $1", session_id)
                    )
                finally:
                    await conn.close()

            assert asyncio.run(lease_rows()) == 0


def test_prompt_with_nul_is_422_and_nothing_is_stored(service: Any, backend_url: str) -> None:
    session_id = f"nul-{uuid.uuid4().hex[:8]}"
    r = service.post("/process", json={"prompt": "a\u0000b", "session_id": session_id})
    assert r.status_code == 422, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{backend_url}/v1/sessions/{session_id}").status_code == 404


def test_bad_cursor_is_422(service: Any) -> None:
    r = service.get("/sessions", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")


def test_agent_service_refuses_a_body_over_its_limit_before_reading_it(service: Any) -> None:
    huge = b'{"prompt": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = service.post("/process", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")


def test_a_first_turn_retried_with_its_idempotency_key_is_answered_from_its_session(service: Any) -> None:
    key = uuid.uuid4().hex
    first = service.post("/process", json={"prompt": "open an account"}, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    again = service.post("/process", json={"prompt": "open an account"}, headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert again.json()["session_id"] == first.json()["session_id"]
    assert again.json()["response"] == first.json()["response"] and again.json()["status"]["replayed"]


def test_a_streamed_body_over_the_limit_is_413_problem(service: Any) -> None:
    def chunks() -> Any:
        yield b'{"prompt": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    r = service.post("/process", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
