"""Memory extraction exactly once across agent-process restarts (real backend and agent processes, scripted model).

An agent process is killed (SIGKILL) after its turn's commit, while the turn's extraction is stalled in PostgreSQL
(`actor_memories` locked by the test: the memories' statement waits on the lock, seen in `pg_stat_activity`, no
timing). A new process finishes the turn's extraction on the replay of its Idempotency-Key, or on the session's next
turn: every fact of the turn is stored, once.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from session_backend.testing import memories_stalled

pytestmark = pytest.mark.integration

SCRIPTED = {"MODEL_PROVIDER": "scripted", "SESSION_WAIT_SECONDS": "60"}
PROMPT = "I live in Lisbon. I have two cats named Tea and Toast. My favourite colour is green. What should I cook?"
FACTS = ["I have two cats named Tea and Toast", "I live in Lisbon", "My favourite colour is green"]
# The statement of a memory write that reads the table first (the per-actor cap), so it is the one that waits.
EXTRACTION_STATEMENT = "%count(DISTINCT md5(c))%"


def sql(database_url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(statement, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll `condition` until it holds (a generous bound for a loaded machine: a failure, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def stalled_extraction_pids(database_url: str) -> list[int]:
    rows = sql(
        database_url,
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE $1",
        EXTRACTION_STATEMENT,
    )
    return [int(r["pid"]) for r in rows]


def turns(database_url: str, session_id: str) -> list[asyncpg.Record]:
    return sql(
        database_url,
        "SELECT turn_id, idempotency_key, extraction, extracted_at FROM session_turns WHERE session_id = $1"
        " AND status = 'committed' ORDER BY created_at",
        session_id,
    )


def memories(database_url: str, actor: str) -> list[str]:
    rows = sql(database_url, "SELECT content FROM actor_memories WHERE actor_id = $1", actor)
    return sorted(str(r["content"]) for r in rows)


def agent_on(backend_url: str, port: int) -> tuple[str, dict[str, str]]:
    """URL and environment of a scripted agent service on `port`, against `backend_url` (restarted with the same)."""
    return f"http://127.0.0.1:{port}", SCRIPTED | {"SESSION_BACKEND_URL": backend_url, "PORT": str(port)}


def kill_mid_extraction(
    url: str, database_url: str, body: dict[str, Any], headers: dict[str, str], proc: Any, *, land: bool
) -> None:
    """Send the turn to the agent process `proc`; SIGKILL it once the turn is committed and its memories' write waits
    in PostgreSQL. `land`: let that write go on after the kill (else it is cancelled, as if never sent)."""
    session_id = body["session_id"]
    answered: list[int] = []

    def send() -> None:
        try:
            answered.append(httpx.post(f"{url}/process", json=body, headers=headers, timeout=300).status_code)
        except httpx.HTTPError:
            answered.append(0)  # the process died under the request

    with memories_stalled(database_url):
        client = threading.Thread(target=send)
        client.start()
        wait_for(lambda: len(turns(database_url, session_id)) == 1, "the turn committed")
        wait_for(lambda: bool(stalled_extraction_pids(database_url)), "the turn's memories waiting in PostgreSQL")
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        client.join()
        if not land:
            for pid in stalled_extraction_pids(database_url):
                sql(database_url, "SELECT pg_cancel_backend($1)", pid)
            wait_for(lambda: not stalled_extraction_pids(database_url), "the memories' write cancelled")
    assert answered == [0]  # no answer: the process died after the commit, before extraction finished


def test_a_replay_after_a_kill_mid_extraction_stores_every_fact_once(
    backend_url: str, database_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    actor, session_id, key = f"user-x-{uuid.uuid4().hex[:6]}", f"x-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    body = {"prompt": PROMPT, "session_id": session_id, "actor_id": actor}
    url, env = agent_on(backend_url, port_factory())
    with service_runner("test-session-agent", env, url, log=tmp_path / "a.log") as proc:
        kill_mid_extraction(url, database_url, body, {"Idempotency-Key": key}, proc, land=False)
    [turn] = turns(database_url, session_id)
    assert turn["extraction"] is not None and turn["extracted_at"] is None  # committed, extraction pending
    assert memories(database_url, actor) == []  # lost, were the progress kept in the dead process

    with service_runner("test-session-agent", env, url, log=tmp_path / "b.log"):
        r = httpx.post(f"{url}/process", json=body, headers={"Idempotency-Key": key}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["status"]["replayed"] is True
        assert memories(database_url, actor) == FACTS
        [turn] = turns(database_url, session_id)
        assert turn["extracted_at"] is not None
        # once done, a replay stores nothing again
        r = httpx.post(f"{url}/process", json=body, headers={"Idempotency-Key": key}, timeout=120)
        assert r.status_code == 200 and r.json()["status"]["replayed"] is True
    assert memories(database_url, actor) == FACTS
    stored = sql(database_url, "SELECT source_message_ids FROM actor_memories WHERE actor_id = $1", actor)
    assert {tuple(r["source_message_ids"]) for r in stored} == {(0, 1)}  # the turn's prompt and answer


def test_the_next_turn_after_a_kill_mid_extraction_finishes_it(
    backend_url: str, database_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    actor, session_id = f"user-y-{uuid.uuid4().hex[:6]}", f"y-{uuid.uuid4().hex[:8]}"
    body = {"prompt": PROMPT, "session_id": session_id, "actor_id": actor}
    url, env = agent_on(backend_url, port_factory())
    with service_runner("test-session-agent", env, url, log=tmp_path / "a.log") as proc:
        kill_mid_extraction(url, database_url, body, {}, proc, land=False)
    assert memories(database_url, actor) == []

    with service_runner("test-session-agent", env, url, log=tmp_path / "b.log"):
        nxt = {"prompt": "I play the cello. Any tips?", "session_id": session_id, "actor_id": actor}
        r = httpx.post(f"{url}/process", json=nxt, timeout=120)
        assert r.status_code == 200, r.text
    assert memories(database_url, actor) == sorted([*FACTS, "I play the cello"])
    assert [t["extracted_at"] is not None for t in turns(database_url, session_id)] == [True, True]


def test_a_write_that_lands_after_the_kill_is_not_stored_again(
    backend_url: str, database_url: str, service_runner: Any, port_factory: Any, tmp_path: Path
) -> None:
    """The dead process's write lands (memories and progress in one transaction): the replay finds nothing pending;
    progress lost after the memories landed (as with a store that wrote them apart) stores nothing twice either."""
    actor, session_id, key = f"user-z-{uuid.uuid4().hex[:6]}", f"z-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    body = {"prompt": PROMPT, "session_id": session_id, "actor_id": actor}
    url, env = agent_on(backend_url, port_factory())
    with service_runner("test-session-agent", env, url, log=tmp_path / "a.log") as proc:
        kill_mid_extraction(url, database_url, body, {"Idempotency-Key": key}, proc, land=True)
    wait_for(lambda: memories(database_url, actor) == FACTS, "the dead process's write landed")
    [turn] = turns(database_url, session_id)
    assert turn["extracted_at"] is not None  # stored with its progress
    # the progress lost, the memories kept: what a crash between two separate writes would leave
    sql(database_url, "UPDATE session_turns SET extracted_at = NULL WHERE session_id = $1", session_id)

    with service_runner("test-session-agent", env, url, log=tmp_path / "b.log"):
        r = httpx.post(f"{url}/process", json=body, headers={"Idempotency-Key": key}, timeout=120)
        assert r.status_code == 200 and r.json()["status"]["replayed"] is True
    assert memories(database_url, actor) == FACTS
    assert turns(database_url, session_id)[0]["extracted_at"] is not None
