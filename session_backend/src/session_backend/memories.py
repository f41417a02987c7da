"""Long-term memories per actor (`/v1/actors/{actor_id}/memories`): bodies, the store over `sql.memories`, routes.

Every statement is scoped by actor_id, so one actor never reads, ranks or deletes another's memories. Search is hybrid
(meaning and words, see `sql.memories`) where the database has pgvector and an embedder is configured, else full text.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from prometheus_client import CollectorRegistry, Counter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .embedder import Embedder, EmbedderError, make_embedder, vector_literal
from .errors import Conflict, NotFound, StoreError, UnknownReference
from .jsonbody import StrictJSONRoute
from .schemas import Identifier, JsonObject, Problem
from .sql import memories as sql
from .validators import json_size, utf8_text

logger = logging.getLogger(__name__)

JSON = "application/json"
MAX_CONTENT_CHARS = 16_384
MAX_METADATA_BYTES = 16_384
MAX_BATCH = 1_000
MAX_QUERY_CHARS = 2_000
MAX_SOURCE_MESSAGES = 1_000
# Bounded search cost, whatever the query: a query of many words is reduced to its MAX_QUERY_TERMS longest distinct
# words (the rarer, content-bearing ones) for full text; at most MAX_RANKED word matches are ranked; each ranking
# contributes its best FUSED_CANDIDATES to the hybrid fusion.
MAX_QUERY_TERMS = 32
MAX_RANKED = 1_000
FUSED_CANDIDATES = 50
# Reciprocal-rank fusion weighs the full-text list against the vector list (1.0): measured by `bench --only
# memory_recall` on LoCoMo (README, Memory recall), not tuned per question.
WORDS_WEIGHT = 1.0

SearchMode = Literal["hybrid", "full_text"]
Match = Literal["hybrid", "meaning", "any", "all"]


def _small(metadata: JsonObject) -> JsonObject:
    if json_size(metadata) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialize to at most {MAX_METADATA_BYTES} bytes of JSON")
    return metadata


class MemorySource(BaseModel):
    """Where a memory was extracted from: an agent of a session, and the ids of the messages it came from."""

    model_config = ConfigDict(extra="forbid")

    session_id: Identifier
    agent_id: Identifier
    message_ids: Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(max_length=MAX_SOURCE_MESSAGES)] = (
        Field(default_factory=list)
    )


class MemoryCreate(BaseModel):
    """A memory to store: text (not blank), optional JSON metadata, optional source (the session it came from)."""

    model_config = ConfigDict(extra="ignore")

    content: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS, pattern=r"\S"), AfterValidator(utf8_text)
    ]
    metadata: Annotated[JsonObject, AfterValidator(_small)] = Field(default_factory=dict)
    source: MemorySource | None = None


class MemoryBatch(BaseModel):
    """Several memories stored in one statement (`add_messages`, extraction batches)."""

    memories: Annotated[list[MemoryCreate], Field(min_length=1, max_length=MAX_BATCH)]


class MemoryPublic(BaseModel):
    """A stored memory."""

    memory_id: uuid.UUID
    content: str
    metadata: JsonObject
    source: MemorySource | None
    created_at: datetime


class MemoryHit(MemoryPublic):
    """A memory in a listing; `score` ranks a search (higher is better, see `search_memories`), null without a query."""

    score: float | None


class MemoryPage(BaseModel):
    """Memories best first (search) or newest first (no query)."""

    items: list[MemoryHit]


class MemoryBatchResult(BaseModel):
    """The stored memories in request order (duplicates resolve to the one stored), and how many are new."""

    items: list[MemoryPublic]
    created: int


class MemoryLimitReached(StoreError):
    """The actor would hold more memories than `SESSION_BACKEND_MAX_MEMORIES_PER_ACTOR`."""

    status = 409


class MemorySearchTimeout(StoreError):
    """A search ran past `SESSION_BACKEND_MEMORY_SEARCH_TIMEOUT_SECONDS` and PostgreSQL cancelled it."""

    status = 503


class EmbedderUnavailable(StoreError):
    """The embedder failed while memories were being stored (nothing was stored)."""

    status = 503


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
    ) -> None:
        """Wrap the pool."""
        self.pool = pool
        self.embedder = embedder if vectors else None
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

    async def add(self, actor_id: str, memories: list[dict[str, Any]]) -> list[tuple[bool, str]]:
        """Store memories of one actor (embedded first, off the event loop); content the actor has is not stored twice.

        Args:
            actor_id: the actor.
            memories: `{content, metadata, source}` dicts.

        Returns:
            Per input, in order: whether it was stored now (False: identical content was already stored, or appears
            earlier in `memories`), and the stored memory as JSON text.

        Raises:
            MemoryLimitReached: the actor would hold more than `max_per_actor` memories (nothing is stored).
            EmbedderUnavailable: the embedder failed (nothing is stored).
            UnknownReference: a source names an agent of a session that does not exist.
        """
        contents = [m["content"] for m in memories]
        args: list[Any] = [actor_id, memories]
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
            stored, new = await conn.fetchrow(sql.COUNT_FOR_CAP, actor_id, contents) or (0, 0)
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
        if not all(r["body"] is not None for r in rows):
            # Only a writer bypassing the actor lock can store the same content after this statement's snapshot.
            raise Conflict(f"memories of actor {actor_id!r} are being written concurrently; retry")
        seen: set[str] = set()
        out: list[tuple[bool, str]] = []
        for r in rows:
            body = str(r["body"])
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
            return [str(r[0]) for r in await self.pool.fetch(sql.LIST_MEMORIES, actor_id, limit)]
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
        return [str(r[0]) for r in rows]

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


async def open_memory_store(pool: asyncpg.Pool, settings: Any, registry: CollectorRegistry) -> ActorMemoryStore:
    """The app's memory store: hybrid when the schema has vectors and the settings name an embedder.

    Args:
        pool: the app's pool, migrated.
        settings: the backend's `Settings`.
        registry: the app's metrics registry (the store's counters join it).

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
    )
    logger.info("mode=<%s>, embedder=<%s> | memory search", store.mode, embedder.name if embedder else None)
    return store


async def get_memory_store(request: Request) -> ActorMemoryStore:
    """The app's memory store (opened in the lifespan)."""
    store: ActorMemoryStore = request.app.state.memory_store
    return store


Store = Annotated[ActorMemoryStore, Depends(get_memory_store)]
ActorId = Annotated[Identifier, Path()]

_errors: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}} for code in (401, 404, 409, 413, 422, 503)
}

router = APIRouter(
    prefix="/v1/actors/{actor_id}/memories", tags=["memories"], responses=_errors, route_class=StrictJSONRoute
)


def _json(text: str, status_code: int = 200) -> Response:
    return Response(content=text, status_code=status_code, media_type=JSON)


@router.post(
    "",
    status_code=201,
    response_model=MemoryPublic,
    responses={200: {"model": MemoryPublic, "description": "the actor already had this exact content"}},
)
async def add_memory(actor_id: ActorId, body: MemoryCreate, store: Store) -> Response:
    """Store a memory; 200 with the stored one when the actor already has identical content (a retry)."""
    [(created, text)] = await store.add(actor_id, [body.model_dump()])
    return _json(text, 201 if created else 200)


@router.post("/batch", response_model=MemoryBatchResult)
async def add_memories(actor_id: ActorId, body: MemoryBatch, store: Store) -> Response:
    """Store up to 1,000 memories in one statement; identical content is stored once."""
    results = await store.add(actor_id, [m.model_dump() for m in body.memories])
    created = sum(1 for c, _ in results if c)
    return _json(f'{{"items":[{",".join(t for _, t in results)}],"created":{created}}}')


@router.get("", response_model=MemoryPage)
async def search_memories(
    actor_id: ActorId,
    store: Store,
    query: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    match: Annotated[Match, Query()] = "hybrid",
) -> Response:
    """Search an actor's memories, best first; without `query`, newest first (`score` null).

    `match=hybrid` (default): by meaning and by words, fused by reciprocal rank (score: the fused rank score, in
    (0, 0.04)); on a server without pgvector (see `/ready`), full text with any term. `match=meaning`: by meaning
    only (score: cosine similarity). `match=any` / `match=all`: plain full text, `query` in web-search syntax
    (`"a phrase"`, `or`, `-word`), memories sharing any / every term (score: `ts_rank_cd` in (0, 1)).
    """
    items = await store.search(actor_id, query, limit=limit, match=match)
    return _json(f'{{"items":[{",".join(items)}]}}')


@router.delete("", status_code=204)
async def delete_memories(actor_id: ActorId, store: Store) -> Response:
    """Delete every memory of the actor."""
    await store.delete_all(actor_id)
    return Response(status_code=204)


@router.delete("/{memory_id}", status_code=204)
async def delete_memory(actor_id: ActorId, memory_id: uuid.UUID, store: Store) -> Response:
    """Delete one memory of the actor (404 when the actor has none with this id)."""
    await store.delete(actor_id, memory_id)
    return Response(status_code=204)
