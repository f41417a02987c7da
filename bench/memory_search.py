"""Memory search: p50 of `GET /v1/actors/{actor_id}/memories?query=` (full text, ranked).

Over 100,000 memories of one actor, and over 1,000 actors of 100 memories each (one table of 200,000 rows), against
Strands' `TestMemoryStore` (JSON file, token overlap) holding the same memories of the actor searched.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from strands.vended_memory_stores.test_memory_store import TestMemoryStore

from session_backend.db.migrations import apply_migrations

from .common import backend, percentile, scratch_database

VOCABULARY = 5_000  # distinct words; each memory holds 8, so a word is in ~0.16% of an actor's memories
ONE_ACTOR = "bench-one"

# Server-side seeding: memory g is numbered (no two are equal) and its word k is "w<n>", n a hash of (g, k) modulo
# the vocabulary, so words spread evenly.
SEED_ONE_ACTOR = """
INSERT INTO actor_memories (actor_id, content, created_at)
SELECT $1::text, 'Note ' || g || ': the user said ' || (
           SELECT string_agg('w' || ((g * 7919 + k * 104729 + g * k * 31) % $3::int), ' ')
           FROM generate_series(1, 8) k),
       now() - make_interval(secs => $2::int - g)
FROM generate_series(1, $2::int) g
"""

# $1 actors, $2 memories per actor, $3 vocabulary; memory g belongs to actor g % $1.
SEED_MANY_ACTORS = """
INSERT INTO actor_memories (actor_id, content, created_at)
SELECT 'bench-' || (g % $1::int), 'Note ' || g || ': the user said ' || (
           SELECT string_agg('w' || ((g * 7919 + k * 104729 + g * k * 31) % $3::int), ' ')
           FROM generate_series(1, 8) k),
       now() - make_interval(secs => $1::int * $2::int - g)
FROM generate_series(1, $1::int * $2::int) g
"""

SELECT_CONTENTS = "SELECT content, created_at FROM actor_memories WHERE actor_id = $1 ORDER BY created_at"


def _seed(database_url: str, memories: int, actors: int, per_actor: int) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await apply_migrations(conn)
            await conn.execute(SEED_ONE_ACTOR, ONE_ACTOR, memories, VOCABULARY)
            await conn.execute(SEED_MANY_ACTORS, actors, per_actor, VOCABULARY)
            await conn.execute("VACUUM ANALYZE actor_memories")
        finally:
            await conn.close()

    asyncio.run(run())


def _file_store(database_url: str, actor_id: str, directory: Path) -> TestMemoryStore:
    """A `TestMemoryStore` whose file holds the actor's memories, written in its documented record format."""

    async def rows() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch(SELECT_CONTENTS, actor_id))
        finally:
            await conn.close()

    records = [
        {
            "id": str(i),
            "content": r["content"],
            "createdAt": r["created_at"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        for i, r in enumerate(asyncio.run(rows()))
    ]
    path = directory / f"{actor_id}.json"
    path.write_text(json.dumps(records))
    return TestMemoryStore(name=actor_id, path=str(path))


def _question(rng: random.Random) -> str:
    # What MemoryManager's injection sends: the user's whole message (stop words are dropped by the parser).
    words = " ".join(f"w{rng.randrange(VOCABULARY)}" for _ in range(3))
    return f"What did I say about {words}?"


def _http_p50(client: httpx.Client, actor_ids: list[str], samples: int, match: str, rng: random.Random) -> float:
    times: list[float] = []
    for i in range(samples + 10):
        actor_id = actor_ids[i % len(actor_ids)]
        params: dict[str, str | int] = {"query": _question(rng), "limit": 5, "match": match}
        started = time.perf_counter()
        r = client.get(f"/v1/actors/{actor_id}/memories", params=params)
        elapsed = (time.perf_counter() - started) * 1000
        r.raise_for_status()
        if i >= 10:  # warm-up
            times.append(elapsed)
    return percentile(times, 0.5)


def _file_p50(store: TestMemoryStore, samples: int, rng: random.Random) -> float:
    times: list[float] = []
    for _ in range(samples):
        query = _question(rng)
        started = time.perf_counter()
        asyncio.run(store.search(query, {"max_search_results": 5}))
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 0.5)


def run(
    memories: int = 100_000, actors: int = 1_000, per_actor: int = 100, samples: int = 200, file_samples: int = 5
) -> dict[str, Any]:
    """Search p50 (ms) per layout, over HTTP from a backend process, and the `TestMemoryStore` baseline."""
    rng = random.Random(11)
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        _seed(database_url, memories, actors, per_actor)
        seed_s = time.perf_counter() - started
        many = [f"bench-{rng.randrange(actors)}" for _ in range(50)]
        with backend(database_url) as url, httpx.Client(base_url=url) as client:
            one_any = _http_p50(client, [ONE_ACTOR], samples, "any", rng)
            one_all = _http_p50(client, [ONE_ACTOR], samples, "all", rng)
            many_any = _http_p50(client, many, samples, "any", rng)
        file_one = _file_p50(_file_store(database_url, ONE_ACTOR, Path(tmp)), file_samples, rng)
        file_many = _file_p50(_file_store(database_url, many[0], Path(tmp)), samples // 4, rng)
    return {
        "memories": memories,
        "actors": actors,
        "per_actor": per_actor,
        "seed_s": seed_s,
        "one_actor_any_p50_ms": one_any,
        "one_actor_all_p50_ms": one_all,
        "many_actors_any_p50_ms": many_any,
        "file_one_actor_p50_ms": file_one,
        "file_many_actors_p50_ms": file_many,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
