"""Long-term memory per actor for Strands' `MemoryManager`.

`PostgreSQLMemoryStore` over the backend's `/v1/actors/{actor_id}/memories`; the text rules (`FirstPersonExtractor`, a
deterministic fact extractor; `query_terms`) are in `memory_text.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal, cast

import httpx
import orjson
from strands import tool
from strands.memory import (
    AddMessagesContext,
    ExtractionConfig,
    MemoryEntry,
    MemoryStore,
    SearchOptions,
)
from strands.types.content import Message
from strands.types.tools import AgentTool

from ._http import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, BackendClientOwner, segment
from .memory_text import MAX_CONTENT_CHARS, query_terms

logger = logging.getLogger(__name__)

DEFAULT_MAX_SEARCH_RESULTS = 10
MAX_SEARCH_RESULTS = 100  # the backend's page limit
BATCH_SIZE = 1_000  # the backend's batch limit

Match = Literal["hybrid", "meaning", "any", "all"]


class PostgreSQLMemoryStore(BackendClientOwner, MemoryStore):
    """Memories of one actor in PostgreSQL, through the session backend; plug it into Strands' `MemoryManager`.

    Search uses the backend's default ranking (`match=None`): hybrid, by meaning and by words fused, where the
    backend has pgvector; else full text, any term, ranked. A whole question (what `MemoryManager`'s injection sends:
    the user's latest message) thus finds the memories it is about; a prompt too long for a query is reduced to its
    terms (`query_terms`). A search is never retried once it may have reached the backend (a timed-out search is not
    sent again), and `search_timeout` bounds its wait. `add` is idempotent (identical content of an actor is stored
    once), so extraction's at-least-once writes never pile up copies.

    Strands' synchronous `Agent` runs each invocation on a fresh event loop and an `httpx.AsyncClient`'s pooled
    connections belong to the loop that opened them; so the store keeps one loop-independent keep-alive
    `httpx.Client` and runs each request on a worker thread.

    Example:
        ```python
        store = PostgreSQLMemoryStore(
            "user-42",
            base_url="http://localhost:8001",
            extraction=ExtractionConfig(trigger=InvocationTrigger(), extractor=FirstPersonExtractor()),
        )
        agent = Agent(model=model, memory_manager=MemoryManager(stores=[store]))
        ```
    """

    def __init__(
        self,
        actor_id: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        name: str = "postgresql",
        description: str | None = "Long-term memories of this user from earlier conversations.",
        max_search_results: int | None = None,
        writable: bool = True,
        extraction: ExtractionConfig | bool | None = None,
        match: Match | None = None,
        message_roles: Sequence[str] = ("user",),
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        search_timeout: float | None = None,
        forget_tool: bool = False,
        client: httpx.Client | None = None,
        retries: int = 3,
    ) -> None:
        """Create the store (no request is sent until `initialize` or the first call).

        Args:
            actor_id: whose memories these are; every call is scoped to this actor.
            base_url: URL of the session backend (`SESSION_BACKEND_URL`).
            api_key: bearer token (`SESSION_BACKEND_API_KEY`); None sends none.
            name: the store's name in `MemoryManager` (unique per manager, not blank).
            description: shown to the model in the memory tools' descriptions.
            max_search_results: default results per search (at most 100); None: 10.
            writable: whether `add` / `add_messages` are allowed.
            extraction: Strands' automatic extraction for this store (see `ExtractionConfig`); with an extractor
                facts are written through `add`, without one raw messages through `add_messages`.
            match: the ranking: None (the backend's default: hybrid where it can), `"hybrid"`, `"meaning"`, or plain
                full text: `"any"` (a memory sharing any query term matches) or `"all"` (every term must; web-search
                syntax).
            message_roles: the roles whose text `add_messages` stores; the assistant's replies are left out by
                default because they repeat injected memories back.
            timeout: per-request timeout in seconds, or an `httpx.Timeout`.
            search_timeout: a search's own timeout in seconds (each phase: connect, wait for the answer); None:
                `timeout`.
            forget_tool: give the agent a `forget_memory` tool (`get_tools`): it deletes the memories that contain
                every word the model passes (opt-in: a model can then delete the actor's memories).
            client: an `httpx.Client` to use instead of creating one (not closed by `close()`).
            retries: attempts per call when the backend is unreachable or answers 502/503/504.

        Raises:
            ValueError: `name` is blank, or `max_search_results` is not between 1 and 100.
        """
        # Errors are worded as Strands' reference store (`TestMemoryStore`) words them.
        if not name.strip():
            raise ValueError("PostgreSQLMemoryStore: name must not be empty")
        if max_search_results is not None:
            _check_max_search_results(max_search_results)
        self.actor_id = actor_id
        self.name = name
        self.description = description
        self.max_search_results = max_search_results
        self.writable = writable
        self.extraction = extraction
        self.match = match
        self.search_timeout = search_timeout
        self.forget_tool = forget_tool
        self.message_roles = frozenset(message_roles)
        self._adopt_client(client, base_url, api_key, timeout, retries)
        self._path = f"/v1/actors/{segment(actor_id)}/memories"

    # transport

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        missing_ok: bool = False,
        idempotent: bool = True,
        request_timeout: float | None = None,
    ) -> httpx.Response | None:
        # Every memory write is idempotent (an add of stored content returns the stored memory), so writes retry.
        return await asyncio.to_thread(
            self._request,
            method,
            path,
            body=body,
            params=params,
            missing_ok=missing_ok,
            idempotent=idempotent,
            timeout=request_timeout,
        )

    def _require_writable(self) -> None:
        if not self.writable:
            raise ValueError(f"PostgreSQLMemoryStore {self.name!r}: store is not writable")

    # MemoryStore

    async def initialize(self) -> None:
        """Check that the backend answers for this actor before the agent runs (a bad actor_id fails here).

        Raises:
            BackendUnavailableError: the backend is unreachable or failing.
            BackendRequestError: the backend refused the actor_id (422) or the API key (401).
        """
        await self._call("GET", self._path, params={"limit": 1})
        logger.debug("actor_id=<%s> | memory store ready", self.actor_id)

    async def search(self, query: str, options: SearchOptions | None = None) -> list[MemoryEntry]:
        """Memories of the actor best matching `query`, best first.

        Args:
            query: natural language (a prompt over 2,000 characters is reduced to its terms), or web-search syntax
                (`"a phrase"`, `or`, `-word`) with `match="any"` or `"all"`.
            options: `max_search_results` (at most 100; default: the store's, else 10).

        Returns:
            The matches; each entry's metadata is the stored metadata plus `memory_id`, `score` (higher is better;
            its scale depends on the ranking), `created_at` and `memory_source` (see `add`'s `source`, or None).
            In full text, a query without searchable words (only stop words) matches nothing.

        Raises:
            ValueError: `max_search_results` is less than 1.
            BackendUnavailableError: the backend is unreachable, failing or timed out (a search that may have
                reached the backend is not sent again: a slow search would only pile up in PostgreSQL).
        """
        requested = options.get("max_search_results") if options else None
        if requested is not None and requested < 1:
            _check_max_search_results(requested)
        limit = requested or self.max_search_results or DEFAULT_MAX_SEARCH_RESULTS
        if not query.strip():
            return []
        return await self._search(query, min(limit, MAX_SEARCH_RESULTS), self.match)

    async def _search(self, query: str, limit: int, match: Match | None) -> list[MemoryEntry]:
        params: dict[str, Any] = {"query": query_terms(query), "limit": limit}
        if match is not None:
            params["match"] = match
        response = await self._call(
            "GET", self._path, params=params, idempotent=False, request_timeout=self.search_timeout
        )
        assert response is not None
        items = orjson.loads(response.content)["items"]
        logger.debug("actor_id=<%s>, hits=<%d> | searched memories", self.actor_id, len(items))
        return [_entry(item) for item in items]

    async def add(
        self, content: str, metadata: dict[str, Any] | None = None, *, source: dict[str, Any] | None = None
    ) -> str:
        """Store one memory of the actor; identical content already stored is not stored again.

        Args:
            content: the text to remember (not blank; at most 16,384 characters).
            metadata: JSON metadata kept with it (at most 16 KiB).
            source: where it was extracted from, `{session_id, agent_id, message_ids}` (an agent of a session that
                exists): redacting one of those messages, or deleting the session with `forget_memories`, deletes it.

        Returns:
            The memory_id (of the stored copy when the content was already there).

        Raises:
            ValueError: the store is not writable, or `content` is blank.
            BackendRequestError: the backend refused the memory (422: too long, metadata too large; 413).
            BackendUnavailableError: the backend is unreachable or failing.
        """
        return str((await self._post(content, metadata, source))["memory_id"])

    async def add_entry(
        self, content: str, metadata: dict[str, Any] | None = None, *, source: dict[str, Any] | None = None
    ) -> MemoryEntry:
        """`add`, answering with the stored memory (metadata plus `memory_id` and `created_at`, as `search`)."""
        return _entry(await self._post(content, metadata, source))

    async def _post(
        self, content: str, metadata: dict[str, Any] | None, source: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self._require_writable()
        if not content.strip():
            raise ValueError("PostgreSQLMemoryStore: content must not be empty")
        body: dict[str, Any] = {"content": content, "metadata": metadata or {}}
        if source is not None:
            body["source"] = source
        response = await self._call("POST", self._path, body=body)
        assert response is not None
        item: dict[str, Any] = orjson.loads(response.content)
        logger.debug("actor_id=<%s>, memory_id=<%s> | added memory", self.actor_id, item["memory_id"])
        return item

    async def add_messages(self, messages: list[Message], context: AddMessagesContext | None = None) -> list[str]:
        """Store the text of each message whose role is in `message_roles`, one memory per message, in batches.

        The sink of extraction without an extractor: the backend indexes the raw text (no model call). Re-sending a
        batch stores nothing twice, since identical content is stored once; `context` is therefore not needed.

        Args:
            messages: Strands messages; their text blocks are joined per message, other blocks are ignored.
            context: the manager's per-message sequence numbers (unused).

        Returns:
            The memory_ids, in message order (messages without text, or longer than a memory may be, skipped).

        Raises:
            ValueError: the store is not writable.
            BackendRequestError: the backend refused a memory.
            BackendUnavailableError: the backend is unreachable or failing.
        """
        self._require_writable()
        memories = []
        for message in messages:
            if message["role"] not in self.message_roles:
                continue
            text = "\n".join(block["text"] for block in message["content"] if "text" in block).strip()
            if len(text) > MAX_CONTENT_CHARS:
                # One message the backend would refuse must not fail the batch (Strands would re-send it, and
                # everything buffered after it, after every later turn).
                logger.warning(
                    "actor_id=<%s>, chars=<%d> | message too long for a memory; skipped", self.actor_id, len(text)
                )
                continue
            if text:
                memories.append({"content": text, "metadata": {"role": message["role"]}})
        ids: list[str] = []
        for start in range(0, len(memories), BATCH_SIZE):
            chunk = memories[start : start + BATCH_SIZE]
            response = await self._call("POST", f"{self._path}/batch", body={"memories": chunk})
            assert response is not None
            ids += [str(item["memory_id"]) for item in orjson.loads(response.content)["items"]]
        logger.debug("actor_id=<%s>, count=<%d> | added memories from messages", self.actor_id, len(ids))
        return ids

    def get_tools(self) -> list[AgentTool]:
        """`forget_memory` when the store was made with `forget_tool=True`, else none.

        `MemoryManager`'s `search_memory` / `add_memory` cover search and add.
        """
        return [self._forget_tool()] if self.forget_tool else []

    def _forget_tool(self) -> AgentTool:
        store = self

        @tool(name="forget_memory")
        async def forget_memory(about: str) -> dict[str, Any]:
            """Forget what the user asks you to forget: delete the user's memories containing every word of `about`.

            At most 10 memories per call; returns the forgotten ones.

            Args:
                about: the words the memories to forget contain, e.g. "dog Biscuit".
            """
            hits = await store._search(about, DEFAULT_MAX_SEARCH_RESULTS, "all")
            forgotten = [hit.content for hit in hits if await store.delete(str((hit.metadata or {})["memory_id"]))]
            logger.debug("actor_id=<%s>, count=<%d> | forgot memories", store.actor_id, len(forgotten))
            return {"forgotten": forgotten}

        return cast(AgentTool, forget_memory)

    # beyond the MemoryStore contract

    async def list_recent(self, limit: int = DEFAULT_MAX_SEARCH_RESULTS) -> list[MemoryEntry]:
        """The actor's newest memories, newest first (at most 100)."""
        response = await self._call("GET", self._path, params={"limit": min(max(1, limit), MAX_SEARCH_RESULTS)})
        assert response is not None
        return [_entry(item) for item in orjson.loads(response.content)["items"]]

    async def delete(self, memory_id: str) -> bool:
        """Forget one memory of the actor.

        Returns:
            True when it was deleted, False when the actor had no memory with this id.
        """
        return await self._call("DELETE", f"{self._path}/{segment(memory_id)}", missing_ok=True) is not None

    async def clear(self) -> None:
        """Forget every memory of the actor."""
        await self._call("DELETE", self._path)
        logger.debug("actor_id=<%s> | cleared memories", self.actor_id)


def _check_max_search_results(value: int) -> None:
    if value < 1:
        raise ValueError("PostgreSQLMemoryStore: max_search_results must be at least 1")
    if value > MAX_SEARCH_RESULTS:
        raise ValueError(f"PostgreSQLMemoryStore: max_search_results must be at most {MAX_SEARCH_RESULTS}")


def _entry(item: dict[str, Any]) -> MemoryEntry:
    metadata = {
        **(item.get("metadata") or {}),
        "memory_id": item["memory_id"],
        "score": item.get("score"),
        "created_at": item["created_at"],
        "memory_source": item.get("source"),
    }
    return MemoryEntry(content=item["content"], metadata=metadata)
