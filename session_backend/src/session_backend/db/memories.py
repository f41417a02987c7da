"""The store of long-term memories per actor, over `sql.memories`: embedding, the per-actor cap, bounded search.

Every statement is scoped by actor_id, so one actor never reads, ranks or deletes another's memories. Search is hybrid
(meaning and words, see `sql.memories`) where the database has pgvector and an embedder is configured, else full text.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Literal

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from ..embedder import Embedder, EmbedderError, make_embedder, vector_literal
from ..sql import memories as sql
from ..sql import turns as turns_sql
from . import sealing
from .encryption import Codec
from .errors import Conflict, EmbedderUnavailable, MemoryLimitReached, MemorySearchTimeout, NotFound, UnknownReference

logger = logging.getLogger(__name__)

# Bounded search cost, whatever the query: a query of many words is reduced to its MAX_QUERY_TERMS longest distinct
# words (the rarer, content-bearing ones) for full text; a word's rarity counts at most MAX_RANKED memories holding it
# (and the actor's memories up to 10 x MAX_RANKED); at most MAX_RANKED word matches are ranked; each ranking
# contributes its best FUSED_CANDIDATES to the hybrid score.
MAX_QUERY_TERMS = 32
MAX_RANKED = 1_000
FUSED_CANDIDATES = 50
# Hybrid score: cosine similarity + WORDS_WEIGHT x the share of the query's word weight (idf) a memory holds. Chosen on
# LoCoMo conversations 26 and 30 (233 questions, R@5; `bench --only memory_recall`, see the README for the others):
# 0.05 0.644, 0.1 0.644, 0.2 0.648, 0.3 0.648; reciprocal-rank fusion of the same two lists at best 0.648 (k 5).
WORDS_WEIGHT = 0.2

SearchMode = Literal["hybrid", "full_text"]
Match = Literal["hybrid", "meaning", "any", "all"]


class MemoryMetrics:
    """Counters of bounded memory cost, registered in the app's metrics registry.

    Args:
        registry: the registry `/metrics` serves.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create the counters."""
        self.refused = Counter(
            "session_backend_memories_refused",
            "Memories refused because their actor holds SESSION_BACKEND_MAX_MEMORIES_PER_ACTOR.",
            registry=registry,
        )
        self.search_timeouts = Counter(
            "session_backend_memory_search_timeouts",
            "Memory searches cancelled in PostgreSQL at SESSION_BACKEND_MEMORY_SEARCH_TIMEOUT_SECONDS.",
            registry=registry,
        )
        self.embedder_failures = Counter(
            "session_backend_memory_embedder_failures",
            "Embedder failures, by operation (a search falls back to full text; an add is refused with 503).",
            ["operation"],
            registry=registry,
        )


_WORD = re.compile(r"\w+")


def reduce_query(query: str, max_terms: int = MAX_QUERY_TERMS) -> str:
    """A long natural-language query reduced to its terms, so its full-text cost is bounded.

    Args:
        query: the query as sent.
        max_terms: most distinct words kept.

    Returns:
        `query` unchanged when it has at most `max_terms` distinct words; else its `max_terms` longest distinct words
        (longer words are rarer and carry the content), in their original order, separated by spaces.
    """
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    if len(words) <= max_terms:
        return query
    keep = set(sorted(words, key=len, reverse=True)[:max_terms])
    return " ".join(w for w in words if w in keep)


class ActorMemoryStore:
    """Reads and writes of `actor_memories`.

    Args:
        pool: the app's asyncpg pool (jsonb codec installed).
        embedder: embeds memories and queries; None searches full text only.
        vectors: the database has the `embedding` column (pgvector); without it search is full text.
        max_per_actor: most memories one actor holds.
        search_timeout: seconds a search may run in PostgreSQL before it is cancelled there.
        metrics: counters of refusals and timeouts (a private set when None).
        codec: seals content (encryption at rest) and says what search may index of it (None: encryption off).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        embedder: Embedder | None = None,
        vectors: bool = False,
        max_per_actor: int = 10_000,
        search_timeout: float = 2.0,
        metrics: MemoryMetrics | None = None,
        codec: Codec | None = None,
    ) -> None:
        """Wrap the pool."""
        self.pool = pool
        self.codec = codec or Codec(pool)
        self.embedder = embedder if vectors and self.codec.embeds else None
        self.max_per_actor = max_per_actor
        self.metrics = metrics or MemoryMetrics()
        # SET LOCAL for every search: PostgreSQL cancels it at the timeout; each actor's plan is chosen with its own
        # row count (a prepared statement's generic plan would treat the 100,000-memory actor like a 100-memory one);
        # the HNSW scan keeps going past ef_search until the actor's nearest are found (pgvector >= 0.8).
        settings = [f"SET LOCAL statement_timeout = {max(1, round(search_timeout * 1000))}"]
        if self.embedder is not None:
            settings += [
                "SET LOCAL plan_cache_mode = force_custom_plan",
                f"SET LOCAL hnsw.ef_search = {2 * FUSED_CANDIDATES}",
                "SET LOCAL hnsw.iterative_scan = relaxed_order",
            ]
        self._search_settings = "; ".join(settings)

    @property
    def mode(self) -> SearchMode:
        """`hybrid` (meaning and words) or `full_text` (no pgvector on the server, or no embedder)."""
        return "hybrid" if self.embedder is not None else "full_text"

    async def add(
        self, actor_id: str, memories: list[dict[str, Any]], *, turn: tuple[str, str] | None = None
    ) -> list[tuple[bool, str]]:
        """Store memories of one actor (embedded first, off the event loop); content the actor has is not stored twice.

        Args:
            actor_id: the actor.
            memories: `{content, metadata, source}` dicts (none: only `turn` is marked).
            turn: `(session_id, turn_id)` of the committed turn these memories were extracted from: stored only while
                that turn's extraction is pending for `actor_id`, and it is marked done in the same transaction. A turn
                already extracted (by a concurrent replay; its memories may have been forgotten since) or gone (its
                session deleted) stores nothing.

        Returns:
            Per input, in order: whether it was stored now (False: identical content was already stored, or appears
            earlier in `memories`), and the stored memory as JSON text; empty when `turn` is no longer pending.

        Raises:
            MemoryLimitReached: the actor would hold more than `max_per_actor` memories (nothing is stored).
            EmbedderUnavailable: the embedder failed (nothing is stored).
            UnknownReference: a source names an agent of a session that does not exist.
        """
        if not memories:
            if turn is not None:
                await self.pool.execute(turns_sql.MARK_EXTRACTED, *turn)
            return []
        contents = [m["content"] for m in memories]
        args: list[Any] = [actor_id, None]
        statement = sql.INSERT_MEMORIES
        if self.embedder is not None:
            try:
                vectors = await self.embedder.embed(contents, query=False)
            except EmbedderError as e:
                self.metrics.embedder_failures.labels(operation="add").inc()
                logger.warning("actor_id=<%s>, error=<%s> | embedder failed; memories not stored", actor_id, e)
                raise EmbedderUnavailable("the embedder is unavailable; retry shortly") from e
            args.append([vector_literal(v) for v in vectors])
            statement = sql.INSERT_MEMORIES_WITH_VECTORS
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.LOCK_ACTOR, actor_id)
            if turn is not None and await conn.fetchval(turns_sql.LOCK_PENDING_EXTRACTION, *turn, actor_id) is None:
                logger.debug("session_id=<%s>, turn_id=<%s> | turn not pending; memories not stored", *turn)
                return []
            sealer = await self.codec.for_actor(conn, actor_id)
            sealed = [sealer.content(c) for c in contents]  # deterministic: equal contents stay equal (dedup)
            args[1] = [
                m | {"content": c, "search_text": self.codec.index_text(m["content"])}
                for m, c in zip(memories, sealed, strict=True)
            ]
            stored, new = await conn.fetchrow(sql.COUNT_FOR_CAP, actor_id, sealed) or (0, 0)
            if stored + new > self.max_per_actor:
                self.metrics.refused.inc(new)
                raise MemoryLimitReached(
                    f"actor {actor_id!r} holds {stored} memories; {new} more would pass the limit "
                    f"of {self.max_per_actor}: delete some first"
                )
            try:
                rows = await conn.fetch(statement, *args)
            except asyncpg.ForeignKeyViolationError as e:
                raise UnknownReference("a memory's source names an agent of a session that does not exist") from e
            if turn is not None:
                await conn.execute(turns_sql.MARK_EXTRACTED, *turn)
        if not all(r["body"] is not None for r in rows):
            # Only a writer bypassing the actor lock can store the same content after this statement's snapshot.
            raise Conflict(f"memories of actor {actor_id!r} are being written concurrently; retry")
        seen: set[str] = set()
        out: list[tuple[bool, str]] = []
        for r in rows:
            body = await self.codec.open_text(str(r["body"]), sealing.MEMORY)
            out.append((bool(r["created"]) and body not in seen, body))
            seen.add(body)
        logger.debug("actor_id=<%s>, count=<%d> | stored memories", actor_id, sum(c for c, _ in out))
        return out

    async def _query_vector(self, actor_id: str, query: str) -> str | None:
        if self.embedder is None:
            return None
        try:
            [vector] = await self.embedder.embed([query], query=True)
        except EmbedderError as e:
            self.metrics.embedder_failures.labels(operation="search").inc()
            logger.warning("actor_id=<%s>, error=<%s> | embedder failed; searching full text", actor_id, e)
            return None
        return vector_literal(vector)

    async def search(self, actor_id: str, query: str | None, *, limit: int, match: Match = "hybrid") -> list[str]:
        """Memories of one actor as JSON texts: ranked by relevance to `query`, or newest first without one.

        Args:
            actor_id: the actor.
            query: the question or terms; None or blank lists newest first.
            limit: most memories returned.
            match: `hybrid` (meaning and words fused; full text, any term, without vectors), `meaning` (vectors
                only; full text without them), `any` (full text, any term of web-search syntax, ranked), `all`
                (full text, every term).

        Returns:
            The memories as JSON texts, best first.

        Raises:
            MemorySearchTimeout: PostgreSQL cancelled the search at the timeout.
        """
        if query is None or not query.strip():
            rows = await self.pool.fetch(sql.LIST_MEMORIES, actor_id, limit)
            return [await self.codec.open_text(str(r[0]), sealing.MEMORY) for r in rows]
        vector = await self._query_vector(actor_id, query) if match in ("hybrid", "meaning") else None
        terms = query if match == "all" else reduce_query(query)
        if vector is not None and match == "meaning":
            statement, args = sql.SEARCH_MEMORIES_BY_VECTOR, [actor_id, vector, limit]
        elif vector is not None:
            statement = sql.SEARCH_MEMORIES_HYBRID
            args = [actor_id, terms, True, limit, MAX_RANKED, FUSED_CANDIDATES, vector, WORDS_WEIGHT]
        else:
            statement, args = sql.SEARCH_MEMORIES, [actor_id, terms, match != "all", limit, MAX_RANKED]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(self._search_settings)
                rows = await conn.fetch(statement, *args)
        except asyncpg.QueryCanceledError as e:
            self.metrics.search_timeouts.inc()
            logger.warning(
                "actor_id=<%s>, query_chars=<%d> | memory search cancelled at the timeout", actor_id, len(query)
            )
            raise MemorySearchTimeout("the memory search took too long and was cancelled; narrow the query") from e
        return [await self.codec.open_text(str(r[0]), sealing.MEMORY) for r in rows]

    async def backfill(self, batch_size: int = 64) -> int:
        """Embed the memories stored without a vector (before pgvector or the embedder came), a batch at a time.

        Args:
            batch_size: memories embedded and written per round.

        Returns:
            How many memories this call embedded (0 without an embedder). Stops at the first embedder or database
            error (logged): the next start-up goes on where it stopped.
        """
        if self.embedder is None:
            return 0
        done = 0
        try:
            while rows := await self.pool.fetch(sql.SELECT_UNEMBEDDED, batch_size):
                texts = [await self.codec.open_content(r["content"]) for r in rows]
                vectors = await self.embedder.embed(texts, query=False)
                await self.pool.execute(
                    sql.SET_EMBEDDINGS,
                    [r["actor_id"] for r in rows],
                    [r["memory_id"] for r in rows],
                    [vector_literal(v) for v in vectors],
                )
                done += len(rows)
        except (EmbedderError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            logger.warning("embedded=<%d>, error=<%r> | memory embedding backfill stopped", done, e)
        if done:
            logger.info("embedded=<%d> | memories stored without a vector are embedded", done)
        return done

    async def delete(self, actor_id: str, memory_id: uuid.UUID) -> None:
        """Delete one memory of an actor.

        Raises:
            NotFound: the actor has no memory with this id (another actor's memory included).
        """
        if await self.pool.fetchval(sql.DELETE_MEMORY, actor_id, memory_id) is None:
            raise NotFound(f"memory {memory_id} of actor {actor_id!r} not found")
        logger.debug("actor_id=<%s>, memory_id=<%s> | deleted memory", actor_id, memory_id)

    async def delete_all(self, actor_id: str) -> None:
        """Delete every memory of an actor (none is not an error)."""
        status = await self.pool.execute(sql.DELETE_ACTOR_MEMORIES, actor_id)
        logger.debug("actor_id=<%s>, status=<%s> | deleted memories of actor", actor_id, status)


async def open_memory_store(
    pool: asyncpg.Pool, settings: Any, registry: CollectorRegistry, codec: Codec | None = None
) -> ActorMemoryStore:
    """The app's memory store: hybrid when the schema has vectors and the settings name an embedder.

    Args:
        pool: the app's pool, migrated.
        settings: the backend's `Settings`.
        registry: the app's metrics registry (the store's counters join it).
        codec: the app's encryption codec (None: encryption off).

    Returns:
        The store; `store.mode` is what `/ready` reports. Close its embedder with `store.embedder.aclose()`.
    """
    vectors = bool(await pool.fetchval(sql.HAS_VECTORS))
    embedder = make_embedder(settings) if vectors else None
    store = ActorMemoryStore(
        pool,
        embedder=embedder,
        vectors=vectors,
        max_per_actor=settings.max_memories_per_actor,
        search_timeout=settings.memory_search_timeout_seconds,
        metrics=MemoryMetrics(registry),
        codec=codec,
    )
    logger.info("mode=<%s>, embedder=<%s> | memory search", store.mode, embedder.name if embedder else None)
    return store
